/* sfctl: logics and schedules over the API; see stored.h. */
#include "stored.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char logics_usage[] = "usage: sfctl logics create --file L.json [--name N]\n"
                                   "       sfctl logics list [--limit N] [--cursor C | --all]\n"
                                   "       sfctl logics show ID [--version N]\n"
                                   "       sfctl logics update ID --file L.json [--name N]\n"
                                   "       sfctl logics delete ID\n"
                                   "\n"
                                   "Stored logics (/v1/logics): validated like a submission and versioned; submit one\n"
                                   "with `sfctl submit --logic-id ID` or POST /v1/backtests {\"logic_id\": ID}.\n"
                                   "delete is soft: jobs keep the version they ran; a deleted logic takes no new job.\n"
                                   "Output: the API's JSON.\n";

static const char schedules_usage[] =
    "usage: sfctl schedules create --name N --cron C (--logic-id ID [--logic-version N] | --file L.json)\n"
    "                              --symbol S --timeframe TF [--catch-up none|latest|all]\n"
    "                              [--webhook-url U [--webhook-secret S]]\n"
    "       sfctl schedules list [--limit N] [--cursor C | --all]\n"
    "       sfctl schedules show ID\n"
    "       sfctl schedules delete ID\n"
    "       sfctl schedules signals ID [--limit N] [--cursor C | --all]\n"
    "\n"
    "Live logic executions (/v1/schedules) fired by sf-scheduler at the cron times.\n"
    "show prints the next 5 firing times; signals lists the executions' signals, newest first.\n"
    "Output: the API's JSON.\n";

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
}

/* One call; prints the answer. Returns an exit status. */
static int call_print(const char *method, const char *path, json_t *body)
{
    cli_api api;
    int rc = cli_api_open(&api);
    if (rc >= 0)
        return rc;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *out = NULL;
    long status = 0;
    rc = cli_api_call(&api, method, path, text, NULL, 0, &status, &out);
    if (rc < 0 && out)
        print_json(out);
    free(text);
    json_decref(out);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

/* GET a list page after page (--all) or one page; prints as stored.h says. */
static int list_print(const char *base, const char *limit, const char *cursor, int all)
{
    cli_api api;
    int rc = cli_api_open(&api);
    if (rc >= 0)
        return rc;
    json_t *every = json_array();
    char next[256];
    snprintf(next, sizeof next, "%s", cursor ? cursor : "");
    do {
        char path[1024];
        int n = snprintf(path, sizeof path, "%s?limit=%s", base, limit ? limit : "50");
        if (next[0] && n > 0 && (size_t)n < sizeof path)
            snprintf(path + n, sizeof path - (size_t)n, "&cursor=%s", next);
        json_t *page = NULL;
        long status = 0;
        rc = cli_api_call(&api, "GET", path, NULL, NULL, 0, &status, &page);
        if (rc >= 0)
            break;
        json_t *nc = json_object_get(page, "next_cursor");
        snprintf(next, sizeof next, "%s", json_is_string(nc) ? json_string_value(nc) : "");
        if (all)
            json_array_extend(every, json_object_get(page, "items"));
        else
            print_json(page);
        json_decref(page);
    } while (all && next[0]);
    if (rc < 0 && all) {
        json_t *doc = json_pack("{s:O}", "items", every);
        print_json(doc);
        json_decref(doc);
    }
    json_decref(every);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

/* No subcommand: usage on stderr, 2; --help: usage and options on stdout, 0;
 * else -1 (a subcommand's --help is cli_parse's). */
static int sub_help(int argc, char **argv, const char *usage, const cli_opt *opts, size_t n_opts)
{
    if (argc >= 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0)
        return -1;
    fputs(usage, argc >= 2 ? stdout : stderr);
    if (argc >= 2)
        cli_print_opts(stdout, opts, n_opts);
    return argc >= 2 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* {"name"?, "logic": file}; NULL after printing the error. */
static json_t *logic_body(const char *file, const char *name)
{
    json_t *logic = cli_read_json_file(file, "logic");
    if (logic == NULL)
        return NULL;
    json_t *body = json_pack("{s:o}", "logic", logic);
    if (name)
        json_object_set_new(body, "name", json_string(name));
    return body;
}

int ctl_logics(int argc, char **argv)
{
    const char *file = NULL, *name = NULL, *version = NULL, *limit = NULL, *cursor = NULL, *pos[1];
    int all = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"file", 1, &file, NULL, "F", "the logic (JSON, see Logic format); create and update"},
        {"name", 1, &name, NULL, "N", "its name (create: the logic's \"name\" when absent; update: kept)"},
        {"version", 1, &version, NULL, "N", "show: an older version (update adds version n + 1)"},
        {"limit", 1, &limit, NULL, "N", "list: rows a page, 1 to 500 (50)"},
        {"cursor", 1, &cursor, NULL, "C", "list: the page after the one that printed C"},
        {"all", 0, NULL, &all, NULL, "list: every page's items"}};
    int rc = sub_help(argc, argv, logics_usage, opts, 6);
    if (rc >= 0)
        return rc;
    const char *sub = argv[1];
    if ((rc = cli_parse(argc, argv, 2, opts, 6, logics_usage, pos, 1, &npos)) >= 0)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/v1/logics/%s", npos ? pos[0] : "");
    int need_id = strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0;
    if (need_id != (npos == 1))
        return cli_fail(CTL_EXIT_USAGE, "logics %s: %s (see sfctl logics --help)", sub,
                        need_id ? "give the logic's ID" : "takes no ID");
    if (strcmp(sub, "list") == 0)
        return list_print("/v1/logics", limit, cursor, all);
    if (strcmp(sub, "show") == 0 && version) {
        snprintf(path + strlen(path), sizeof path - strlen(path), "?version=%s", version);
        return call_print("GET", path, NULL);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0)
        return call_print(strcmp(sub, "show") == 0 ? "GET" : "DELETE", path, NULL);
    if (strcmp(sub, "create") != 0 && strcmp(sub, "update") != 0)
        return cli_fail(CTL_EXIT_USAGE, "logics: unknown subcommand \"%.32s\" (see sfctl logics --help)", sub);
    if (!cli_need("logics", file, "file"))
        return CTL_EXIT_USAGE;
    json_t *body = logic_body(file, name);
    rc = body ? call_print(strcmp(sub, "create") == 0 ? "POST" : "PUT",
                           strcmp(sub, "create") == 0 ? "/v1/logics" : path, body)
              : CTL_EXIT_USAGE;
    json_decref(body);
    return rc;
}

/* The body of schedules create; NULL after printing the error. */
static json_t *schedule_body(const char *const v[10])
{
    /* v: name, cron, logic-id, logic-version, file, symbol, timeframe, catch-up, webhook-url, webhook-secret */
    static const char *const KEYS[] = {"name",   "cron",      "logic_id", "logic_version", NULL,
                                       "symbol", "timeframe", "catch_up", "webhook_url",   "webhook_secret"};
    if (!cli_need("schedules", v[0], "name") || !cli_need("schedules", v[1], "cron") ||
        !cli_need("schedules", v[5], "symbol") || !cli_need("schedules", v[6], "timeframe"))
        return NULL;
    if ((v[2] == NULL) == (v[4] == NULL)) {
        cli_fail(CTL_EXIT_USAGE, "schedules create: give --logic-id or --file");
        return NULL;
    }
    json_t *body = json_object();
    for (int i = 0; i < 10; i++)
        if (v[i] && KEYS[i] && i != 3)
            json_object_set_new(body, KEYS[i], json_string(v[i]));
    if (v[3])
        json_object_set_new(body, "logic_version", json_integer(strtoll(v[3], NULL, 10)));
    json_t *logic = v[4] ? cli_read_json_file(v[4], "logic") : NULL;
    if (v[4] && logic == NULL) {
        json_decref(body);
        return NULL;
    }
    if (logic)
        json_object_set_new(body, "logic", logic);
    return body;
}

int ctl_schedules(int argc, char **argv)
{
    const char *v[10] = {0}, *limit = NULL, *cursor = NULL, *pos[1];
    int all = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"name", 1, &v[0], NULL, "N", "the schedule's name"},
        {"cron", 1, &v[1], NULL, "C", "5 fields, UTC (\"*/15 * * * *\")"},
        {"logic-id", 1, &v[2], NULL, "ID", "a stored logic (its current version, or --logic-version N)"},
        {"logic-version", 1, &v[3], NULL, "N", "that version of the stored logic"},
        {"file", 1, &v[4], NULL, "F", "an inline logic instead"},
        {"symbol", 1, &v[5], NULL, "S", "the data set each execution reads: its symbol"},
        {"timeframe", 1, &v[6], NULL, "TF", "and its timeframe"},
        {"catch-up", 1, &v[7], NULL, "P", "missed firings: none, latest (default) or all"},
        {"webhook-url", 1, &v[8], NULL, "U",
         "POST each signal there (http/https, public addresses only\nunless sf-api's SF_WEBHOOK_ALLOW_CIDRS allows)"},
        {"webhook-secret", 1, &v[9], NULL, "S",
         "the HMAC key (16+ characters); generated when absent and\nshown once, in create's output"},
        {"limit", 1, &limit, NULL, "N", "list, signals: rows a page, 1 to 500 (50)"},
        {"cursor", 1, &cursor, NULL, "C", "list, signals: the page after the one that printed C"},
        {"all", 0, NULL, &all, NULL, "list, signals: every page's items"}};
    int rc = sub_help(argc, argv, schedules_usage, opts, 13);
    if (rc >= 0)
        return rc;
    const char *sub = argv[1];
    if ((rc = cli_parse(argc, argv, 2, opts, 13, schedules_usage, pos, 1, &npos)) >= 0)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/v1/schedules/%s", npos ? pos[0] : "");
    int need_id = strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0;
    if (need_id != (npos == 1))
        return cli_fail(CTL_EXIT_USAGE, "schedules %s: %s (see sfctl schedules --help)", sub,
                        need_id ? "give the schedule's ID" : "takes no ID");
    if (strcmp(sub, "list") == 0)
        return list_print("/v1/schedules", limit, cursor, all);
    if (strcmp(sub, "signals") == 0) {
        snprintf(path + strlen(path), sizeof path - strlen(path), "/signals");
        return list_print(path, limit, cursor, all);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0)
        return call_print(strcmp(sub, "show") == 0 ? "GET" : "DELETE", path, NULL);
    if (strcmp(sub, "create") != 0)
        return cli_fail(CTL_EXIT_USAGE, "schedules: unknown subcommand \"%.32s\" (see sfctl schedules --help)", sub);
    json_t *body = schedule_body(v);
    rc = body ? call_print("POST", "/v1/schedules", body) : CTL_EXIT_USAGE;
    json_decref(body);
    return rc;
}
