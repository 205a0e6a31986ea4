/* sfctl admin: users and API keys; see admin.h. */
#include "admin.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sf/auth.h"
#include "sf/config.h"

static const char admin_usage[] =
    "usage: sfctl admin user add --email E --name N [--tier free|premium|enterprise] [--key-only]\n"
    "       sfctl admin key add --email E [--key-only]\n"
    "       sfctl admin key revoke --id N\n"
    "\n"
    "Create users and API keys (straight in PostgreSQL: DATABASE_URL). A new key is\n"
    "printed once and cannot be shown again (only its SHA-256 is stored); with\n"
    "--key-only nothing but the key is printed.\n";

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
    const cli_opt opts[] = {{"email", 1, &email, NULL},
                            {"name", 1, &name, NULL},
                            {"tier", 1, &tier, NULL},
                            {"key-only", 0, NULL, &key_only}};
    int rc = cli_parse(argc, argv, 3, opts, 4, admin_usage, pos, 0, &npos);
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
    const cli_opt opts[] = {{"email", 1, &email, NULL}, {"key-only", 0, NULL, &key_only}};
    int rc = cli_parse(argc, argv, 3, opts, 2, admin_usage, pos, 0, &npos);
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
    const cli_opt opts[] = {{"id", 1, &id, NULL}};
    int rc = cli_parse(argc, argv, 3, opts, 1, admin_usage, pos, 0, &npos);
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
    printf("revoked key %lld\n", (long long)key_id);
    return CTL_EXIT_OK;
}

typedef int (*admin_fn)(sf_db *db, int argc, char **argv);

static const struct {
    const char *noun, *verb;
    admin_fn fn;
} ADMIN_COMMANDS[] = {
    {"user", "add", user_add},
    {"key", "add", key_add},
    {"key", "revoke", key_revoke},
};

int ctl_admin(int argc, char **argv)
{
    for (int i = 1; i < argc && i < 4; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(admin_usage, stdout);
            return CTL_EXIT_OK;
        }
    for (size_t k = 0; argc >= 3 && k < sizeof ADMIN_COMMANDS / sizeof ADMIN_COMMANDS[0]; k++) {
        if (strcmp(argv[1], ADMIN_COMMANDS[k].noun) != 0 || strcmp(argv[2], ADMIN_COMMANDS[k].verb) != 0)
            continue;
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
