/* sfctl: commands over the API; see remote.h. */
#include "remote.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "local.h"
#include "progress.h"
#include "sf/config.h"
#include "sf/overfit.h"
#include "sf/rank.h"
#include "sf/result.h"
#include "table.h"

#define POLL_JOB_MS 500
#define POLL_BATCH_MS 1000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A random Idempotency-Key, so a retried request cannot submit twice. */
static void new_idempotency_key(char *buf, size_t size)
{
    unsigned char r[12] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        snprintf(buf, size, "sfctl-%ld-%ld", (long)getpid(), (long)time(NULL));
    else
        snprintf(buf, size, "sfctl-%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
                 r[5], r[6], r[7], r[8], r[9], r[10], r[11]);
}

/* POST with one retry after a network or server failure (same idempotency key). */
static int post_once_or_twice(cli_api *api, const char *path, json_t *body, json_t **out)
{
    char key[64];
    new_idempotency_key(key, sizeof key);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return cli_fail(CTL_EXIT_FAIL, "out of memory");
    long status = 0;
    int rc = cli_api_call(api, "POST", path, text, key, 0, &status, out);
    if (rc == CTL_EXIT_UNREACHABLE) {
        fprintf(stderr, "sfctl: retrying once\n");
        sleep_ms(1000);
        rc = cli_api_call(api, "POST", path, text, key, 0, &status, out);
    }
    free(text);
    return rc;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static int is_terminal(const char *status)
{
    static const char *const T[] = {"succeeded", "failed", "dead", "cancelled"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(status, T[i]) == 0)
            return 1;
    return 0;
}

/* ---- printing -------------------------------------------------------------------- */

/* One JSON document on stdout (--json: nothing else goes there). */
static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
}

/* The farm's stored metrics as an sf_perf (table.h prints it as a local run). */
static void perf_of(json_t *metrics, sf_perf *p)
{
    char *text = json_dumps(metrics, JSON_COMPACT);
    if (text == NULL || sf_perf_from_json(text, strlen(text), p, NULL) != SF_OK)
        sf_perf_from_json("{}", 2, p, NULL);
    free(text);
}

static void print_job(json_t *j)
{
    printf("id           %s\nstatus       %s\nsymbol       %s %s\nattempt      %lld of %lld\n", str(j, "id"),
           str(j, "status"), str(j, "symbol"), str(j, "timeframe"),
           (long long)json_integer_value(json_object_get(j, "attempt")),
           (long long)json_integer_value(json_object_get(j, "max_attempts")));
    static const char *const FIELDS[] = {"priority",   "batch_id",    "worker", "created_at",
                                         "started_at", "finished_at", "error"};
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
        if (json_is_string(json_object_get(j, FIELDS[i])))
            printf("%-12s %s\n", FIELDS[i], str(j, FIELDS[i]));
}

/* The metrics in the local backtest's table (same rows, order and formats). */
static void print_metrics(json_t *metrics)
{
    sf_perf p;
    perf_of(metrics, &p);
    tbl_metrics(&p);
}

/* The local sweep's leaderboard table, with each member's job id. */
static void print_leaderboard(json_t *b)
{
    json_t *best = json_object_get(b, "best");
    const char *by = str(b, "by");
    printf("\n%lld combinations, ranked by %s\n\n", (long long)json_integer_value(json_object_get(b, "total")), by);
    tbl_board_head(by, 1);
    for (size_t i = 0; i < json_array_size(best); i++) {
        json_t *m = json_array_get(best, i);
        sf_perf p;
        perf_of(json_object_get(m, "metrics"), &p);
        /* the local sweep writes parameters as {"path": value, ...}, reals as %.15g */
        char *params = json_dumps(json_object_get(m, "params"), JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        tbl_board_row(by, (size_t)json_integer_value(json_object_get(m, "rank")),
                      (size_t)json_integer_value(json_object_get(m, "index")), str(m, "job_id"), &p, params);
        free(params);
    }
}

static double num_or_nan(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The API's "overfit" object (sf_overfit_to_json) in the local sweep's lines. */
static void print_overfit(json_t *b)
{
    json_t *o = json_object_get(b, "overfit"), *best = json_object_get(o, "best");
    if (!json_is_object(o))
        return;
    sf_overfit r;
    memset(&r, 0, sizeof r);
    r.ok = json_is_null(json_object_get(o, "reason"));
    snprintf(r.reason, sizeof r.reason, "%s", str(o, "reason"));
    snprintf(r.verdict, sizeof r.verdict, "%s", str(o, "verdict"));
    snprintf(r.dsr_reason, sizeof r.dsr_reason, "%s",
             json_is_string(json_object_get(o, "dsr_reason")) ? str(o, "dsr_reason") : "");
    r.blocks = (int)json_integer_value(json_object_get(o, "blocks"));
    r.trials = num_or_nan(o, "effective_trials");
    r.splits = (uint64_t)json_integer_value(json_object_get(o, "splits"));
    r.splits_total = (uint64_t)json_integer_value(json_object_get(o, "splits_total"));
    r.sampled = json_is_true(json_object_get(o, "sampled"));
    r.pbo = num_or_nan(o, "pbo");
    r.pbo_margin = num_or_nan(o, "pbo_margin");
    r.oos_sharpe_mean = num_or_nan(o, "oos_sharpe_mean");
    r.prob_loss = num_or_nan(o, "prob_loss");
    r.sr0 = num_or_nan(o, "sr0");
    r.dsr = num_or_nan(o, "dsr");
    r.best_index = json_is_object(best) ? (int64_t)json_integer_value(json_object_get(best, "index")) : -1;
    r.best_sharpe = num_or_nan(best, "sharpe");
    r.returns = (size_t)json_integer_value(json_object_get(best, "returns"));
    tbl_overfit(&r);
}

static void print_batch(json_t *b)
{
    json_t *c = json_object_get(b, "counts");
    printf("batch %s  %s %s  %lld/%lld done (%.1f%%)  %s\n", str(b, "id"), str(b, "symbol"), str(b, "timeframe"),
           (long long)json_integer_value(json_object_get(b, "done")),
           (long long)json_integer_value(json_object_get(b, "total")),
           100.0 * json_number_value(json_object_get(b, "progress")), str(b, "status"));
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v)
    {
        if (json_integer_value(v) > 0)
            printf("  %-10s %lld\n", key, (long long)json_integer_value(v));
    }
    print_leaderboard(b);
    print_overfit(b);
}

/* ---- submit ---------------------------------------------------------------------- */

static const char submit_usage[] =
    "usage: sfctl submit (--logic L.json | --logic-id ID [--logic-version N]) --symbol S --timeframe TF\n"
    "                    [--priority high|normal|low] [--from T] [--to T] [--max-attempts N] [--wait] [--json]\n"
    "\n"
    "Submit a backtest to the farm (SF_API_URL, SF_API_KEY) and print its id; with\n"
    "--wait, wait until it finishes and print its metrics as `sfctl backtest` does\n"
    "(exit status 1 when it failed, died or was cancelled); the job's states and the\n"
    "time since the submission go to stderr (a line rewritten on a terminal, a\n"
    "\"progress:\" line per change in a pipe). With --json, stdout is one JSON\n"
    "document: the submission's answer, or with --wait the finished job\n"
    "(GET /v1/jobs/ID) with its \"metrics\".\n";

/* The options submit and sweep share (add_common reads them). */
#define OPT_SYMBOL(v)                                                                                                  \
    {                                                                                                                  \
        "symbol", 1, &(v), NULL, "S", "the data set's symbol"                                                          \
    }
#define OPT_TIMEFRAME(v)                                                                                               \
    {                                                                                                                  \
        "timeframe", 1, &(v), NULL, "TF", "the data set's timeframe"                                                   \
    }
#define OPT_PRIORITY(v)                                                                                                \
    {                                                                                                                  \
        "priority", 1, &(v), NULL, "P", "high, normal (default) or low"                                                \
    }
#define OPT_FROM(v)                                                                                                    \
    {                                                                                                                  \
        "from", 1, &(v), NULL, "T", "the first bar's time (ISO-8601 UTC; default the first)"                           \
    }
#define OPT_TO(v)                                                                                                      \
    {                                                                                                                  \
        "to", 1, &(v), NULL, "T", "the last bar's time (default the last)"                                             \
    }
#define OPT_ATTEMPTS(v)                                                                                                \
    {                                                                                                                  \
        "max-attempts", 1, &(v), NULL, "N", "runs before a job is dead, 1 to 100 (the API's default)"                  \
    }
#define OPT_JSON(v)                                                                                                    \
    {                                                                                                                  \
        "json", 0, NULL, &(v), NULL, "stdout is one JSON document (the API's)"                                         \
    }

/* Poll the job until it finishes, its state changes shown on stderr
 * (progress.h): -1 with *job (its last state) when it succeeded; else it is
 * printed and the exit status returned (1 when it failed, died or was
 * cancelled). */
static int poll_job(cli_api *api, const char *id, int json_out, json_t **job)
{
    char path[128], label[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    snprintf(label, sizeof label, "job %s", id);
    ctl_progress pr;
    ctl_progress_start(&pr, label, "", 0, 0);
    for (;;) {
        long status = 0;
        int rc = cli_api_call(api, "GET", path, NULL, NULL, 0, &status, job);
        if (rc < 0)
            ctl_progress_state(&pr, str(*job, "status"));
        const char *st = rc < 0 ? str(*job, "status") : "";
        if (rc >= 0 || is_terminal(st))
            ctl_progress_end(&pr);
        if (rc >= 0)
            return rc;
        if (strcmp(st, "succeeded") == 0)
            return -1;
        if (is_terminal(st)) {
            if (json_out)
                print_json(*job);
            else
                print_job(*job);
            fprintf(stderr, "sfctl: job %s %s\n", id, st);
            json_decref(*job);
            *job = NULL;
            return CTL_EXIT_FAIL;
        }
        json_decref(*job);
        *job = NULL;
        sleep_ms(POLL_JOB_MS);
    }
}

static int wait_job(cli_api *api, const char *id, int json_out)
{
    json_t *job = NULL, *r = NULL;
    int rc = poll_job(api, id, json_out, &job);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    long status = 0;
    if (rc < 0)
        rc = cli_api_call(api, "GET", path, NULL, NULL, 0, &status, &r);
    if (rc < 0 && json_out) {
        json_object_set(job, "metrics", json_object_get(r, "metrics"));
        print_json(job);
    } else if (rc < 0) {
        print_metrics(json_object_get(r, "metrics"));
    }
    json_decref(r);
    json_decref(job);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

/* Common body fields; returns -1 or an exit status. */
static int add_common(json_t *body, const char *symbol, const char *timeframe, const char *priority, const char *from,
                      const char *to, const char *attempts)
{
    int64_t n = 0;
    sf_err err = {0};
    json_object_set_new(body, "symbol", json_string(symbol));
    json_object_set_new(body, "timeframe", json_string(timeframe));
    if (priority)
        json_object_set_new(body, "priority", json_string(priority));
    if (from)
        json_object_set_new(body, "from", json_string(from));
    if (to)
        json_object_set_new(body, "to", json_string(to));
    if (attempts && sf_config_parse_int(attempts, 1, 100, &n, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--max-attempts: %s", err.msg);
    if (attempts)
        json_object_set_new(body, "max_attempts", json_integer((json_int_t)n));
    return -1;
}

/* {"logic": file} or {"logic_id": id, "logic_version"?: n}; NULL after
 * printing the error. */
static json_t *logic_of(const char *logic, const char *logic_id, const char *version)
{
    int64_t n = 0;
    sf_err err = {0};
    if ((logic == NULL) == (logic_id == NULL)) {
        cli_fail(CTL_EXIT_USAGE, "submit: give --logic or --logic-id (see sfctl submit --help)");
        return NULL;
    }
    if (version && (logic_id == NULL || sf_config_parse_int(version, 1, INT64_MAX, &n, &err) != SF_OK)) {
        cli_fail(CTL_EXIT_USAGE, "--logic-version: %s", logic_id ? err.msg : "needs --logic-id");
        return NULL;
    }
    if (logic_id)
        return version ? json_pack("{s:s, s:I}", "logic_id", logic_id, "logic_version", (json_int_t)n)
                       : json_pack("{s:s}", "logic_id", logic_id);
    json_t *lj = cli_read_json_file(logic, "--logic");
    return lj ? json_pack("{s:o}", "logic", lj) : NULL;
}

int ctl_submit(int argc, char **argv)
{
    const char *logic = NULL, *logic_id = NULL, *version = NULL, *symbol = NULL, *tf = NULL, *prio = NULL, *from = NULL,
               *to = NULL, *attempts = NULL, *pos[1];
    int wait = 0, json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"logic", 1, &logic, NULL, "FILE", "the trading logic (JSON, see Logic format)"},
        {"logic-id", 1, &logic_id, NULL, "ID", "a stored logic instead (sfctl logics)"},
        {"logic-version", 1, &version, NULL, "N", "that version of the stored logic (default its current one)"},
        OPT_SYMBOL(symbol),
        OPT_TIMEFRAME(tf),
        OPT_PRIORITY(prio),
        OPT_FROM(from),
        OPT_TO(to),
        OPT_ATTEMPTS(attempts),
        {"wait", 0, NULL, &wait, NULL, "wait until the job finishes and print its metrics"},
        OPT_JSON(json_out)};
    int rc = cli_parse(argc, argv, 1, opts, 11, submit_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if (!cli_need("submit", symbol, "symbol") || !cli_need("submit", tf, "timeframe"))
        return CTL_EXIT_USAGE;
    json_t *body = logic_of(logic, logic_id, version), *out = NULL;
    if (body == NULL)
        return CTL_EXIT_USAGE;
    cli_api api;
    if ((rc = add_common(body, symbol, tf, prio, from, to, attempts)) < 0 && (rc = cli_api_open(&api)) < 0) {
        rc = post_once_or_twice(&api, "/v1/backtests", body, &out);
        if (rc < 0 && json_out && !wait)
            print_json(out);
        else if (rc < 0 && !json_out)
            printf("%s\n", str(out, "id")); /* the id, then --wait's table */
        fflush(stdout);
        if (rc < 0)
            rc = wait ? wait_job(&api, str(out, "id"), json_out) : CTL_EXIT_OK;
        json_decref(out);
        cli_api_close(&api);
    }
    json_decref(body);
    return rc;
}

/* ---- watch ------------------------------------------------------------------------ */

/* The batch's counts on the progress line (progress.h). */
static void show_progress(ctl_progress *pr, json_t *b)
{
    json_t *c = json_object_get(b, "counts");
    char extra[128];
    snprintf(extra, sizeof extra, "running %lld, failed %lld, dead %lld, cancelled %lld",
             (long long)json_integer_value(json_object_get(c, "running")),
             (long long)json_integer_value(json_object_get(c, "failed")),
             (long long)json_integer_value(json_object_get(c, "dead")),
             (long long)json_integer_value(json_object_get(c, "cancelled")));
    ctl_progress_update(pr, (uint64_t)json_integer_value(json_object_get(b, "done")),
                        (uint64_t)json_integer_value(json_object_get(b, "total")), extra);
}

/* A finished sweep: 0, or 1 (with a line on stderr) when members failed or died. */
static int finished_exit(json_t *b)
{
    json_t *c = json_object_get(b, "counts");
    long long failed = (long long)json_integer_value(json_object_get(c, "failed")),
              dead = (long long)json_integer_value(json_object_get(c, "dead"));
    if (failed == 0 && dead == 0)
        return CTL_EXIT_OK;
    return cli_fail(CTL_EXIT_FAIL, "batch %s: %lld member%s failed, %lld died", str(b, "id"), failed,
                    failed == 1 ? "" : "s", dead);
}

/* The batch when it finished (-1 with *out), else an exit status. */
static int poll_batch(cli_api *api, const char *id, const char *path, double timeout_s, json_t **out)
{
    char label[64];
    snprintf(label, sizeof label, "batch %s", id);
    ctl_progress pr;
    ctl_progress_start(&pr, label, "members", 0, 0);
    double t0 = now_s();
    for (;;) {
        long status = 0;
        int rc = cli_api_call(api, "GET", path, NULL, NULL, 0, &status, out);
        if (rc < 0)
            show_progress(&pr, *out);
        if (rc >= 0 || strcmp(str(*out, "status"), "finished") == 0) {
            ctl_progress_end(&pr);
            return rc;
        }
        json_decref(*out);
        *out = NULL;
        if (timeout_s > 0 && now_s() - t0 > timeout_s) {
            ctl_progress_end(&pr);
            return cli_fail(CTL_EXIT_FAIL, "watch: batch %s not finished after %.0f s", id, timeout_s);
        }
        sleep_ms(POLL_BATCH_MS);
    }
}

static int watch_batch(cli_api *api, const char *id, const char *query, double timeout_s, int json_out)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/batches/%s%s", id, query);
    json_t *b = NULL;
    int rc = poll_batch(api, id, path, timeout_s, &b);
    if (rc >= 0)
        return rc;
    if (json_out)
        print_json(b);
    else
        print_batch(b);
    rc = finished_exit(b);
    json_decref(b);
    return rc;
}

/* "?top=K&by=M" from the options, checked with sf/rank.h as the API checks
 * them; returns -1 or an exit status. */
static int leaderboard_query(const char *top, const char *by, char *buf, size_t size)
{
    size_t k = 0;
    sf_err err = {0};
    if (sf_rank_top_parse(top, &k, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--%s", err.msg);
    if (by && sf_rank_find(by) == NULL)
        return cli_fail(CTL_EXIT_USAGE, "--by: unknown metric \"%.40s\" (one of %s)", by, SF_RANK_LIST);
    snprintf(buf, size, "?top=%zu%s%s", k, by ? "&by=" : "", by ? by : "");
    return -1;
}

static const char watch_usage[] = "usage: sfctl watch BATCH_ID [--top K] [--by METRIC] [--timeout S] [--json]\n"
                                  "\n"
                                  "Show a sweep's progress on stderr until every member has finished (a line\n"
                                  "rewritten on a terminal, \"progress:\" lines in a pipe), then print its\n"
                                  "leaderboard with the members' job ids. Exit status 1 when members failed or\n"
                                  "died, or --timeout passed first.\n";

#define OPT_TOP(v)                                                                                                     \
    {                                                                                                                  \
        "top", 1, &(v), NULL, "K", "the leaderboard's members, 1 to 1000 (10)"                                         \
    }
#define OPT_BY(v)                                                                                                      \
    {                                                                                                                  \
        "by", 1, &(v), NULL, "METRIC", "rank by one of: " SF_RANK_LIST "\n(default the sweep's rank_by)"               \
    }

int ctl_watch(int argc, char **argv)
{
    const char *top = NULL, *by = NULL, *timeout = NULL, *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {OPT_TOP(top),
                            OPT_BY(by),
                            {"timeout", 1, &timeout, NULL, "S", "give up after S seconds, exit 1 (default never)"},
                            {"json", 0, NULL, &json_out, NULL, "the finished batch as JSON (GET /v1/batches/ID)"}};
    int rc = cli_parse(argc, argv, 1, opts, 4, watch_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    char query[128];
    int64_t t = 0;
    sf_err err = {0};
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "watch: give the batch id (see --help)");
    if (timeout && sf_config_parse_int(timeout, 1, 604800, &t, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--timeout: %s", err.msg);
    if ((rc = leaderboard_query(top, by, query, sizeof query)) >= 0)
        return rc;
    cli_api api;
    if ((rc = cli_api_open(&api)) >= 0)
        return rc;
    rc = watch_batch(&api, pos[0], query, (double)t, json_out);
    cli_api_close(&api);
    return rc;
}

/* ---- sweep ------------------------------------------------------------------------ */

static const char sweep_usage[] = "usage: sfctl sweep --logic L.json --grid G.json --symbol S --timeframe TF\n"
                                  "                   [--rank-by METRIC] [--priority p] [--from T] [--to T]\n"
                                  "                   [--detail-top K] [--blocks S] [--effective-trials N]\n"
                                  "                   [--watch [--top K] [--by METRIC]]\n"
                                  "       (with --data FILE.csv instead: the local sweep, see below)\n"
                                  "\n"
                                  "Submit a parameter sweep to the farm and print the batch id; with --watch,\n"
                                  "follow its progress and print the leaderboard (the best K, 10 by default,\n"
                                  "ranked by --by, else by the sweep's --rank-by). Members keep their metrics;\n"
                                  "the best --detail-top (10 by default, 0 to 100) by --rank-by also keep their\n"
                                  "trades and equity curve, the others' are recomputed when asked for (sfctl result).\n"
                                  "Under the leaderboard: PBO, the best member's DSR and a verdict, over --blocks\n"
                                  "(even, 2 to 32, default 16) blocks of the returns and --effective-trials (default:\n"
                                  "the members); see the README, \"Overfitting: PBO and DSR\".\n";

static int remote_sweep(int argc, char **argv)
{
    const char *logic = NULL, *grid = NULL, *symbol = NULL, *tf = NULL, *prio = NULL, *from = NULL, *to = NULL,
               *rank = NULL, *attempts = NULL, *top = NULL, *by = NULL, *detail_top = NULL, *blocks = NULL,
               *trials = NULL, *pos[1];
    int watch = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"logic", 1, &logic, NULL, "FILE", "the trading logic (JSON)"},
        {"grid", 1, &grid, NULL, "FILE", "the sweep grid (JSON; see the local sweep below)"},
        OPT_SYMBOL(symbol),
        OPT_TIMEFRAME(tf),
        OPT_PRIORITY(prio),
        OPT_FROM(from),
        OPT_TO(to),
        {"rank-by", 1, &rank, NULL, "METRIC", "the sweep's ranking (default sharpe)"},
        OPT_ATTEMPTS(attempts),
        {"watch", 0, NULL, &watch, NULL, "follow its progress (as sfctl watch), then print the leaderboard"},
        OPT_TOP(top),
        {"by", 1, &by, NULL, "METRIC", "--watch's leaderboard by one of: " SF_RANK_LIST "\n(default --rank-by)"},
        {"detail-top", 1, &detail_top, NULL, "K", "the best K keep trades and equity, 0 to 100 (10)"},
        {"blocks", 1, &blocks, NULL, "S", "PBO and DSR over S blocks of the returns: even, 2 to 32 (16)"},
        {"effective-trials", 1, &trials, NULL, "N", "trials the DSR deflates for (default: the members)"}};
    int rc = cli_parse(argc, argv, 1, opts, 15, sweep_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    int64_t keep = -1;
    sf_err err = {0};
    if (detail_top && sf_config_parse_int(detail_top, 0, 100, &keep, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--detail-top: %s", err.msg);
    int64_t nblocks = -1, ntrials = -1;
    if (blocks && (sf_config_parse_int(blocks, SF_OVERFIT_BLOCKS_MIN, SF_OVERFIT_BLOCKS_MAX, &nblocks, &err) != SF_OK ||
                   sf_overfit_blocks_check(nblocks, &err) != SF_OK))
        return cli_fail(CTL_EXIT_USAGE, "--blocks: %s", err.msg);
    if (trials && sf_config_parse_int(trials, 1, INT64_MAX, &ntrials, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--effective-trials: %s", err.msg);
    char query[128];
    if ((rc = leaderboard_query(top, by ? by : rank, query, sizeof query)) >= 0)
        return rc;
    if (!cli_need("sweep", logic, "logic") || !cli_need("sweep", grid, "grid") ||
        !cli_need("sweep", symbol, "symbol") || !cli_need("sweep", tf, "timeframe"))
        return CTL_EXIT_USAGE;
    json_t *lj = cli_read_json_file(logic, "--logic"), *gj = lj ? cli_read_json_file(grid, "--grid") : NULL;
    if (gj == NULL) {
        json_decref(lj);
        return CTL_EXIT_USAGE;
    }
    json_t *body = json_pack("{s:o, s:o}", "logic", lj, "grid", gj), *out = NULL;
    if (rank)
        json_object_set_new(body, "rank_by", json_string(rank));
    if (keep >= 0)
        json_object_set_new(body, "detail_top", json_integer((json_int_t)keep));
    if (nblocks > 0)
        json_object_set_new(body, "blocks", json_integer((json_int_t)nblocks));
    if (ntrials > 0)
        json_object_set_new(body, "effective_trials", json_integer((json_int_t)ntrials));
    cli_api api;
    if ((rc = add_common(body, symbol, tf, prio, from, to, attempts)) < 0 && (rc = cli_api_open(&api)) < 0) {
        rc = post_once_or_twice(&api, "/v1/sweeps", body, &out);
        if (rc < 0) {
            printf("%s\n", str(out, "id"));
            fprintf(stderr, "sfctl: sweep of %lld combinations submitted\n",
                    (long long)json_integer_value(json_object_get(out, "total")));
            fflush(stdout);
            rc = watch ? watch_batch(&api, str(out, "id"), query, 0, 0) : CTL_EXIT_OK;
        }
        json_decref(out);
        cli_api_close(&api);
    }
    json_decref(body);
    return rc;
}

int ctl_sweep_any(int argc, char **argv)
{
    int help = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 || strncmp(argv[i], "--data=", 7) == 0)
            return ctl_sweep(argc, argv);
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    }
    if (!help)
        return remote_sweep(argc, argv);
    remote_sweep(argc, argv); /* its usage and options, then the local sweep's */
    fputs("\n", stdout);
    fflush(stdout);
    return ctl_sweep(argc, argv);
}

/* ---- status, result, batch, cancel ------------------------------------------------- */

static const char status_usage[] = "usage: sfctl status JOB_ID [--json]\n\nShow a job's status.\n";
static const char result_usage[] =
    "usage: sfctl result JOB_ID [--json] [--timeout S]\n"
    "\n"
    "Show a finished job's result: a backtest's metrics and number of trades, a logic\n"
    "execution's signal (--json: the whole result, trades and equity included). A sweep\n"
    "member whose trades were not kept has them recomputed by the farm (a high-priority\n"
    "job): this waits up to --timeout seconds (default 300) for it.\n";
static const char batch_usage[] =
    "usage: sfctl batch BATCH_ID [--top K] [--by METRIC] [--json]\n\nShow a sweep's progress and leaderboard.\n";
static const char cancel_usage[] =
    "usage: sfctl cancel ID\n\nCancel a job, or every unfinished member of a sweep (a batch id).\n";

/* GET path and print it with fn (or as JSON). */
static int get_and_print(int argc, char **argv, const char *usage, const char *fmt, void (*fn)(json_t *),
                         int with_board)
{
    const char *top = NULL, *by = NULL, *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {
        {"json", 0, NULL, &json_out, NULL, "the API's answer as JSON"},
        OPT_TOP(top),
        {"by", 1, &by, NULL, "METRIC", "rank by one of: " SF_RANK_LIST "\n(default the sweep's rank_by)"}};
    int rc = cli_parse(argc, argv, 1, opts, with_board ? 3 : 1, usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "%s: give the id (see --help)", argv[0]);
    char query[128] = "", path[384];
    if (with_board && (rc = leaderboard_query(top, by, query, sizeof query)) >= 0)
        return rc;
    snprintf(path, sizeof path, fmt, pos[0], query);
    cli_api api;
    if ((rc = cli_api_open(&api)) >= 0)
        return rc;
    json_t *j = NULL;
    long status = 0;
    rc = cli_api_call(&api, "GET", path, NULL, NULL, 0, &status, &j);
    if (rc < 0 && json_out) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else if (rc < 0) {
        fn(j);
    }
    json_decref(j);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

/* A logic execution's signal, in the rows of the metrics table. */
static void print_signal(json_t *r)
{
    json_t *g = json_object_get(r, "signal"), *hook = json_object_get(g, "webhook");
    static const char *const FIELDS[] = {"signal", "side", "symbol", "bar_time", "created_at"};
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
        if (json_is_string(json_object_get(g, FIELDS[i])))
            printf("  %-15s %s\n", FIELDS[i], str(g, FIELDS[i]));
    if (json_is_object(hook))
        printf("  %-15s %s\n", "webhook", str(hook, "status"));
}

/* A backtest's metrics table; a sweep member's parameters first (as the
 * leaderboard writes them); then the trades listed and where they come from
 * ("stored", or "recomputed" for a member's on request). */
static void print_result(json_t *r)
{
    if (json_is_object(json_object_get(r, "signal"))) {
        print_signal(r);
        return;
    }
    if (json_is_object(json_object_get(r, "params"))) {
        char *params = json_dumps(json_object_get(r, "params"), JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        printf("  %-15s %s\n", "params", params ? params : "-");
        free(params);
    }
    print_metrics(json_object_get(r, "metrics"));
    printf("  %-15s %zu\n", "trades listed", json_array_size(json_object_get(r, "trades")));
    printf("  %-15s %s\n", "source", str(r, "source"));
}

/* GET the result until it is there (a sweep member's recomputation answers
 * 202 meanwhile) or timeout_s passes; -1 with *out, else an exit status. */
static int fetch_result(cli_api *api, const char *id, double timeout_s, json_t **out)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    double deadline = now_s() + timeout_s;
    for (int said = 0;; said = 1) {
        long status = 0;
        int rc = cli_api_call(api, "GET", path, NULL, NULL, 0, &status, out);
        if (rc >= 0 || status != 202)
            return rc;
        if (!said)
            fprintf(stderr, "sfctl: %s: trades not kept; the farm recomputes them (job %s)\n", id,
                    str(*out, "detail_job_id"));
        json_decref(*out);
        *out = NULL;
        if (now_s() >= deadline)
            return cli_fail(CTL_EXIT_FAIL, "result: %s not recomputed after %.0f s", id, timeout_s);
        sleep_ms(POLL_JOB_MS);
    }
}

int ctl_status(int argc, char **argv)
{
    return get_and_print(argc, argv, status_usage, "/v1/jobs/%s%s", print_job, 0);
}

int ctl_result(int argc, char **argv)
{
    const char *timeout = NULL, *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {{"json", 0, NULL, &json_out, NULL, "the whole result as JSON (trades and equity included)"},
                            {"timeout", 1, &timeout, NULL, "S", "wait up to S seconds for a recomputation (300)"}};
    int rc = cli_parse(argc, argv, 1, opts, 2, result_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    int64_t t = 300;
    sf_err err = {0};
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "result: give the job id (see --help)");
    if (timeout && sf_config_parse_int(timeout, 1, 604800, &t, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "--timeout: %s", err.msg);
    cli_api api;
    if ((rc = cli_api_open(&api)) >= 0)
        return rc;
    json_t *j = NULL;
    rc = fetch_result(&api, pos[0], (double)t, &j);
    if (rc < 0 && json_out) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else if (rc < 0) {
        print_result(j);
    }
    json_decref(j);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

int ctl_batch(int argc, char **argv)
{
    return get_and_print(argc, argv, batch_usage, "/v1/batches/%s%s", print_batch, 1);
}

int ctl_cancel(int argc, char **argv)
{
    const char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(argc, argv, 1, NULL, 0, cancel_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "cancel: give the job or batch id (see --help)");
    cli_api api;
    if ((rc = cli_api_open(&api)) >= 0)
        return rc;
    char path[256];
    json_t *j = NULL;
    long status = 0;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", pos[0]);
    rc = cli_api_call(&api, "POST", path, "{}", NULL, 1, &status, &j);
    if (rc >= 0 && status == 404) {
        snprintf(path, sizeof path, "/v1/batches/%s/cancel", pos[0]);
        rc = cli_api_call(&api, "POST", path, "{}", NULL, 1, &status, &j);
        if (rc >= 0 && status == 404)
            rc = cli_fail(CTL_EXIT_NOTFOUND, "cancel: no job or batch %s", pos[0]);
    }
    if (rc < 0 && json_object_get(j, "cancelled") != NULL)
        printf("batch %s: %lld cancelled, %lld running members asked to stop\n", pos[0],
               (long long)json_integer_value(json_object_get(j, "cancelled")),
               (long long)json_integer_value(json_object_get(j, "cancel_requested")));
    else if (rc < 0)
        printf("job %s: %s\n", pos[0],
               strcmp(str(j, "status"), "cancelled") == 0 ? "cancelled" : "running; asked to stop");
    json_decref(j);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}
