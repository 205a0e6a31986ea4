/* sfctl admin: users and API keys; see admin.h. */
#include "admin.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sf/auth.h"
#include "sf/config.h"

static const char admin_usage[] =
    "usage: sfctl admin user add --email E --name N [--tier free|premium|enterprise] [--key-only]\n"
    "       sfctl admin user list [--json]\n"
    "       sfctl admin user tier --email E --tier free|premium|enterprise\n"
    "       sfctl admin key add --email E [--key-only]\n"
    "       sfctl admin key list --email E [--json]\n"
    "       sfctl admin key rotate --id N [--key-only]\n"
    "       sfctl admin key revoke --id N\n"
    "\n"
    "Users and API keys, straight in PostgreSQL (DATABASE_URL), as the operator. A new\n"
    "key is printed once and cannot be shown again (only its SHA-256 is stored); with\n"
    "--key-only nothing but the key is printed. `key rotate` revokes key N and makes\n"
    "a new key for its user in one transaction: the old key answers 401 at once.\n"
    "Lists are tab-separated (--json: one JSON array).\n";

/* Each subcommand's own --help (cli_parse adds its options); `sfctl admin
 * --help` prints admin_usage, then all of them. */
static const char user_add_usage[] =
    "usage: sfctl admin user add --email E --name N [--tier T] [--key-only]\n\nA user and its first key.\n";
static const char user_list_usage[] = "usage: sfctl admin user list [--json]\n\nEvery user.\n";
static const char user_tier_usage[] = "usage: sfctl admin user tier --email E --tier T\n\nChange a user's tier.\n";
static const char key_add_usage[] = "usage: sfctl admin key add --email E [--key-only]\n\nAnother key for a user.\n";
static const char key_list_usage[] = "usage: sfctl admin key list --email E [--json]\n\nA user's keys.\n";
static const char key_rotate_usage[] =
    "usage: sfctl admin key rotate --id N [--key-only]\n\nRevoke key N and make a new one for its user.\n";
static const char key_revoke_usage[] = "usage: sfctl admin key revoke --id N\n\nRevoke key N.\n";

#define OPT_EMAIL(v)                                                                                                   \
    {                                                                                                                  \
        "email", 1, &(v), NULL, "E", "the user's email"                                                                \
    }
#define OPT_KEY_ONLY(v)                                                                                                \
    {                                                                                                                  \
        "key-only", 0, NULL, &(v), NULL, "print nothing but the new key"                                               \
    }
#define OPT_JSON(v)                                                                                                    \
    {                                                                                                                  \
        "json", 0, NULL, &(v), NULL, "one JSON array instead of tab-separated lines"                                   \
    }
#define OPT_ID(v)                                                                                                      \
    {                                                                                                                  \
        "id", 1, &(v), NULL, "N", "the key's id (admin key list shows it)"                                             \
    }
#define OPT_TIER(v)                                                                                                    \
    {                                                                                                                  \
        "tier", 1, &(v), NULL, "T", "free, premium or enterprise"                                                      \
    }

static void print_key(const char *user_id, const char *email, const sf_auth_key *key, int key_only)
{
    if (key_only) {
        printf("%s\n", key->text);
        return;
    }
    printf("user    %s (%s)\nkey id  %lld\nkey     %s\n", user_id, email, (long long)key->id, key->text);
    fprintf(stderr, "sfctl: the key is shown only now; store it (e.g. export SF_API_KEY=...)\n");
}

static int user_add(sf_db *db, int argc, char **argv)
{
    const char *email = NULL, *name = NULL, *tier = NULL, *pos[1];
    int key_only = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_EMAIL(email),
                            {"name", 1, &name, NULL, "N", "the user's name"},
                            {"tier", 1, &tier, NULL, "T", "free (default), premium or enterprise"},
                            OPT_KEY_ONLY(key_only)};
    int rc = cli_parse(argc, argv, 3, opts, 4, user_add_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if (!cli_need("admin", email, "email") || !cli_need("admin", name, "name"))
        return CTL_EXIT_USAGE;
    char user_id[SF_AUTH_ID_MAX];
    sf_auth_key key;
    sf_err err = {0};
    sf_status st = sf_auth_user_add(db, email, name, tier, user_id, &key, &err);
    if (st == SF_ERR_CONFLICT)
        return cli_fail(CTL_EXIT_USAGE, "%s (for another key: sfctl admin key add --email %s)", err.msg, email);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    print_key(user_id, email, &key, key_only);
    sf_auth_key_wipe(&key);
    return CTL_EXIT_OK;
}

static int key_add(sf_db *db, int argc, char **argv)
{
    const char *email = NULL, *pos[1];
    int key_only = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_EMAIL(email), OPT_KEY_ONLY(key_only)};
    int rc = cli_parse(argc, argv, 3, opts, 2, key_add_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if (!cli_need("admin", email, "email"))
        return CTL_EXIT_USAGE;
    char user_id[SF_AUTH_ID_MAX];
    sf_auth_key key;
    sf_err err = {0};
    sf_status st = sf_auth_user_find(db, email, user_id, &err);
    if (st == SF_OK)
        st = sf_auth_key_generate(&key, &err);
    if (st == SF_OK)
        st = sf_auth_key_create(db, user_id, &key, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    print_key(user_id, email, &key, key_only);
    sf_auth_key_wipe(&key);
    return CTL_EXIT_OK;
}

static int key_revoke(sf_db *db, int argc, char **argv)
{
    const char *id = NULL, *pos[1];
    size_t npos = 0;
    const cli_opt opts[] = {OPT_ID(id)};
    int rc = cli_parse(argc, argv, 3, opts, 1, key_revoke_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    int64_t key_id = 0;
    sf_err err = {0};
    if (!cli_need("admin", id, "id"))
        return CTL_EXIT_USAGE;
    if (sf_config_parse_int(id, 1, INT64_MAX, &key_id, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "admin: --id: %s", err.msg);
    sf_status st = sf_auth_key_revoke(db, key_id, NULL, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    char what[48];
    snprintf(what, sizeof what, "key %lld", (long long)key_id);
    cli_publish_auth(what);
    printf("revoked key %lld\n", (long long)key_id);
    return CTL_EXIT_OK;
}

static int key_rotate(sf_db *db, int argc, char **argv)
{
    const char *id = NULL, *pos[1];
    int key_only = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_ID(id), OPT_KEY_ONLY(key_only)};
    int rc = cli_parse(argc, argv, 3, opts, 2, key_rotate_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    int64_t key_id = 0;
    sf_err err = {0};
    if (!cli_need("admin", id, "id"))
        return CTL_EXIT_USAGE;
    if (sf_config_parse_int(id, 1, INT64_MAX, &key_id, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "admin: --id: %s", err.msg);
    char user_id[SF_AUTH_ID_MAX];
    sf_auth_key key;
    sf_status st = sf_auth_key_rotate(db, key_id, user_id, &key, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    char what[48];
    snprintf(what, sizeof what, "key %lld", (long long)key_id);
    cli_publish_auth(what);
    if (!key_only)
        printf("revoked key %lld\n", (long long)key_id);
    print_key(user_id, "rotated", &key, key_only);
    sf_auth_key_wipe(&key);
    return CTL_EXIT_OK;
}

static int user_tier(sf_db *db, int argc, char **argv)
{
    const char *email = NULL, *tier = NULL, *pos[1];
    size_t npos = 0;
    const cli_opt opts[] = {OPT_EMAIL(email), OPT_TIER(tier)};
    int rc = cli_parse(argc, argv, 3, opts, 2, user_tier_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if (!cli_need("admin", email, "email") || !cli_need("admin", tier, "tier"))
        return CTL_EXIT_USAGE;
    sf_err err = {0};
    sf_status st = sf_auth_user_set_tier(db, email, tier, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    char what[SF_AUTH_EMAIL_MAX + 8];
    snprintf(what, sizeof what, "user %s", email);
    cli_publish_auth(what);
    printf("%s: tier %s\n", email, tier);
    return CTL_EXIT_OK;
}

/* Print a query's rows: tab-separated under a header, or (--json) one JSON
 * array of objects named by the columns. */
static int print_rows(sf_db *db, const char *sql, int n, const char *const *params, const char *const *cols, int ncols,
                      int json_out)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_status st = sf_db_query(db, sql, n, params, &res, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    json_t *arr = json_out ? json_array() : NULL;
    for (int c = 0; !json_out && c < ncols; c++)
        printf("%s%s", cols[c], c + 1 < ncols ? "\t" : "\n");
    for (int r = 0; r < sf_db_nrows(res); r++) {
        json_t *o = json_out ? json_object() : NULL;
        for (int c = 0; c < ncols; c++) {
            const char *v = sf_db_is_null(res, r, c) ? NULL : sf_db_get(res, r, c);
            if (json_out)
                json_object_set_new(o, cols[c], v ? json_string(v) : json_null());
            else
                printf("%s%s", v ? v : "-", c + 1 < ncols ? "\t" : "\n");
        }
        json_array_append_new(arr, o);
    }
    if (json_out) {
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    }
    json_decref(arr);
    sf_db_res_free(res);
    return CTL_EXIT_OK;
}

#define ISO_UTC(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static int user_list(sf_db *db, int argc, char **argv)
{
    const char *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_JSON(json_out)};
    int rc = cli_parse(argc, argv, 3, opts, 1, user_list_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    static const char *const COLS[] = {"id", "email", "name", "tier", "active_keys", "created_at"};
    return print_rows(
        db,
        "SELECT u.id, u.email, u.name, u.tier::text, (SELECT count(*) FROM api_keys k WHERE "
        "k.user_id = u.id AND k.revoked_at IS NULL), " ISO_UTC("u.created_at") " FROM users u "
                                                                               "ORDER BY u.created_at, u.email",
        0, NULL, COLS, 6, json_out);
}

static int key_list(sf_db *db, int argc, char **argv)
{
    const char *email = NULL, *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_EMAIL(email), OPT_JSON(json_out)};
    int rc = cli_parse(argc, argv, 3, opts, 2, key_list_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if (!cli_need("admin", email, "email"))
        return CTL_EXIT_USAGE;
    char user_id[SF_AUTH_ID_MAX];
    sf_err err = {0};
    sf_status st = sf_auth_user_find(db, email, user_id, &err);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    static const char *const COLS[] = {"id", "prefix", "created_at", "revoked_at"};
    const char *p[] = {user_id};
    return print_rows(db,
                      "SELECT id::text, prefix, " ISO_UTC("created_at") ", " ISO_UTC(
                          "revoked_at") " FROM api_keys "
                                        "WHERE user_id = $1::uuid ORDER BY id",
                      1, p, COLS, 4, json_out);
}

typedef int (*admin_fn)(sf_db *db, int argc, char **argv);

static const struct {
    const char *noun, *verb;
    admin_fn fn;
} ADMIN_COMMANDS[] = {
    {"user", "add", user_add}, {"user", "list", user_list},   {"user", "tier", user_tier},   {"key", "add", key_add},
    {"key", "list", key_list}, {"key", "rotate", key_rotate}, {"key", "revoke", key_revoke},
};

/* `sfctl admin --help`: the overview, then every subcommand's help (each
 * parses "--help" before it touches the database, so db is NULL). */
static int admin_help(void)
{
    fputs(admin_usage, stdout);
    for (size_t k = 0; k < sizeof ADMIN_COMMANDS / sizeof ADMIN_COMMANDS[0]; k++) {
        char a0[] = "admin", a3[] = "--help", noun[8], verb[8];
        snprintf(noun, sizeof noun, "%s", ADMIN_COMMANDS[k].noun);
        snprintf(verb, sizeof verb, "%s", ADMIN_COMMANDS[k].verb);
        char *sub[] = {a0, noun, verb, a3, NULL};
        fputc('\n', stdout);
        ADMIN_COMMANDS[k].fn(NULL, 4, sub);
    }
    return CTL_EXIT_OK;
}

int ctl_admin(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return admin_help();
    for (size_t k = 0; argc >= 3 && k < sizeof ADMIN_COMMANDS / sizeof ADMIN_COMMANDS[0]; k++) {
        if (strcmp(argv[1], ADMIN_COMMANDS[k].noun) != 0 || strcmp(argv[2], ADMIN_COMMANDS[k].verb) != 0)
            continue;
        if (argc == 4 && (strcmp(argv[3], "--help") == 0 || strcmp(argv[3], "-h") == 0))
            return ADMIN_COMMANDS[k].fn(NULL, argc, argv); /* cli_parse prints it, no database */
        sf_db *db = NULL;
        int rc = cli_db_open(&db);
        if (rc >= 0)
            return rc;
        rc = ADMIN_COMMANDS[k].fn(db, argc, argv);
        sf_db_close(db);
        return rc;
    }
    fputs(admin_usage, stderr);
    return CTL_EXIT_USAGE;
}
