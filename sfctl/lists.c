/* sfctl: jobs, batches and rerun over the API; see lists.h. */
#include "lists.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Append "&name=value" (value percent-encoded) to q when value is set. */
static void add_param(char *q, size_t size, const char *name, const char *value)
{
    if (value == NULL)
        return;
    size_t n = strlen(q);
    n += (size_t)snprintf(q + n, n < size ? size - n : 0, "%c%s=", strchr(q, '?') ? '&' : '?', name);
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 4 < size; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~", *p) != NULL;
        n += (size_t)snprintf(q + n, size - n, plain ? "%c" : "%%%02X", *p);
    }
}

static const char *s(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "-";
}

static void print_rows(json_t *items, int jobs, int table, int head)
{
    const char *fmt = table ? "%-36s  %-9s  %-15s  %-12s  %-32s  %s\n" : "%s\t%s\t%s\t%s\t%s\t%s\n";
    if (head)
        printf(fmt, "id", jobs ? "status" : "total", jobs ? "kind" : "rank_by", "symbol", "created_at", "rerun_of");
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *r = json_array_get(items, i);
        char total[24], sym[64];
        snprintf(total, sizeof total, "%lld", (long long)json_integer_value(json_object_get(r, "total")));
        snprintf(sym, sizeof sym, "%s %s", s(r, "symbol"), s(r, "timeframe"));
        printf(fmt, s(r, "id"), jobs ? s(r, "status") : total, jobs ? s(r, "kind") : s(r, "rank_by"), sym,
               s(r, "created_at"), s(r, "rerun_of"));
    }
}

/* GET base (with its query) page after page; prints as lists.h says. */
static int list_pages(const char *base, const char *cursor, int all, int json_out, int jobs)
{
    cli_api api;
    int rc = cli_api_open(&api);
    if (rc >= 0)
        return rc;
    json_t *every = json_array();
    char next[256] = "";
    snprintf(next, sizeof next, "%s", cursor ? cursor : "");
    int table = isatty(STDOUT_FILENO), head = 1;
    do {
        char path[2048];
        snprintf(path, sizeof path, "%s", base);
        add_param(path, sizeof path, "cursor", next[0] ? next : NULL);
        json_t *page = NULL;
        long status = 0;
        rc = cli_api_call(&api, "GET", path, NULL, NULL, 0, &status, &page);
        if (rc >= 0)
            break;
        json_t *nc = json_object_get(page, "next_cursor");
        snprintf(next, sizeof next, "%s", json_is_string(nc) ? json_string_value(nc) : "");
        if (json_out && !all)
            json_dumpf(page, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER), putchar('\n');
        else if (json_out)
            json_array_extend(every, json_object_get(page, "items"));
        else
            print_rows(json_object_get(page, "items"), jobs, table, head);
        head = 0;
        if (!all && !json_out && next[0])
            fprintf(stderr, "sfctl: more: --cursor %s (or --all)\n", next);
        json_decref(page);
    } while (all && next[0]);
    if (rc < 0 && json_out && all) {
        json_t *doc = json_pack("{s:O}", "items", every);
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER), putchar('\n');
        json_decref(doc);
    }
    json_decref(every);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

static const char jobs_usage[] =
    "usage: sfctl jobs [--status S] [--kind K] [--batch ID] [--logic HASH|LOGIC_ID] [--symbol S]\n"
    "                  [--since T] [--until T] [--limit N] [--cursor C | --all] [--json]\n"
    "\n"
    "List your jobs, newest first (GET /v1/jobs). Without --batch, sweep members are\n"
    "left out (list a sweep's members with --batch ID). A table on a terminal, else TSV\n"
    "with a header line.\n";

int ctl_jobs(int argc, char **argv)
{
    const char *st = NULL, *kind = NULL, *batch = NULL, *logic = NULL, *sym = NULL, *since = NULL, *until = NULL,
               *limit = NULL, *cursor = NULL, *pos[1];
    int all = 0, json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"status", 1, &st, NULL, "S", "pending, queued, running, succeeded, failed, dead or cancelled"},
        {"kind", 1, &kind, NULL, "K", "backtest or logic_execution"},
        {"batch", 1, &batch, NULL, "ID", "the members of that sweep"},
        {"logic", 1, &logic, NULL, "X", "a logic hash (as jobs show it) or a stored logic's id"},
        {"symbol", 1, &sym, NULL, "S", "the data set's symbol"},
        {"since", 1, &since, NULL, "T", "created at or after T (ISO-8601 UTC, e.g. 2024-01-01T00:00:00Z)"},
        {"until", 1, &until, NULL, "T", "created before T"},
        {"limit", 1, &limit, NULL, "N", "rows a page, 1 to 500 (50)"},
        {"cursor", 1, &cursor, NULL, "C", "the page after the one that printed C"},
        {"all", 0, NULL, &all, NULL, "every page (follows the cursors)"},
        {"json", 0, NULL, &json_out, NULL, "the API's JSON (with --all: {\"items\": every row})"}};
    int rc = cli_parse(argc, argv, 1, opts, 11, jobs_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    char q[1536] = "/v1/jobs";
    add_param(q, sizeof q, "status", st);
    add_param(q, sizeof q, "kind", kind);
    add_param(q, sizeof q, "batch", batch);
    add_param(q, sizeof q, "logic", logic);
    add_param(q, sizeof q, "symbol", sym);
    add_param(q, sizeof q, "since", since);
    add_param(q, sizeof q, "until", until);
    add_param(q, sizeof q, "limit", limit);
    return list_pages(q, cursor, all, json_out, 1);
}

static const char batches_usage[] =
    "usage: sfctl batches [--since T] [--until T] [--limit N] [--cursor C | --all] [--json]\n"
    "\n"
    "List your sweeps (batches), newest first (GET /v1/batches).\n";

int ctl_batches(int argc, char **argv)
{
    const char *since = NULL, *until = NULL, *limit = NULL, *cursor = NULL, *pos[1];
    int all = 0, json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {{"since", 1, &since, NULL, "T", "created at or after T (ISO-8601 UTC)"},
                            {"until", 1, &until, NULL, "T", "created before T"},
                            {"limit", 1, &limit, NULL, "N", "rows a page, 1 to 500 (50)"},
                            {"cursor", 1, &cursor, NULL, "C", "the page after the one that printed C"},
                            {"all", 0, NULL, &all, NULL, "every page"},
                            {"json", 0, NULL, &json_out, NULL, "the API's JSON"}};
    int rc = cli_parse(argc, argv, 1, opts, 6, batches_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    char q[1024] = "/v1/batches";
    add_param(q, sizeof q, "since", since);
    add_param(q, sizeof q, "until", until);
    add_param(q, sizeof q, "limit", limit);
    return list_pages(q, cursor, all, json_out, 0);
}

static const char rerun_usage[] =
    "usage: sfctl rerun JOB_ID [--latest]\n"
    "       sfctl rerun --batch ID [--status S[,S...]] [--dry-run | --yes] [--latest]\n"
    "       sfctl rerun [--status S[,S...]] [--logic X] [--symbol S] [--since T] [--until T]\n"
    "                   [--dry-run | --yes] [--latest]\n"
    "\n"
    "Run jobs again, through the same checks as a new submission: the same logic on the\n"
    "same data-set version (refused once an import replaced it, unless --latest).\n"
    "JOB_ID: one single backtest (POST /v1/jobs/ID/rerun); --batch or a filter: many\n"
    "(POST /v1/reruns).\n";

/* "a,b" into a JSON array of strings. */
static json_t *status_list(const char *text)
{
    json_t *a = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *p = buf, *comma; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        json_array_append_new(a, json_string(p));
    }
    return a;
}

static int post(const char *path, json_t *body, int json_out, json_t **out)
{
    cli_api api;
    int rc = cli_api_open(&api);
    if (rc >= 0)
        return rc;
    char *text = json_dumps(body, JSON_COMPACT);
    long status = 0;
    rc = cli_api_call(&api, "POST", path, text ? text : "{}", NULL, 0, &status, out);
    free(text);
    cli_api_close(&api);
    if (rc < 0 && json_out)
        json_dumpf(*out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER), putchar('\n');
    return rc;
}

int ctl_rerun(int argc, char **argv)
{
    const char *batch = NULL, *st = NULL, *logic = NULL, *sym = NULL, *since = NULL, *until = NULL, *pos[1];
    int dry = 0, yes = 0, latest = 0, json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"batch", 1, &batch, NULL, "ID",
         "a sweep's members, into one new batch (default statuses:\n"
         "failed,dead,cancelled)"},
        {"status", 1, &st, NULL, "S,..", "the statuses to re-run"},
        {"logic", 1, &logic, NULL, "X", "a logic hash or a stored logic's id"},
        {"symbol", 1, &sym, NULL, "S", "the data set's symbol"},
        {"since", 1, &since, NULL, "T", "created at or after T (ISO-8601 UTC)"},
        {"until", 1, &until, NULL, "T", "created before T"},
        {"dry-run", 0, NULL, &dry, NULL, "only count what would be re-run"},
        {"yes", 0, NULL, &yes, NULL, "re-run a batch or a filter (without it: the dry run's count, exit 1)"},
        {"latest", 0, NULL, &latest, NULL, "on the data set as it is now (and a stored logic's current body)"},
        {"json", 0, NULL, &json_out, NULL, "the API's answer as JSON"}};
    int rc = cli_parse(argc, argv, 1, opts, 10, rerun_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    json_t *body = json_object(), *out = NULL;
    if (latest)
        json_object_set_new(body, "latest", json_true());
    if (npos == 1) {
        char path[256];
        snprintf(path, sizeof path, "/v1/jobs/%s/rerun", pos[0]);
        rc = post(path, body, json_out, &out);
        if (rc < 0 && !json_out)
            printf("%s\n", s(out, "id"));
    } else {
        json_object_set_new(body, "batch", batch ? json_string(batch) : NULL);
        json_object_set_new(body, "status", st ? status_list(st) : NULL);
        json_object_set_new(body, "logic", logic ? json_string(logic) : NULL);
        json_object_set_new(body, "symbol", sym ? json_string(sym) : NULL);
        json_object_set_new(body, "since", since ? json_string(since) : NULL);
        json_object_set_new(body, "until", until ? json_string(until) : NULL);
        json_object_set_new(body, "dry_run", json_boolean(dry || !yes));
        rc = post("/v1/reruns", body, json_out, &out);
        if (rc < 0 && (dry || !yes)) {
            if (!json_out)
                printf("%lld\n", (long long)json_integer_value(json_object_get(out, "matched")));
            fprintf(stderr, "sfctl: %lld %s would be re-run%s\n",
                    (long long)json_integer_value(json_object_get(out, "matched")), batch ? "members" : "jobs",
                    dry ? "" : "; add --yes to re-run them");
            rc = dry ? -1 : CTL_EXIT_FAIL;
        } else if (rc < 0 && !json_out) {
            if (batch)
                printf("%s\n", s(out, "id"));
            else
                printf("%lld\n", (long long)json_integer_value(json_object_get(out, "created")));
        }
    }
    json_decref(out);
    json_decref(body);
    return rc < 0 ? CTL_EXIT_OK : rc;
}
