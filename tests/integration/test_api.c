/*
 * Integration tests for sf-api: each test starts the built sf-api (fork/exec
 * from SF_BINARY_DIR, PORT=0, its port read from the "listening" log line)
 * against a scratch database with the migrations applied and a queue name of
 * its own, with two users whose keys are made through sf/auth.h, and talks
 * to it over HTTP with sf/http.h.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/rawhttp.h"
#include "../support/testenv.h"
#include "sf/auth.h"
#include "sf/dataset.h"
#include "sf/http.h"
#include "sf/migrate.h"
#include "sf/rank.h"
#include "sf/result.h"
#include "sf/sweep.h"

#define MAX_BODY 8192
#define SWEEP_MAX 50
#define RUN_MAX_MB 1
#define ATTEMPTS_CAP 7

static char g_base_url[1024], g_name[64], g_url[1024], g_redis[512], g_queue[64];
static sf_db *g_db;
static pid_t g_pid = -1;
static int g_port;
static sf_http *g_http;
static sf_auth_key g_key1, g_key2;
static char g_user1[SF_AUTH_ID_MAX], g_user2[SF_AUTH_ID_MAX];

static const char LOGIC[] =
    "{\"name\":\"sma-cross\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":2},"
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":3}},"
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}";

/* ---- the server --------------------------------------------------------------------- */

static void import_dataset(void)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(50, &b, &err), SF_OK);
    for (size_t i = 0; i < 50; i++) {
        double p = 100.0 + (double)(i % 7);
        b->ts[i] = 1704067200 + (int64_t)i * 86400;
        b->open[i] = b->close[i] = p;
        b->high[i] = p + 1;
        b->low[i] = p - 1;
        b->volume[i] = 10;
    }
    cr_assert_eq(sf_dataset_import(g_db, "BTC-USD", "1d", b, NULL, &err), SF_OK, "%s", err.msg);
    sf_bars_free(b);
}

/* Read the child's stdout until its "listening" line; returns the port. */
static int read_port(int fd)
{
    char buf[8192];
    size_t len = 0;
    for (int waited = 0; waited < 10000;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            waited += 100;
            continue;
        }
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *l = strstr(buf, "\"listening\"");
        const char *pp = l ? strstr(l, "\"port\":") : NULL;
        int64_t port = 0;
        if (pp && strchr(pp, '\n')) {
            char digits[8] = "";
            sscanf(pp + 7, "%7[0-9]", digits);
            cr_assert_eq(sf_config_parse_int(digits, 1, 65535, &port, NULL), SF_OK, "port in %s", pp);
            return (int)port;
        }
    }
    cr_assert_fail("sf-api did not report listening; output: %.*s", (int)len, buf);
    return 0;
}

#define METRICS_TOKEN "scrape-secret"

static void start_api(void)
{
    char env[12][1200];
    snprintf(env[0], sizeof env[0], "DATABASE_URL=%s", g_url);
    snprintf(env[1], sizeof env[1], "REDIS_URL=%s", g_redis);
    snprintf(env[2], sizeof env[2], "QUEUE=%s", g_queue);
    snprintf(env[3], sizeof env[3], "PORT=0");
    snprintf(env[4], sizeof env[4], "BIND_ADDRESS=127.0.0.1");
    snprintf(env[5], sizeof env[5], "API_THREADS=2");
    snprintf(env[6], sizeof env[6], "MAX_BODY_BYTES=%d", MAX_BODY);
    snprintf(env[7], sizeof env[7], "SWEEP_MAX_COMBINATIONS=%d", SWEEP_MAX);
    snprintf(env[8], sizeof env[8], "LOG_LEVEL=info");
    snprintf(env[9], sizeof env[9], "METRICS_TOKEN=%s", METRICS_TOKEN);
    snprintf(env[10], sizeof env[10], "SF_RUN_MAX_MB=%d", RUN_MAX_MB);
    snprintf(env[11], sizeof env[11], "MAX_ATTEMPTS_CAP=%d", ATTEMPTS_CAP);
    char *envp[] = {env[0], env[1], env[2], env[3],  env[4],  env[5], env[6],
                    env[7], env[8], env[9], env[10], env[11], NULL};
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    g_pid = fork();
    cr_assert_geq(g_pid, 0);
    if (g_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char *argv[] = {(char *)(uintptr_t) "sf-api", NULL};
        execve(SF_BINARY_DIR "/sf-api", argv, envp);
        _exit(127);
    }
    close(fds[1]);
    g_port = read_port(fds[0]);
    close(fds[0]); /* later log lines get EPIPE (ignored by sf-api) */
}

static int stop_api(void)
{
    int status = -1;
    if (g_pid <= 0)
        return -1;
    kill(g_pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(g_pid, &status, WNOHANG) == g_pid) {
            g_pid = -1;
            return status;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(g_pid, SIGKILL);
    waitpid(g_pid, &status, 0);
    g_pid = -1;
    return -1;
}

static void setup(void)
{
    char *base = sf_testenv_require("DATABASE_URL"), *redis = sf_testenv_require("REDIS_URL");
    snprintf(g_base_url, sizeof g_base_url, "%s", base);
    snprintf(g_redis, sizeof g_redis, "%s", redis);
    free(base);
    free(redis);
    sf_testenv_random_name("t_api_", g_queue, sizeof g_queue);
    g_db = sf_testenv_scratch_create_migrated(g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
    sf_err err = {0};
    cr_assert_eq(sf_auth_user_add(g_db, "one@example.com", "One", "premium", g_user1, &g_key1, &err), SF_OK, "%s",
                 err.msg);
    cr_assert_eq(sf_auth_user_add(g_db, "two@example.com", "Two", NULL, g_user2, &g_key2, &err), SF_OK, "%s", err.msg);
    import_dataset();
    start_api();
    sf_http_opts o = {.timeout_ms = 20000};
    cr_assert_eq(sf_http_new(&o, &g_http, &err), SF_OK);
}

static void teardown(void)
{
    stop_api();
    sf_http_free(g_http);
    sf_db_close(g_db);
    g_db = NULL;
    sf_testenv_scratch_drop(g_base_url, g_name);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

/* ---- HTTP helpers ----------------------------------------------------------------------- */

typedef struct reply {
    long status;
    json_t *json; /* parsed body, or NULL */
    char text[16384];
} reply;

static void call(reply *r, const char *method, const char *path, const sf_auth_key *key, const char *body,
                 const char *idem)
{
    char url[256], auth[128], idem_h[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key->text : "");
    snprintf(idem_h, sizeof idem_h, "Idempotency-Key: %s", idem ? idem : "");
    const char *h[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    if (key)
        h[n++] = auth;
    if (idem)
        h[n++] = idem_h;
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err err = {0};
    sf_status st = sf_http_request(g_http, method, url, h, body, body ? strlen(body) : 0, &resp, &err);
    cr_assert_eq(st, SF_OK, "%s %s: %s", method, path, err.msg);
    r->status = resp.status;
    snprintf(r->text, sizeof r->text, "%s", sf_buf_str(&resp.body));
    r->json = json_loads(r->text, 0, NULL);
    sf_http_response_destroy(&resp);
}

static const char *error_code(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static const char *error_field(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* POST a backtest of LOGIC on BTC-USD 1d; returns the id (static storage per call site). */
static void submit_ok(const sf_auth_key *key, char *id, size_t size)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", LOGIC);
    reply r;
    call(&r, "POST", "/v1/backtests", key, body, NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    json_decref(r.json);
}

static long long count(const char *sql_fmt, const char *arg)
{
    char sql[512];
    snprintf(sql, sizeof sql, sql_fmt, arg);
    return sf_testenv_query_int(g_db, sql);
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(api, requests_without_a_valid_key_are_401_with_a_json_error)
{
    reply r;
    call(&r, "GET", "/v1/datasets", NULL, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(error_code(&r), "unauthorized");
    json_decref(r.json);

    sf_auth_key bad;
    sf_auth_key_generate(&bad, NULL); /* well formed, never stored */
    call(&r, "POST", "/v1/backtests", &bad, "{}", NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "message")),
                     "invalid API key");
    json_decref(r.json);

    sf_err err = {0};
    cr_assert_eq(sf_auth_key_revoke(g_db, g_key2.id, NULL, &err), SF_OK, "%s", err.msg);
    call(&r, "GET", "/v1/datasets", &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 401, "a revoked key still works");
    json_decref(r.json);
    call(&r, "GET", "/v1/datasets", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_t *ds = json_array_get(json_object_get(r.json, "datasets"), 0);
    cr_assert_str_eq(jstr(ds, "symbol"), "BTC-USD");
    cr_assert_eq(json_integer_value(json_object_get(ds, "bars")), 50);
    json_decref(r.json);
}

Test(api, invalid_logic_is_400_naming_every_json_path)
{
    const char *body = "{\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"logic\":{\"name\":\"x\","
                       "\"indicators\":{\"fast\":{\"type\":\"sma\",\"period\":0}},"
                       "\"entry\":{\"gt\":[\"fast\",\"nope\"]},\"exit\":{\"lt\":[\"fast\",1]}}}";
    reply r;
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "invalid_logic");
    json_t *errors = json_object_get(json_object_get(r.json, "error"), "errors");
    cr_assert_geq(json_array_size(errors), 2, "%s", r.text);
    int saw_period = 0;
    for (size_t i = 0; i < json_array_size(errors); i++)
        saw_period |= strcmp(jstr(json_array_get(errors, i), "field"), "logic.indicators.fast.period") == 0;
    cr_assert(saw_period, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs%s", ""), 0);
}

Test(api, accepted_backtest_is_pending_and_notified_in_its_transaction)
{
    sf_db *listener = sf_testenv_db_open(g_url);
    sf_testenv_exec(listener, "LISTEN sf_jobs");
    char id[64];
    submit_ok(&g_key1, id, sizeof id);
    int got = 0;
    char ch[64], pl[64];
    sf_err err = {0};
    cr_assert_eq(sf_db_wait_notify(listener, 5000, &got, ch, sizeof ch, pl, sizeof pl, &err), SF_OK);
    cr_assert_eq(got, 1, "no NOTIFY sf_jobs");
    cr_assert_str_eq(ch, "sf_jobs");
    sf_db_close(listener);

    reply r;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "status"), "pending");
    cr_assert_str_eq(jstr(r.json, "priority"), "normal");
    cr_assert_eq(json_integer_value(json_object_get(r.json, "attempt")), 0);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "max_attempts")), 3);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'pending' AND logic IS NOT NULL", id),
                 1);

    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert(strstr(r.text, "job is pending") != NULL, "%s", r.text);
    json_decref(r.json);
}

Test(api, idempotency_key_returns_the_same_job_and_rejects_a_different_body)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"priority\":\"high\"}",
             LOGIC);
    reply a, b, c;
    call(&a, "POST", "/v1/backtests", &g_key1, body, "retry-me-1");
    call(&b, "POST", "/v1/backtests", &g_key1, body, "retry-me-1");
    cr_assert_eq(a.status, 202, "%s", a.text);
    cr_assert_eq(b.status, 200, "%s", b.text);
    cr_assert_str_eq(jstr(a.json, "id"), jstr(b.json, "id"));
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE idempotency_key = '%s'", "retry-me-1"), 1);
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"priority\":\"low\"}",
             LOGIC);
    call(&c, "POST", "/v1/backtests", &g_key1, body, "retry-me-1");
    cr_assert_eq(c.status, 409, "%s", c.text);
    cr_assert_str_eq(error_field(&c), "Idempotency-Key");
    /* the same key is another user's own */
    reply d;
    call(&d, "POST", "/v1/backtests", &g_key2, body, "retry-me-1");
    cr_assert_eq(d.status, 202, "%s", d.text);
    json_decref(a.json);
    json_decref(b.json);
    json_decref(c.json);
    json_decref(d.json);
}

Test(api, another_users_job_is_404)
{
    char id[64], path[128];
    submit_ok(&g_key1, id, sizeof id);
    reply r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    call(&r, "GET", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(error_code(&r), "not_found");
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    call(&r, "POST", path, &g_key2, "{}", NULL);
    cr_assert_eq(r.status, 404);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'pending'", id), 1);
    call(&r, "GET", "/v1/jobs/not-a-uuid", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404);
    json_decref(r.json);
}

Test(api, cancel_of_a_pending_job_makes_it_cancelled)
{
    char id[64], path[128];
    submit_ok(&g_key1, id, sizeof id);
    reply r;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    call(&r, "POST", path, &g_key1, "{}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "status"), "cancelled");
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'cancelled'", id), 1);
    call(&r, "POST", path, &g_key1, "{}", NULL);
    cr_assert_eq(r.status, 409, "%s", r.text);
    json_decref(r.json);
}

Test(api, sweep_over_the_limit_is_400_with_the_count)
{
    char body[2048];
    snprintf(
        body, sizeof body,
        "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":{\"from\":1,\"to\":6,\"step\":1},"
        "\"indicators.slow.period\":{\"from\":10,\"to\":19,\"step\":1}},\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
        LOGIC);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "sweep_too_large");
    cr_assert(strstr(r.text, "60") != NULL, "%s", r.text);
    cr_assert(strstr(r.text, "50") != NULL, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM batches%s", ""), 0);
}

Test(api, sweep_with_an_invalid_combination_is_400)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[2,0]},\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             LOGIC);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "invalid_grid");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "error"), "combination")), 1, "%s", r.text);
    json_decref(r.json);
}

/* Submit the 3 x 4 sweep; returns the batch id. */
static void sweep_3x4(char *id, size_t size)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[2,3,4],\"indicators.slow.period\":[10,20,30,40]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"priority\":\"low\"}",
             LOGIC);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "total")), 12);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    json_decref(r.json);
}

Test(api, sweep_creates_one_pending_child_per_combination)
{
    char id[64], path[128];
    sweep_3x4(id, sizeof id);
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE batch_id = '%s' AND logic IS NULL AND status = 'pending' "
                       "AND priority = 2",
                       id),
                 12);
    cr_assert_eq(count("SELECT count(DISTINCT combo_index) FROM jobs WHERE batch_id = '%s' AND combo_index "
                       "BETWEEN 0 AND 11",
                       id),
                 12);
    /* ordered ids (migration 0016): one UUIDv7 base, the combo_index in the
     * last four bytes, and a base newer than the batch's creation */
    cr_assert_eq(count("SELECT count(*) FROM jobs j JOIN batches b ON b.id = j.batch_id WHERE j.batch_id = '%s' "
                       "AND substr(j.id::text, 15, 1) = '7' "
                       "AND right(j.id::text, 8) = lpad(to_hex(j.combo_index), 8, '0') "
                       "AND ('x' || translate(left(j.id::text, 13), '-', ''))::bit(48)::bigint "
                       "BETWEEN floor(extract(epoch FROM b.created_at) * 1000) AND "
                       "floor(extract(epoch FROM clock_timestamp()) * 1000)",
                       id),
                 12);
    cr_assert_eq(count("SELECT count(DISTINCT left(id::text, 28)) FROM jobs WHERE batch_id = '%s'", id), 1);
    reply r;
    snprintf(path, sizeof path, "/v1/batches/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "counts"), "pending")), 12);
    cr_assert_eq(json_real_value(json_object_get(r.json, "progress")), 0.0);
    cr_assert_str_eq(jstr(r.json, "status"), "in_progress");
    json_decref(r.json);
    call(&r, "GET", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 404);
    json_decref(r.json);
}

Test(api, batch_leaderboard_ranks_members_with_their_grid_params)
{
    char id[64], path[160], sql[512];
    sweep_3x4(id, sizeof id);
    /* Members 5 and 9 finish with sharpe 2.5 and 1.5; member 0 fails. Index 5
     * = fast 3 (second value), slow 20; index 9 = fast 4, slow 20. */
    snprintf(
        sql, sizeof sql,
        "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE batch_id = '%s' AND combo_index IN (5, 9)",
        id);
    sf_testenv_exec(g_db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO results (job_id, metrics, trades, equity) SELECT id, jsonb_build_object('sharpe', "
             "CASE combo_index WHEN 5 THEN 2.5 ELSE 1.5 END, 'max_drawdown', 0.1), '[]', '[]' FROM jobs "
             "WHERE batch_id = '%s' AND combo_index IN (5, 9)",
             id);
    sf_testenv_exec(g_db, sql);
    snprintf(sql, sizeof sql, "UPDATE jobs SET status = 'failed' WHERE batch_id = '%s' AND combo_index = 0", id);
    sf_testenv_exec(g_db, sql);

    reply r;
    snprintf(path, sizeof path, "/v1/batches/%s?by=sharpe&top=1", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "done")), 3);
    cr_assert_float_eq(json_real_value(json_object_get(r.json, "progress")), 0.25, 1e-12);
    json_t *best = json_object_get(r.json, "best");
    cr_assert_eq(json_array_size(best), 1, "%s", r.text);
    json_t *m = json_array_get(best, 0);
    cr_assert_eq(json_integer_value(json_object_get(m, "index")), 5);
    json_t *params = json_object_get(m, "params");
    cr_assert_eq(json_integer_value(json_object_get(params, "indicators.fast.period")), 3, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(params, "indicators.slow.period")), 20, "%s", r.text);
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "metrics"), "sharpe")), 2.5, 1e-12);
    json_decref(r.json);

    snprintf(path, sizeof path, "/v1/batches/%s?by=bogus", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_field(&r), "by");
    json_decref(r.json);
}

/* A logic with fees and a target, and a grid whose slow period 60 (the data
 * set has 50 bars) never trades: sharpe, win_rate and profit_factor null. */
static const char LOGIC_FEES[] =
    "{\"name\":\"sma-fees\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":2},"
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":3}},"
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]},"
    "\"risk\":{\"take_profit_pct\":3},\"execution\":{\"fee_bps\":10}}";
static const char GRID_FEES[] = "{\"indicators.fast.period\":[2,3,4],\"indicators.slow.period\":[10,20,30,60]}";

/* The local sweep (sf_sweep_run) of LOGIC_FEES x GRID_FEES over the stored bars, every member. */
static sf_sweep_result *local_sweep(const sf_bars *bars, const char *by)
{
    sf_grid *grid = NULL;
    sf_sweep_result *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_grid_parse(GRID_FEES, strlen(GRID_FEES), 0, &grid, &err), SF_OK, "%s", err.msg);
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.rank_by = by;
    cr_assert_eq(sf_sweep_run(grid, LOGIC_FEES, strlen(LOGIC_FEES), bars, &o, &res, NULL, &err), SF_OK, "%s", err.msg);
    sf_grid_free(grid);
    cr_assert_eq(res->n_members, 12);
    return res;
}

/* Store each member's metrics as a worker does (sf_perf_to_json) and mark it succeeded. */
static void store_members(const char *batch, const sf_sweep_result *res)
{
    for (size_t i = 0; i < res->n_members; i++) {
        sf_buf b;
        sf_buf_init(&b, 1 << 16);
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", res->members[i].index);
        sf_err err = {0};
        cr_assert_eq(sf_perf_to_json(&res->members[i].perf, &b, &err), SF_OK, "%s", err.msg);
        const char *p[] = {batch, idx, sf_buf_str(&b)};
        cr_assert_eq(sf_db_query(g_db,
                                 "WITH j AS (UPDATE jobs SET status = 'succeeded', finished_at = now() "
                                 "WHERE batch_id = $1::uuid AND combo_index = $2::integer RETURNING id) "
                                 "INSERT INTO results (job_id, metrics, trades, equity) "
                                 "SELECT id, $3::jsonb, '[]', '[]' FROM j",
                                 3, p, NULL, &err),
                     SF_OK, "%s", err.msg);
        sf_buf_destroy(&b);
    }
}

/* The farm's leaderboard by `by` lists the members in the local sweep's order. */
static void expect_same_order(const char *batch, const char *by, const sf_bars *bars)
{
    sf_sweep_result *local = local_sweep(bars, by);
    char path[192];
    snprintf(path, sizeof path, "/v1/batches/%s?by=%s&top=12", batch, by);
    reply r;
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "by"), by);
    json_t *best = json_object_get(r.json, "best");
    cr_assert_eq(json_array_size(best), local->n_members, "%s", r.text);
    for (size_t i = 0; i < local->n_members; i++) {
        json_t *m = json_array_get(best, i);
        cr_assert_eq(json_integer_value(json_object_get(m, "index")), (json_int_t)local->members[i].index,
                     "by %s, rank %zu: the farm has member %lld, the local sweep %zu", by, i + 1,
                     (long long)json_integer_value(json_object_get(m, "index")), local->members[i].index);
        cr_assert_eq(json_integer_value(json_object_get(m, "rank")), (json_int_t)i + 1);
    }
    json_decref(r.json);
    sf_sweep_result_free(local);
}

Test(api, a_sweep_ranks_on_the_farm_as_the_local_sweep_does_by_every_metric_fees_too)
{
    char body[4096], id[64], path[192];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"rank_by\":\"fees\"}", LOGIC_FEES,
             GRID_FEES);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "rank_by fees refused: %s", r.text);
    snprintf(id, sizeof id, "%s", jstr(r.json, "id"));
    json_decref(r.json);

    sf_bars *bars = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "BTC-USD", "1d", 0, &bars, NULL, &err), SF_OK, "%s", err.msg);
    sf_sweep_result *all = local_sweep(bars, "fees");
    store_members(id, all);
    /* the data make ties (fees 0) and nulls (no trade), or the test proves less */
    cr_assert_eq(all->members[0].perf.fees, 0.0);
    cr_assert(isnan(all->members[0].perf.sharpe));
    sf_sweep_result_free(all);

    snprintf(path, sizeof path, "/v1/batches/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "rank_by"), "fees");
    cr_assert_str_eq(jstr(r.json, "by"), "fees", "the batch's rank_by is the default ?by=");
    cr_assert_eq(json_array_size(json_object_get(r.json, "best")), SF_RANK_TOP_DEFAULT);
    json_decref(r.json);
    for (size_t i = 0; i < sf_rank_count(); i++)
        expect_same_order(id, sf_rank_at(i)->name, bars);
    sf_bars_free(bars);
}

/* top is 1 to 1000 here as in sfctl's local sweep: 0 is not "all". */
Test(api, batch_top_is_from_1_to_1000_and_0_is_refused)
{
    char id[64], path[192];
    sweep_3x4(id, sizeof id);
    const char *bad[] = {"0", "1001", "-1", "x"};
    for (size_t i = 0; i < 4; i++) {
        reply r;
        snprintf(path, sizeof path, "/v1/batches/%s?top=%s", id, bad[i]);
        call(&r, "GET", path, &g_key1, NULL, NULL);
        cr_assert_eq(r.status, 400, "top=%s: %s", bad[i], r.text);
        cr_assert_str_eq(error_field(&r), "top");
        cr_assert(strstr(r.text, "top: must be an integer from 1 to 1000") != NULL, "%s", r.text);
        json_decref(r.json);
    }
    reply r;
    snprintf(path, sizeof path, "/v1/batches/%s?top=1000", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);
}

Test(api, batch_cancel_cancels_every_pending_member)
{
    char id[64], path[160];
    sweep_3x4(id, sizeof id);
    reply r;
    snprintf(path, sizeof path, "/v1/batches/%s/cancel", id);
    call(&r, "POST", path, &g_key1, "{}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "cancelled")), 12, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE batch_id = '%s' AND status = 'cancelled'", id), 12);
}

Test(api, body_over_the_maximum_is_413)
{
    char *big = malloc(MAX_BODY + 100);
    memset(big, ' ', MAX_BODY + 99);
    big[0] = '{';
    big[MAX_BODY + 98] = '}';
    big[MAX_BODY + 99] = '\0';
    reply r;
    call(&r, "POST", "/v1/backtests", &g_key1, big, NULL);
    free(big);
    cr_assert_eq(r.status, 413, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "body_too_large");
    json_decref(r.json);
}

Test(api, malformed_or_incomplete_requests_are_400_naming_the_field)
{
    reply r;
    call(&r, "POST", "/v1/backtests", &g_key1, "{\"logic\": {", NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_code(&r), "invalid_json");
    json_decref(r.json);
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"timeframe\":\"1d\"}", LOGIC);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_field(&r), "symbol");
    json_decref(r.json);
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"ETH\",\"timeframe\":\"1d\"}", LOGIC);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(error_code(&r), "dataset_not_found");
    cr_assert_str_eq(error_field(&r), "symbol");
    json_decref(r.json);
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"colour\":1}", LOGIC);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_field(&r), "colour");
    json_decref(r.json);
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"priority\":\"urgent\"}",
             LOGIC);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_field(&r), "priority");
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs%s", ""), 0);
}

/* POST path with LOGIC on BTC-USD 1d and the given "from"/"to" members
 * (a JSON fragment such as "\"from\":\"...\""); the reply in r. */
static void submit_range(reply *r, const char *path, const char *range)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,%s\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",%s}", LOGIC,
             strcmp(path, "/v1/sweeps") == 0 ? "\"grid\":{\"indicators.fast.period\":[2,3]}," : "", range);
    call(r, "POST", path, &g_key1, body, NULL);
}

static void expect_no_bars(const char *path, const char *range, const char *field)
{
    reply r;
    submit_range(&r, path, range);
    cr_assert_eq(r.status, 400, "%s %s: %ld %s", path, range, r.status, r.text);
    cr_assert_str_eq(error_code(&r), "no_bars_in_range", "%s", r.text);
    cr_assert_str_eq(error_field(&r), field, "%s", r.text);
    cr_assert(strstr(r.text, "2024-01-01T00:00:00Z to 2024-02-19T00:00:00Z") != NULL, "the span: %s", r.text);
    json_decref(r.json);
}

/* The data set has daily bars at midnight from 2024-01-01 to 2024-02-19. */
Test(api, a_range_without_bars_is_400_at_submission)
{
    expect_no_bars("/v1/backtests", "\"from\":\"2030-01-01T00:00:00Z\",\"to\":\"2030-02-01T00:00:00Z\"", "from");
    expect_no_bars("/v1/sweeps", "\"from\":\"2030-01-01T00:00:00Z\"", "from");
    expect_no_bars("/v1/backtests", "\"to\":\"2023-12-31T23:59:59Z\"", "to");
    /* inside the data set's span, between two bars */
    expect_no_bars("/v1/backtests", "\"from\":\"2024-01-02T00:00:01Z\",\"to\":\"2024-01-02T23:59:59Z\"", "from");
    cr_assert_eq(count("SELECT count(*) FROM jobs%s", ""), 0);
    cr_assert_eq(count("SELECT count(*) FROM batches%s", ""), 0);
    /* one bar is enough, both ends included */
    reply r;
    submit_range(&r, "/v1/backtests", "\"from\":\"2024-02-19T00:00:00Z\",\"to\":\"2024-02-19T00:00:00Z\"");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    submit_range(&r, "/v1/sweeps", "\"to\":\"2024-01-01T00:00:00Z\"");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(count("SELECT count(*) FROM jobs%s", ""), 3);
}

Test(api, unknown_routes_are_404_and_wrong_methods_405_in_json)
{
    reply r;
    call(&r, "GET", "/v2/nothing", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(error_code(&r), "not_found");
    json_decref(r.json);
    call(&r, "DELETE", "/v1/backtests", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(error_code(&r), "method_not_allowed");
    json_decref(r.json);
}

Test(api, health_ready_and_metrics_answer)
{
    reply r;
    call(&r, "GET", "/health", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    json_decref(r.json);
    call(&r, "GET", "/ready", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "redis"), "ok");
    json_decref(r.json);
    call(&r, "GET", "/v1/datasets", NULL, NULL, NULL); /* a 401 to count */
    json_decref(r.json);
    sf_auth_key scrape = {0}; /* the METRICS_TOKEN, sent as a Bearer token */
    snprintf(scrape.text, sizeof scrape.text, "%s", METRICS_TOKEN);
    /* A request is counted once its response has been sent, so the client
     * can read the 401 a moment before it is counted: scrape until both
     * counts are in (at most 5 s). */
    const char *health =
        "http_request_duration_seconds_count{method=\"GET\",route=\"/health\",status_code=\"200\"} 1\n";
    const char *refused =
        "http_request_duration_seconds_count{method=\"GET\",route=\"/v1/datasets\",status_code=\"401\"} 1\n";
    for (int i = 0; i < 250; i++) {
        call(&r, "GET", "/metrics", &scrape, NULL, NULL);
        if (r.status != 200 || (strstr(r.text, health) != NULL && strstr(r.text, refused) != NULL))
            break;
        json_decref(r.json); /* NULL: the text format is not JSON */
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert(strstr(r.text, "# TYPE http_request_duration_seconds histogram") != NULL, "%s", r.text);
    cr_assert(strstr(r.text, health) != NULL, "%s", r.text);
    cr_assert(strstr(r.text, refused) != NULL, "%s", r.text);
    cr_assert(strstr(r.text, "process_cpu_seconds_total ") != NULL);
    cr_assert(strstr(r.text, "process_open_fds ") != NULL);
}

Test(api, sigterm_stops_the_server_with_status_0)
{
    int status = stop_api();
    cr_assert(WIFEXITED(status), "status %d", status);
    cr_assert_eq(WEXITSTATUS(status), 0);
}

Test(api, sweep_keeps_the_grid_key_order_and_replays_by_idempotency_key)
{
    char body[2048], sql[512], path[160];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.slow.period\":[10,20],\"indicators.fast.period\":[2,3]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             LOGIC);
    reply a, b;
    call(&a, "POST", "/v1/sweeps", &g_key1, body, "sweep-key");
    call(&b, "POST", "/v1/sweeps", &g_key1, body, "sweep-key");
    cr_assert_eq(a.status, 202, "%s", a.text);
    cr_assert_eq(b.status, 200, "%s", b.text);
    const char *id = jstr(a.json, "id");
    cr_assert_str_eq(id, jstr(b.json, "id"));
    cr_assert_eq(count("SELECT count(*) FROM jobs WHERE batch_id = '%s'", id), 4, "members inserted twice");
    /* Member 1 = slow 10 (first key, slower-varying), fast 3. */
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET status = 'succeeded' WHERE batch_id = '%s' AND combo_index = 1; "
             "INSERT INTO results (job_id, metrics, trades, equity) SELECT id, '{\"sharpe\": 1}', '[]', '[]' "
             "FROM jobs WHERE batch_id = '%s' AND combo_index = 1",
             id, id);
    sf_testenv_exec(g_db, sql);
    reply r;
    snprintf(path, sizeof path, "/v1/batches/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_t *params = json_object_get(json_array_get(json_object_get(r.json, "best"), 0), "params");
    cr_assert_eq(json_integer_value(json_object_get(params, "indicators.slow.period")), 10, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(params, "indicators.fast.period")), 3, "%s", r.text);
    json_decref(r.json);
    json_decref(a.json);
    json_decref(b.json);
}

/* ---- hardening: the key before the body, /metrics, slow clients ------------------------ */

Test(api, a_bad_key_is_answered_401_before_the_body_is_read)
{
    int fd = rawhttp_dial("127.0.0.1", g_port);
    cr_assert(fd >= 0);
    /* A body announced (under MAX_BODY_BYTES) and never sent: the answer
     * cannot wait for it. */
    const char req[] = "POST /v1/backtests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sf_nope\r\n"
                       "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n";
    int64_t t0 = rawhttp_now_ms();
    cr_assert(rawhttp_send(fd, req, sizeof req - 1));
    char resp[4096];
    cr_assert_gt(rawhttp_read(fd, resp, sizeof resp, 3000), 0, "no answer without the body");
    close(fd);
    cr_log_info("401 %lld ms after the headers, no body sent", (long long)(rawhttp_now_ms() - t0));
    cr_assert(strncmp(resp, "HTTP/1.1 401", 12) == 0, "%s", resp);
    cr_assert(strstr(resp, "invalid API key") != NULL, "%s", resp);
    cr_assert(strstr(resp, "X-Content-Type-Options: nosniff") != NULL, "%s", resp);
    cr_assert(strstr(resp, "Cache-Control: no-store") != NULL, "%s", resp);
}

Test(api, metrics_wants_its_token_and_made_up_methods_fill_no_series)
{
    char resp[65536];
    const char open_[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_geq(rawhttp_timed("127.0.0.1", g_port, open_, resp, sizeof resp, 3000), 0);
    cr_assert(strncmp(resp, "HTTP/1.1 401", 12) == 0, "/metrics without its token: %s", resp);
    const char wrong[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer scrape-secreT\r\n"
                         "Connection: close\r\n\r\n";
    cr_assert_geq(rawhttp_timed("127.0.0.1", g_port, wrong, resp, sizeof resp, 3000), 0);
    cr_assert(strncmp(resp, "HTTP/1.1 401", 12) == 0, "/metrics with a wrong token: %s", resp);
    /* 300 requests with made-up methods: all one "other" series. */
    for (int i = 0; i < 300; i++) {
        char req[128];
        snprintf(req, sizeof req, "M%dX /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i);
        cr_assert_geq(rawhttp_timed("127.0.0.1", g_port, req, resp, sizeof resp, 3000), 0, "request %d", i);
    }
    const char right[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " METRICS_TOKEN "\r\n"
                         "Connection: close\r\n\r\n";
    int64_t t0 = rawhttp_now_ms();
    int fd = rawhttp_dial("127.0.0.1", g_port);
    cr_assert(rawhttp_send(fd, right, sizeof right - 1));
    size_t n = 0;
    for (ssize_t r;
         n + 1 < sizeof resp && rawhttp_now_ms() - t0 < 3000 && (r = read(fd, resp + n, sizeof resp - 1 - n)) > 0;)
        n += (size_t)r;
    resp[n] = '\0';
    close(fd);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "/metrics with its token: %.300s", resp);
    cr_assert(strstr(resp, "method=\"other\"") != NULL, "no \"other\" series:\n%s", resp);
    cr_assert(strstr(resp, "method=\"M1X\"") == NULL && strstr(resp, "M299X") == NULL,
              "a made-up method became a label:\n%s", resp);
    int series = 0;
    for (const char *p = resp; (p = strstr(p, "http_request_duration_seconds_count{")) != NULL; p++)
        series++;
    cr_assert_leq(series, 10, "%d series after 300 made-up methods:\n%s", series, resp);
}

Test(api, slow_and_idle_clients_leave_health_and_an_authenticated_get_answered_within_a_second)
{
    enum { SLOW = 300 };
    int fds[SLOW];
    int open_ = rawhttp_slow_open("127.0.0.1", g_port, fds, SLOW);
    char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char get[256];
    snprintf(get, sizeof get,
             "GET /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n",
             g_key1.text);
    char resp[16384];
    for (int k = 0; k < 3; k++) {
        rawhttp_slow_trickle(fds, SLOW);
        int64_t h = rawhttp_timed("127.0.0.2", g_port, health, resp, sizeof resp, 1000);
        cr_assert(h >= 0 && strstr(resp, " 200 ") != NULL, "/health: %lld ms: %s", (long long)h, resp);
        int64_t a = rawhttp_timed("127.0.0.2", g_port, get, resp, sizeof resp, 1000);
        cr_assert(a >= 0 && strstr(resp, " 200 ") != NULL, "authenticated GET: %lld ms: %s", (long long)a, resp);
        cr_log_info("with %d slow and idle connections from one address: /health %lld ms, GET /v1/datasets %lld ms",
                    open_, (long long)h, (long long)a);
        cr_assert_lt(h, 1000);
        cr_assert_lt(a, 1000);
    }
    for (int i = 0; i < SLOW; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* A data set of n one-minute bars from 2024-01-01. */
static void import_minutes(const char *symbol, size_t n)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK);
    for (size_t i = 0; i < n; i++) {
        double p = 100.0 + (double)(i % 13);
        b->ts[i] = 1704067200 + (int64_t)i * 60;
        b->open[i] = b->close[i] = p;
        b->high[i] = p + 1;
        b->low[i] = p - 1;
        b->volume[i] = 10;
    }
    cr_assert_eq(sf_dataset_import(g_db, symbol, "1m", b, NULL, &err), SF_OK, "%s", err.msg);
    sf_bars_free(b);
}

static void submit_wide(reply *r, const char *path, const char *range)
{
    char body[4096], inds[2048] = "";
    size_t len = 0;
    for (int i = 0; i < 16; i++) /* 16 series of 8 bytes a bar, and the equity curve */
        len += (size_t)snprintf(inds + len, sizeof inds - len, "%s\"s%d\":{\"type\":\"sma\",\"period\":%d}",
                                i ? "," : "", i, i + 2);
    snprintf(body, sizeof body,
             "{\"logic\":{\"name\":\"wide\",\"indicators\":{%s},\"entry\":{\"gt\":[\"s0\",\"s1\"]}},%s"
             "\"symbol\":\"WIDE-USD\",\"timeframe\":\"1m\"%s}",
             inds, strcmp(path, "/v1/sweeps") == 0 ? "\"grid\":{\"indicators.s0.period\":[2,3]}," : "", range);
    call(r, "POST", path, &g_key1, body, NULL);
}

/* 16 indicators over 40,000 bars need about 6 MiB: refused above
 * SF_RUN_MAX_MB (1 MiB here) with the estimate and the limit, before any
 * job exists; a tenth of the range fits. */
Test(api, a_run_bigger_than_the_memory_bound_is_400_at_submission)
{
    import_minutes("WIDE-USD", 40000);
    const char *paths[] = {"/v1/backtests", "/v1/sweeps"};
    for (int k = 0; k < 2; k++) {
        reply r;
        submit_wide(&r, paths[k], "");
        cr_assert_eq(r.status, 400, "%s: %ld %s", paths[k], r.status, r.text);
        cr_assert_str_eq(error_code(&r), "run_too_big");
        const char *msg = json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
        cr_assert(strstr(msg, "40000 bars") && strstr(msg, "SF_RUN_MAX_MB (1 MiB)") && strstr(msg, "about 6 MiB"), "%s",
                  msg);
        json_decref(r.json);
        /* 2024-01-01 00:00 .. 2024-01-03 18:39 is 4,000 of the 40,000 minutes */
        submit_wide(&r, paths[k], ",\"from\":\"2024-01-01T00:00:00Z\",\"to\":\"2024-01-03T18:39:00Z\"");
        cr_assert_eq(r.status, 202, "%s: %ld %s", paths[k], r.status, r.text);
        json_decref(r.json);
    }
    cr_assert_eq(count("SELECT count(*) FROM jobs%s", ""), 3);
}

Test(api, max_attempts_above_the_configured_cap_is_400)
{
    char body[2048];
    reply r;
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"max_attempts\":%d}", LOGIC,
             ATTEMPTS_CAP + 1);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_field(&r), "max_attempts");
    cr_assert(strstr(r.text, "from 1 to 7 (MAX_ATTEMPTS_CAP)"), "%s", r.text);
    json_decref(r.json);
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"max_attempts\":%d}", LOGIC,
             ATTEMPTS_CAP);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(count("SELECT max_attempts FROM jobs%s", ""), ATTEMPTS_CAP);
}
