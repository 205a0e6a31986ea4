/*
 * The sfctl binary against a real farm: sf-api (and, where jobs must run,
 * sf-scheduler and sf-worker) on a scratch database and a private Redis
 * (tests/support/farm.h). Each case runs SF_BINARY_DIR/sfctl as a user would,
 * with SF_API_URL and SF_API_KEY, and checks its exit status (sfctl/exit.h:
 * 2 usage, 3 unreachable, 4 authentication, 5 not found, 1 failed members)
 * and what it prints: `submit --wait --json` is one JSON document,
 * `submit --wait` prints the table of `sfctl backtest` on the same bars, a
 * farm leaderboard carries the members' job ids.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <signal.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/auth.h"
#include "sf/http.h"

#define RUN_TIMEOUT_MS 60000
#define OUT_MAX (1 << 16)
#define NO_JOB "00000000-0000-4000-8000-000000000000"

static char g_url[64], g_key[160];
static const char *g_child_db; /* when set: the DATABASE_URL of the sfctl runs */

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_sfctl, .init = setup, .fini = teardown, .timeout = 120);

typedef struct ctl_run {
    int code;          /* exit status */
    char out[OUT_MAX]; /* stdout */
    char err[OUT_MAX]; /* stderr */
} ctl_run;

static void slurp_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* In the child: stdout and stderr to files, the API settings, exec. */
static void exec_sfctl(const char *bin, const char *const *args, const char *url, const char *key, const char *out,
                       const char *err)
{
    FILE *o = freopen(out, "w", stdout), *e = freopen(err, "w", stderr);
    if (o == NULL || e == NULL)
        _exit(126);
    if (g_child_db)
        setenv("DATABASE_URL", g_child_db, 1);
    if (url)
        setenv("SF_API_URL", url, 1);
    if (key)
        setenv("SF_API_KEY", key, 1);
    else
        unsetenv("SF_API_KEY");
    char *argv[32] = {(char *)(uintptr_t)bin};
    for (int i = 0; args[i] && i < 30; i++)
        argv[i + 1] = (char *)(uintptr_t)args[i];
    execv(bin, argv);
    _exit(127);
}

/* Run sfctl args... (NULL-terminated) with SF_API_URL=url and SF_API_KEY=key
 * (NULL: unset); bounded by RUN_TIMEOUT_MS. */
static void sfctl(ctl_run *r, const char *url, const char *key, const char *const *args)
{
    char bin[1024], out[256], err[256];
    farm_bin("sfctl", bin, sizeof bin);
    snprintf(out, sizeof out, "%s/sfctl.out", F.dir);
    snprintf(err, sizeof err, "%s/sfctl.err", F.dir);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        exec_sfctl(bin, args, url, key, out, err);
    int status = 0;
    int64_t end = sf_proc_now_ms() + RUN_TIMEOUT_MS;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (sf_proc_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("sfctl %s did not finish in %d ms", args[0], RUN_TIMEOUT_MS);
        }
        sf_proc_sleep_ms(20);
    }
    cr_assert(WIFEXITED(status), "sfctl %s: killed by a signal", args[0]);
    r->code = WEXITSTATUS(status);
    slurp_file(out, r->out, sizeof r->out);
    slurp_file(err, r->err, sizeof r->err);
}

/* sfctl with the farm's URL and key; asserts the exit status. */
static void expect(ctl_run *r, int code, const char *const *args)
{
    sfctl(r, g_url, g_key, args);
    FARM_ASSERT(r->code == code, "sfctl %s %s: exit %d, want %d\nstdout: %s\nstderr: %s", args[0],
                args[1] ? args[1] : "", r->code, code, r->out, r->err);
}

static int api_ready(void *ctx)
{
    (void)ctx;
    sf_http *h = NULL;
    sf_http_opts o = {.connect_timeout_ms = 500, .timeout_ms = 2000};
    sf_http_response resp;
    sf_http_response_init(&resp);
    char url[128];
    snprintf(url, sizeof url, "%s/ready", g_url);
    int ok = sf_http_new(&o, &h, NULL) == SF_OK &&
             sf_http_request(h, "GET", url, NULL, NULL, 0, &resp, NULL) == SF_OK && resp.status == 200;
    sf_http_response_destroy(&resp);
    sf_http_free(h);
    return ok;
}

/* A user and key, sf-api; with_worker: sf-scheduler and sf-worker too. */
static void start_farm(int with_worker)
{
    char *user = farm_user("ctl");
    sf_auth_key key;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&key, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_key_create(F.db, user, &key, &err), SF_OK, "%s", err.msg);
    snprintf(g_key, sizeof g_key, "%s", key.text);
    sf_auth_key_wipe(&key);
    free(user);
    int port = sf_proc_free_port();
    char p[32];
    snprintf(p, sizeof p, "PORT=%d", port);
    snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d", port);
    const char *env[] = {p, "BIND_ADDRESS=127.0.0.1", NULL};
    farm_start("api", "sf-api", env);
    cr_assert_eq(sf_http_global_init(&err), SF_OK, "%s", err.msg);
    FARM_ASSERT(sf_proc_wait_until(api_ready, NULL, 15000, 50), "sf-api not ready");
    if (with_worker) {
        farm_scheduler("sched", NULL);
        farm_worker("w1", 2, 5, NULL);
    }
}

/* A file in the test's directory with text; its path in path. */
static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", F.dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void write_logic(char *path, size_t size)
{
    write_file("logic.json", FARM_LOGIC_SMA, path, size);
}

/* The stored bars of symbol/tf as the CSV sfctl backtest --data reads. */
static void write_bars_csv(const char *symbol, const char *tf, char *path, size_t size)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(F.db, symbol, tf, 0, &b, NULL, &err), SF_OK, "%s", err.msg);
    snprintf(path, size, "%s/bars.csv", F.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("timestamp,open,high,low,close,volume\n", f);
    for (size_t i = 0; i < b->n; i++)
        fprintf(f, "%lld,%.17g,%.17g,%.17g,%.17g,%.17g\n", (long long)b->ts[i], b->open[i], b->high[i], b->low[i],
                b->close[i], b->volume[i]);
    fclose(f);
    sf_bars_free(b);
}

/* ---- exit statuses --------------------------------------------------------------- */

Test(farm_sfctl, a_bad_key_exits_4_an_unknown_job_5_a_closed_port_3_and_bad_usage_2)
{
    farm_dataset("SMALL", "1d", 300, 91);
    start_farm(0);
    char logic[256];
    write_logic(logic, sizeof logic);
    ctl_run *r = malloc(sizeof *r);

    /* 4: a key the farm does not know (the API answers 401 before any lookup) */
    sfctl(r, g_url, "sf_not_a_real_key", (const char *const[]){"status", NO_JOB, NULL});
    FARM_ASSERT(r->code == 4, "bad key: exit %d: %s", r->code, r->err);
    cr_assert(strstr(r->err, "invalid API key") != NULL, "%s", r->err);
    sfctl(r, g_url, "sf_not_a_real_key",
          (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", NULL});
    cr_assert_eq(r->code, 4, "%s", r->err);

    /* 5: no such job, batch or data set */
    expect(r, 5, (const char *const[]){"status", NO_JOB, NULL});
    cr_assert(strstr(r->err, "no such job") != NULL, "%s", r->err);
    expect(r, 5, (const char *const[]){"result", NO_JOB, NULL});
    expect(r, 5, (const char *const[]){"batch", NO_JOB, NULL});
    expect(r, 5, (const char *const[]){"cancel", NO_JOB, NULL});
    expect(r, 5, (const char *const[]){"watch", NO_JOB, "--timeout", "5", NULL});
    expect(r, 5, (const char *const[]){"submit", "--logic", logic, "--symbol", "NOPE", "--timeframe", "1d", NULL});

    /* 3: nothing listens on the port (bound and closed a moment ago) */
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", sf_proc_free_port());
    sfctl(r, closed, g_key, (const char *const[]){"status", NO_JOB, NULL});
    FARM_ASSERT(r->code == 3, "unreachable: exit %d: %s", r->code, r->err);
    sfctl(r, closed, g_key,
          (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", NULL});
    cr_assert_eq(r->code, 3, "submit to a closed port: %s", r->err);
    cr_assert(strstr(r->err, "retrying once") != NULL, "%s", r->err);

    /* 2: usage, validation, configuration */
    expect(r, 2, (const char *const[]){"status", NULL});
    expect(r, 2, (const char *const[]){"nosuchcommand", NULL});
    expect(r, 2, (const char *const[]){"watch", NO_JOB, "--bogus", NULL});
    expect(r, 2, (const char *const[]){"batch", NO_JOB, "--top", "0", NULL});
    cr_assert(strstr(r->err, "top: must be an integer from 1 to 1000") != NULL, "%s", r->err);
    expect(r, 2, (const char *const[]){"batch", NO_JOB, "--by", "luck", NULL});
    expect(r, 2, (const char *const[]){"submit", "--symbol", "SMALL", "--timeframe", "1d", NULL});
    char bad[256];
    write_file("bad.json", "{\"name\": \"bad\", \"entry\": {\"gt\": [\"nope\", 1]}}", bad, sizeof bad);
    expect(r, 2, (const char *const[]){"submit", "--logic", bad, "--symbol", "SMALL", "--timeframe", "1d", NULL});
    sfctl(r, g_url, NULL, (const char *const[]){"status", NO_JOB, NULL});
    cr_assert_eq(r->code, 2, "SF_API_KEY unset: exit %d: %s", r->code, r->err);
    cr_assert(strstr(r->err, "SF_API_KEY") != NULL, "%s", r->err);

    /* and the exit statuses are in sfctl --help */
    expect(r, 0, (const char *const[]){"--help", NULL});
    cr_assert(strstr(r->out, "5  not found") != NULL && strstr(r->out, "3  the server is unreachable") != NULL, "%s",
              r->out);
    free(r);
}

/* ---- what submit --wait prints ---------------------------------------------------- */

Test(farm_sfctl, submit_wait_json_is_one_json_document_and_the_table_is_the_local_one)
{
    farm_dataset("SMALL", "1d", 400, 92);
    start_farm(1);
    char logic[256], csv[256];
    write_logic(logic, sizeof logic);
    write_bars_csv("SMALL", "1d", csv, sizeof csv);
    ctl_run *r = malloc(sizeof *r);

    expect(r, 0,
           (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", "--wait",
                                 "--json", NULL});
    json_error_t je;
    json_t *j = json_loads(r->out, 0, &je);
    cr_assert_not_null(j, "stdout is not one JSON document (%s at %d): %s", je.text, je.position, r->out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "succeeded", "%s", r->out);
    const char *id = json_string_value(json_object_get(j, "id"));
    cr_assert(id != NULL && strlen(id) == 36, "%s", r->out);
    double got = json_number_value(json_object_get(json_object_get(j, "metrics"), "final_equity"));
    double want = farm_expected_final_equity(FARM_LOGIC_SMA, "SMALL", "1d");
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "final_equity %.17g, the engine says %.17g", got, want);
    json_decref(j);

    expect(r, 0,
           (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", "--json", NULL});
    j = json_loads(r->out, 0, &je);
    cr_assert_not_null(j, "submit --json: %s", r->out);
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "id"))), 36, "%s", r->out);
    json_decref(j);

    /* The farm's table: the job id, then the rows of `sfctl backtest` on the same bars. */
    expect(r, 0,
           (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", "--wait", NULL});
    char *remote = strdup(r->out);
    /* stderr is no terminal here: the job's states as plain lines, never \r */
    cr_assert(strstr(r->err, "progress: job ") != NULL && strstr(r->err, ": succeeded (") != NULL, "%s", r->err);
    cr_assert_null(strchr(r->err, '\r'), "a \\r in a pipe: %s", r->err);
    cr_assert_null(strstr(r->out, "progress:"), "progress on stdout: %s", r->out);
    expect(r, 0, (const char *const[]){"backtest", "--logic", logic, "--data", csv, NULL});
    const char *local_rows = strstr(r->out, "\n\n"), *farm_rows = strchr(remote, '\n');
    cr_assert(local_rows && farm_rows, "local: %s\nfarm: %s", r->out, remote);
    cr_assert_eq(farm_rows - remote, 36, "the first line is the job id: %s", remote);
    cr_assert(strstr(farm_rows, "  final equity") == farm_rows + 1, "%s", remote);
    cr_assert_str_eq(farm_rows + 1, local_rows + 2, "the farm's table differs from the local one");
    free(remote);
    free(r);
}

/* ---- sweeps: job ids in the leaderboard, 1 when members failed -------------------- */

static const char GRID[] = "{\"indicators.fast.period\": {\"from\": 2, \"to\": 9, \"step\": 1}}";

/* The SMA cross with fees, so that ranking by fees means something. */
static const char LOGIC_FEES[] =
    "{\"name\":\"sma-fees\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":5},"
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":20}},"
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]},"
    "\"execution\":{\"fee_bps\":10}}";

/* Submit a sweep of the 8 fast periods with sfctl, ranked by fees; its batch id. */
static void submit_sweep(ctl_run *r, const char *symbol, char *id, size_t size)
{
    char logic[256], grid[256];
    write_file("fees.json", LOGIC_FEES, logic, sizeof logic);
    write_file("grid.json", GRID, grid, sizeof grid);
    expect(r, 0,
           (const char *const[]){"sweep", "--logic", logic, "--grid", grid, "--symbol", symbol, "--timeframe", "1d",
                                 "--rank-by", "fees", "--max-attempts", "1", NULL});
    size_t n = strcspn(r->out, "\n");
    cr_assert_eq(n, 36, "the batch id: %s", r->out);
    snprintf(id, size, "%.*s", (int)n, r->out);
}

/* The farm's leaderboard (from "N combinations") without its job column
 * ("  %4zu %6zu" then " %-36s"), into out. */
static void strip_jobs(const char *text, char *out, size_t size)
{
    const char *p = strstr(text, "combinations, ranked by");
    cr_assert_not_null(p, "%s", text);
    while (p > text && p[-1] != '\n')
        p--;
    size_t n = 0;
    for (const char *line = p; *line && n + 1 < size;) {
        size_t len = strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n');
        int row = strncmp(line, "  ", 2) == 0 && len > 13 + 37;
        for (size_t i = 0; i < len && n + 1 < size; i++)
            if (!row || i < 13 || i >= 13 + 37)
                out[n++] = line[i];
        line += len;
    }
    out[n] = '\0';
}

/* `sfctl sweep --data` over the same bars lists the same members in the same
 * order with the same figures as the farm's leaderboard by `by`. */
static void expect_local_board(ctl_run *r, const char *farm_out, const char *by)
{
    char logic[256], grid[256], csv[256];
    write_file("fees.json", LOGIC_FEES, logic, sizeof logic);
    write_file("grid.json", GRID, grid, sizeof grid);
    write_bars_csv("SMALL", "1d", csv, sizeof csv);
    char *board = malloc(OUT_MAX);
    strip_jobs(farm_out, board, OUT_MAX);
    expect(r, 0,
           (const char *const[]){"sweep", "--logic", logic, "--data", csv, "--grid", grid, "--by", by, "--top", "8",
                                 NULL});
    cr_assert_str_eq(board, r->out, "by %s: the farm's leaderboard is not the local one", by);
    cr_assert(strstr(r->err, "progress: sweep: 8/8 members (100%)") != NULL, "%s", r->err);
    cr_assert_null(strchr(r->err, '\r'), "a \\r in a pipe: %s", r->err);
    /* and so are PBO, DSR and the verdict under it (issue 14) */
    cr_assert(strstr(board, "\noverfitting: ") != NULL && strstr(board, "\nDSR ") != NULL, "%s", board);
    free(board);
}

Test(farm_sfctl, a_finished_sweep_shows_job_ids_and_ranks_as_the_local_sweep)
{
    farm_dataset("SMALL", "1d", 300, 93);
    start_farm(1);
    ctl_run *r = malloc(sizeof *r);
    char id[64];
    submit_sweep(r, "SMALL", id, sizeof id);
    expect(r, 0, (const char *const[]){"watch", id, "--timeout", "60", "--top", "8", NULL});
    cr_assert(strstr(r->err, "progress: batch ") != NULL && strstr(r->err, ": 8/8 members (100%)") != NULL, "%s",
              r->err);
    cr_assert_null(strchr(r->err, '\r'), "a \\r in a pipe: %s", r->err);
    cr_assert(strstr(r->out, "8 combinations, ranked by fees") != NULL, "%s", r->out);
    cr_assert(strstr(r->out, " job ") != NULL && strstr(r->out, " fees ") != NULL, "%s", r->out);
    /* every member's row names its job: the ids of the batch's jobs, each once */
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *p[] = {id};
    cr_assert_eq(sf_db_query(F.db, "SELECT id FROM jobs WHERE batch_id = $1::uuid", 1, p, &res, &err), SF_OK, "%s",
                 err.msg);
    cr_assert_eq(sf_db_nrows(res), 8);
    for (int i = 0; i < 8; i++) {
        const char *job = sf_db_get(res, i, 0), *at = strstr(r->out, job);
        cr_assert(at != NULL, "job %s not in the leaderboard:\n%s", job, r->out);
        cr_assert_null(strstr(at + 1, job), "job %s twice", job);
    }
    sf_db_res_free(res);
    expect_local_board(r, r->out, "fees");
    expect(r, 0, (const char *const[]){"batch", id, "--by", "sharpe", "--top", "8", NULL});
    expect_local_board(r, r->out, "sharpe");
    free(r);
}

Test(farm_sfctl, watch_exits_1_when_members_failed)
{
    farm_dataset("GONE", "1d", 300, 94);
    start_farm(0);
    ctl_run *r = malloc(sizeof *r);
    char id[64];
    submit_sweep(r, "GONE", id, sizeof id);
    /* The data set goes before any worker runs: every member fails, for sure. */
    farm_exec("DELETE FROM datasets WHERE symbol = 'GONE'");
    farm_scheduler("sched", NULL);
    farm_worker("w1", 2, 5, NULL);
    expect(r, 1, (const char *const[]){"watch", id, "--timeout", "60", NULL});
    cr_assert(strstr(r->err, "8 members failed, 0 died") != NULL, "%s", r->err);
    expect(r, 0, (const char *const[]){"batch", id, NULL});
    free(r);
}

/* ---- a metric at or above 2^63 -------------------------------------------------- */

/* GET path from sf-api with the test's key: the status, the body in body. */
static long api_get(const char *path, char *body, size_t size)
{
    sf_http *h = NULL;
    sf_http_opts o = {.connect_timeout_ms = 1000, .timeout_ms = 10000};
    sf_http_response resp;
    sf_http_response_init(&resp);
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s%s", g_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", g_key);
    const char *headers[] = {auth, NULL};
    sf_err err = {0};
    cr_assert_eq(sf_http_new(&o, &h, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_http_request(h, "GET", url, headers, NULL, 0, &resp, &err), SF_OK, "GET %s: %s", path, err.msg);
    long status = resp.status;
    snprintf(body, size, "%s", resp.body.data ? resp.body.data : "");
    sf_http_response_destroy(&resp);
    sf_http_free(h);
    return status;
}

/* metrics.final_equity of a JSON document (read as jansson reads it by default). */
static double final_equity_of(const char *text, const char *what)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "%s is not JSON jansson reads (%s): %.300s", what, je.text, text);
    json_t *metrics = json_object_get(j, "metrics");
    if (metrics == NULL) /* a leaderboard: its best member */
        metrics = json_object_get(json_array_get(json_object_get(j, "best"), 0), "metrics");
    json_t *v = json_object_get(metrics, "final_equity");
    cr_assert(json_is_number(v), "%s: no final_equity: %.300s", what, text);
    double d = json_number_value(v);
    json_decref(j);
    return d;
}

Test(farm_sfctl, a_metric_of_1e20_reads_back_through_the_api_and_sfctl)
{
    farm_dataset("SMALL", "1d", 300, 95);
    start_farm(1);
    ctl_run *r = malloc(sizeof *r);
    char logic[256], fees[256], grid[256], job[64], batch[64], path[128], sql[512];
    write_logic(logic, sizeof logic);
    expect(r, 0,
           (const char *const[]){"submit", "--logic", logic, "--symbol", "SMALL", "--timeframe", "1d", "--wait", NULL});
    snprintf(job, sizeof job, "%.36s", r->out);
    /* a sweep that keeps no member's trades: a member's result is a 202 with its metrics */
    write_file("fees.json", LOGIC_FEES, fees, sizeof fees);
    write_file("grid.json", GRID, grid, sizeof grid);
    expect(r, 0,
           (const char *const[]){"sweep", "--logic", fees, "--grid", grid, "--symbol", "SMALL", "--timeframe", "1d",
                                 "--detail-top", "0", NULL});
    snprintf(batch, sizeof batch, "%.36s", r->out);
    expect(r, 0, (const char *const[]){"watch", batch, "--timeout", "60", NULL});
    snprintf(sql, sizeof sql,
             "UPDATE results SET metrics = jsonb_set(metrics, '{final_equity}', '1e20') WHERE job_id = '%s'"
             " OR job_id IN (SELECT id FROM jobs WHERE batch_id = '%s')",
             job, batch);
    farm_exec(sql);
    char *member =
        farm_text1("SELECT id::text FROM jobs WHERE batch_id = $1::uuid ORDER BY combo_index LIMIT 1", batch);

    /* PostgreSQL prints it as an integer of 21 digits, which jansson alone refuses */
    char *body = malloc(OUT_MAX);
    snprintf(path, sizeof path, "/v1/jobs/%s/result", job);
    cr_assert_eq(api_get(path, body, OUT_MAX), 200, "%s", body);
    cr_assert(strstr(body, "\"final_equity\": 100000000000000000000") != NULL, "%.300s", body);
    cr_assert_null(json_loads(body, 0, NULL), "jansson reads it: the test shows nothing");

    /* the API's own reads of stored metrics: a member's 202 and the leaderboard */
    snprintf(path, sizeof path, "/v1/jobs/%s/result", member);
    cr_assert_eq(api_get(path, body, OUT_MAX), 202, "%s", body);
    cr_assert_eq(final_equity_of(body, "a member's 202"), 1e20);
    snprintf(path, sizeof path, "/v1/batches/%s?by=fees&top=8", batch);
    cr_assert_eq(api_get(path, body, OUT_MAX), 200, "%s", body);
    cr_assert_eq(final_equity_of(body, "the leaderboard"), 1e20);

    /* sfctl: the table and --json */
    expect(r, 0, (const char *const[]){"result", job, NULL});
    cr_assert(strstr(r->out, "final equity") != NULL && strstr(r->out, "100000000000000000000") != NULL, "%s", r->out);
    expect(r, 0, (const char *const[]){"result", job, "--json", NULL});
    cr_assert_eq(final_equity_of(r->out, "sfctl result --json"), 1e20);
    expect(r, 0, (const char *const[]){"batch", batch, "--by", "fees", "--top", "8", NULL});
    cr_assert(strstr(r->out, "8 combinations, ranked by fees") != NULL, "%s", r->out);
    free(body);
    free(member);
    free(r);
}

/* ---- --version, --help of every command, data import's progress ---------------- */

/* The options listed in a help text: lines "  --name[ ARG]  text"; *has_arg
 * for each. Returns the count. */
static size_t help_options(const char *help, char names[][40], int *has_arg, size_t max)
{
    size_t n = 0;
    for (const char *l = help; l && *l && n < max; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "  --", 4) != 0)
            continue;
        size_t len = strcspn(l + 4, " \n");
        snprintf(names[n], sizeof names[n], "%.*s", (int)len, l + 4);
        const char *after = l + 4 + len;
        has_arg[n] = after[0] == ' ' && after[1] != ' ' && after[1] != '\n';
        n += strcmp(names[n], "help") != 0;
    }
    return n;
}

/* The subcommands of cmd from its usage lines ("sfctl cmd word [word] ..."):
 * one or two lower-case words after the command. */
static size_t subcommands(const char *help, const char *cmd, char subs[][2][16], size_t max)
{
    char pre[64];
    snprintf(pre, sizeof pre, "sfctl %s ", cmd);
    size_t n = 0;
    for (const char *p = strstr(help, pre); p && n < max; p = strstr(p + 1, pre)) {
        const char *w = p + strlen(pre);
        char a[16] = "", b[16] = "";
        if (sscanf(w, "%15[a-z] %15[a-z]", a, b) < 1 || (w[strlen(a)] != ' ' && w[strlen(a)] != '\n'))
            continue;
        if (strcmp(cmd, "admin") != 0)
            b[0] = '\0';
        int dup = 0;
        for (size_t i = 0; i < n; i++)
            dup |= strcmp(subs[i][0], a) == 0 && strcmp(subs[i][1], b) == 0;
        if (!dup && a[0]) {
            snprintf(subs[n][0], 16, "%s", a);
            snprintf(subs[n++][1], 16, "%s", b);
        }
    }
    return n;
}

/* Each option the help lists is one the parser takes: given alone (with a
 * value when it has one) it is never an "unknown option"; the run then
 * fails on what is missing or on the closed port and database. */
static void expect_options_parse(ctl_run *r, const char *closed, const char *const *path, size_t depth)
{
#if defined(__SANITIZE_ADDRESS__)
    /* One sfctl run an option: ~170 runs take over two minutes under the
     * sanitizers. The release build runs them all; here the help of every
     * command is still read, and the other tests run the parsers. */
    (void)r, (void)closed, (void)path, (void)depth;
    return;
#endif
    static char names[64][40];
    int has_arg[64];
    size_t n = help_options(r->out, names, has_arg, 64);
    char *help = strdup(r->out);
    for (size_t i = 0; i < n; i++) {
        char opt[64];
        snprintf(opt, sizeof opt, "--%.39s%s", names[i], has_arg[i] ? "=x" : "");
        const char *args[8] = {0};
        for (size_t k = 0; k < depth; k++)
            args[k] = path[k];
        args[depth] = opt;
        sfctl(r, closed, "sf_not_a_real_key", args);
        if (strstr(r->err, "unknown option") != NULL && strcmp(path[0], "sweep") == 0) {
            args[depth + 1] = "--data=/nonexistent.csv"; /* the local sweep's options */
            sfctl(r, closed, "sf_not_a_real_key", args);
        }
        cr_assert_null(strstr(r->err, "unknown option"), "sfctl %s %s: the help lists it, the parser refuses it: %s",
                       path[0], opt, r->err);
    }
    cr_assert(n > 0 || strstr(help, "options:\n  --help") != NULL, "sfctl %s: no options section:\n%s", path[0], help);
    free(help);
}

/* ~170 runs of sfctl: about 30 s (the option runs are skipped under the sanitizers) */
Test(farm_sfctl, version_and_every_commands_help_list_every_option_the_parser_takes, .timeout = 600)
{
    ctl_run *r = malloc(sizeof *r);
    expect(r, 0, (const char *const[]){"--version", NULL});
    cr_assert(strncmp(r->out, "sfctl ", 6) == 0 && r->out[6] >= '0' && r->out[6] <= '9', "%s", r->out);
    char version[64];
    snprintf(version, sizeof version, "%.63s", r->out);
    expect(r, 0, (const char *const[]){"version", NULL});
    cr_assert_str_eq(r->out, version);

    char closed[64], closed_db[128];
    int port = sf_proc_free_port();
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", port);
    snprintf(closed_db, sizeof closed_db, "postgresql://127.0.0.1:%d/none?connect_timeout=2", port);
    g_child_db = closed_db;
    expect(r, 0, (const char *const[]){"--help", NULL});
    char *top = strdup(r->out), cmds[32][16];
    size_t nc = 0;
    const char *l = strstr(top, "commands:\n");
    cr_assert_not_null(l, "%s", top);
    for (l += 10; *l != '\n' && *l && nc < 32; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
        if (sscanf(l, "  %15[a-z] ", cmds[nc]) == 1)
            nc++;
    cr_assert_geq(nc, 18, "%s", top);
    static char subs[16][2][16];
    for (size_t c = 0; c < nc; c++) {
        expect(r, 0, (const char *const[]){cmds[c], "--help", NULL});
        cr_assert(strstr(r->out, "usage: sfctl") != NULL, "sfctl %s --help:\n%s", cmds[c], r->out);
        size_t ns = subcommands(r->out, cmds[c], subs, 16);
        int subbed = strcmp(cmds[c], "data") == 0 || strcmp(cmds[c], "admin") == 0;
        if (!subbed || ns == 0)
            expect_options_parse(r, closed, (const char *const[]){cmds[c]}, 1);
        for (size_t k = 0; subbed && k < ns; k++) {
            const char *path[3] = {cmds[c], subs[k][0], subs[k][1][0] ? subs[k][1] : NULL};
            size_t depth = path[2] ? 3 : 2;
            const char *args[5] = {path[0], path[1], path[2] ? path[2] : "--help", path[2] ? "--help" : NULL, NULL};
            expect(r, 0, args);
            expect_options_parse(r, closed, path, depth);
        }
    }
    g_child_db = NULL;
    free(top);
    free(r);
}

Test(farm_sfctl, data_import_shows_plain_progress_lines_in_a_pipe)
{
    char csv[256];
    write_file("import.csv",
               "timestamp,open,high,low,close,volume\n"
               "1700000000,1,2,0.5,1.5,10\n1700003600,1.5,2,1,1.8,11\n1700007200,1.8,2.2,1.7,2,12\n",
               csv, sizeof csv);
    ctl_run *r = malloc(sizeof *r);
    g_child_db = F.db_url;
    expect(r, 0, (const char *const[]){"data", "import", "--symbol", "PROG", "--timeframe", "1h", csv, NULL});
    g_child_db = NULL;
    cr_assert(strstr(r->out, "imported 3 bars into PROG 1h (version 1)") != NULL, "%s", r->out);
    cr_assert(strstr(r->err, "progress: data import: read: 0.0/0.0 MB (100%)") != NULL, "%s", r->err);
    cr_assert(strstr(r->err, "progress: data import: inserting 3 bars (") != NULL, "%s", r->err);
    cr_assert(strstr(r->err, "progress: data import: imported (") != NULL, "%s", r->err);
    cr_assert_null(strchr(r->err, '\r'), "a \\r in a pipe: %s", r->err);
    cr_assert_null(strstr(r->out, "progress"), "progress on stdout: %s", r->out);
    free(r);
}
