/*
 * Integration tests of tiers, quotas and the per-key rate limit of sf-api
 * (api/tiers.h) over real HTTP, and of `sfctl me` and `sfctl admin` (users,
 * tiers, key list, rotate, revoke) against it. The server is started as
 * tests/integration/test_api_lists.c starts it (its helpers, copied), with
 * small limits: free 1 running / 5 queued / sweeps of 4 members / 1 request
 * a second in bursts of 15; premium 2 / 20 / 50; enterprise unlimited.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
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

#define MAX_BODY 8192
#define SWEEP_MAX 100
#define RUN_MAX_MB 1
#define ATTEMPTS_CAP 7
#define RERUN_MAX 10
#define FREE_RUNNING 1
#define FREE_QUEUED 5
#define FREE_MEMBERS 4
#define FREE_BURST 15
#define PREMIUM_QUEUED 20
#define PREMIUM_MEMBERS 50

static char g_base_url[1024], g_name[64], g_url[1024], g_redis[512], g_queue[64];
static sf_db *g_db;
static pid_t g_pid = -1;
static int g_port;
static sf_http *g_http;
static sf_auth_key g_key1, g_key2, g_key3;
static char g_user1[SF_AUTH_ID_MAX], g_user2[SF_AUTH_ID_MAX], g_user3[SF_AUTH_ID_MAX];

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
    char env[13][1200];
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
    snprintf(env[12], sizeof env[12], "RERUN_MAX=%d", RERUN_MAX);
    char tiers[9][64];
    snprintf(tiers[0], sizeof tiers[0], "TIER_FREE_RUNNING=%d", FREE_RUNNING);
    snprintf(tiers[1], sizeof tiers[1], "TIER_FREE_QUEUED=%d", FREE_QUEUED);
    snprintf(tiers[2], sizeof tiers[2], "TIER_FREE_SWEEP_MEMBERS=%d", FREE_MEMBERS);
    snprintf(tiers[3], sizeof tiers[3], "RATE_LIMIT_FREE_PER_SECOND=1");
    snprintf(tiers[4], sizeof tiers[4], "RATE_LIMIT_FREE_BURST=%d", FREE_BURST);
    snprintf(tiers[5], sizeof tiers[5], "TIER_PREMIUM_RUNNING=2");
    snprintf(tiers[6], sizeof tiers[6], "TIER_PREMIUM_QUEUED=%d", PREMIUM_QUEUED);
    snprintf(tiers[7], sizeof tiers[7], "TIER_PREMIUM_SWEEP_MEMBERS=%d", PREMIUM_MEMBERS);
    /* no cache of keys: sfctl here has no REDIS_URL, and these tests want a
     * change seen on the next request (test_api_keycache.c tests the cache) */
    snprintf(tiers[8], sizeof tiers[8], "API_KEY_CACHE_SECONDS=0");
    char *envp[] = {env[0],   env[1],   env[2],   env[3],   env[4],   env[5],   env[6],   env[7],
                    env[8],   env[9],   env[10],  env[11],  env[12],  tiers[0], tiers[1], tiers[2],
                    tiers[3], tiers[4], tiers[5], tiers[6], tiers[7], tiers[8], NULL};
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
    sf_testenv_random_name("t_tiers_", g_queue, sizeof g_queue);
    sf_testenv_scratch_create(g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
    g_db = sf_testenv_db_open(g_url);
    sf_err err = {0};
    if (sf_migrate_up(g_db, SF_SOURCE_DIR "/migrations", 0, NULL, NULL, &err) != SF_OK)
        cr_assert_fail("migrations: %s", err.msg);
    cr_assert_eq(sf_auth_user_add(g_db, "one@example.com", "One", "premium", g_user1, &g_key1, &err), SF_OK, "%s",
                 err.msg);
    cr_assert_eq(sf_auth_user_add(g_db, "two@example.com", "Two", NULL, g_user2, &g_key2, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_user_add(g_db, "three@example.com", "Three", "enterprise", g_user3, &g_key3, &err), SF_OK,
                 "%s", err.msg);
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

TestSuite(tiers, .init = setup, .fini = teardown, .timeout = 120);

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

static long long q_int(const char *fmt, const char *a, const char *b)
{
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, a, b ? b : "");
    return sf_testenv_query_int(g_db, sql);
}

static void sql(const char *fmt, const char *a)
{
    char s[1024];
    snprintf(s, sizeof s, fmt, a);
    sf_testenv_exec(g_db, s);
}

/* ---- helpers of this file ------------------------------------------------------------ */

static long long user_jobs(const char *user)
{
    return q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", user, NULL);
}

static long long user_batches(const char *user)
{
    return q_int("SELECT count(*) FROM batches WHERE user_id = '%s'%s", user, NULL);
}

static long long err_int(const reply *r, const char *k)
{
    return (long long)json_integer_value(json_object_get(json_object_get(r->json, "error"), k));
}

static const char *err_str(const reply *r, const char *k)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), k));
}

/* A backtest by key with priority prio (NULL = none): the answer in r. */
static void submit(reply *r, const sf_auth_key *key, const char *prio)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"%s%s%s}", LOGIC,
             prio ? ",\"priority\":\"" : "", prio ? prio : "", prio ? "\"" : "");
    call(r, "POST", "/v1/backtests", key, body, NULL);
}

/* A sweep of fast x slow members (fast periods 2.., slow 10..). */
static void sweep(reply *r, const sf_auth_key *key, int fast, int slow)
{
    char body[4096], f[256] = "", s[256] = "";
    for (int i = 0; i < fast; i++)
        snprintf(f + strlen(f), sizeof f - strlen(f), "%s%d", i ? "," : "", 2 + i);
    for (int i = 0; i < slow; i++)
        snprintf(s + strlen(s), sizeof s - strlen(s), "%s%d", i ? "," : "", 10 + i);
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[%s],\"indicators.slow.period\":[%s]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             LOGIC, f, s);
    call(r, "POST", "/v1/sweeps", key, body, NULL);
}

/* One raw request (to see the headers); the response text in resp. */
static void raw(const char *method, const char *path, const sf_auth_key *key, const char *body, char *resp, size_t size)
{
    char req[4096];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             method, path, key->text, body ? strlen(body) : 0, body ? body : "");
    cr_assert_geq(rawhttp_timed("127.0.0.1", g_port, req, resp, size, 5000), 0, "%s %s: no answer", method, path);
}

/* The value of header name in a raw response, as an integer; -1 when absent. */
static long long header_int(const char *resp, const char *name)
{
    char needle[96];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *h = strcasestr(resp, needle);
    return h ? strtoll(h + strlen(needle), NULL, 10) : -1;
}

/* ---- quotas ---------------------------------------------------------------------------- */

Test(tiers, the_queued_quota_is_429_with_retry_after_and_inserts_nothing)
{
    reply r;
    for (int i = 0; i < FREE_QUEUED; i++) {
        submit(&r, &g_key2, NULL);
        cr_assert_eq(r.status, 202, "submission %d: %ld %s", i, r.status, r.text);
        json_decref(r.json);
    }
    char body[2048], resp[16384];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", LOGIC);
    raw("POST", "/v1/backtests", &g_key2, body, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0, "%s", resp);
    cr_assert_geq(header_int(resp, "Retry-After"), 1, "%s", resp);
    cr_assert(strstr(resp, "\"quota\":\"queued\"") && strstr(resp, "\"limit\":5") && strstr(resp, "\"usage\":5"), "%s",
              resp);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED);

    /* one starts running: a waiting place is free again, and running + queued (6) holds one more */
    sql("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE user_id = '%s' LIMIT 1)", g_user2);
    submit(&r, &g_key2, NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    /* a second one running: waiting is 4 again, but running + waiting + 1 = 7 > 1 + 5 */
    sql("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE user_id = '%s' "
        "AND status = 'pending' LIMIT 1)",
        g_user2);
    submit(&r, &g_key2, NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "quota_exceeded");
    cr_assert_str_eq(err_str(&r, "quota"), "running+queued");
    cr_assert_eq(err_int(&r, "limit"), FREE_RUNNING + FREE_QUEUED);
    cr_assert_eq(err_int(&r, "usage"), 6);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED + 1);
    /* another user's quota is their own */
    submit(&r, &g_key1, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
}

Test(tiers, an_idempotent_replay_is_answered_even_when_the_quota_is_full)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", LOGIC);
    reply r;
    call(&r, "POST", "/v1/backtests", &g_key2, body, "again");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    for (int i = 1; i < FREE_QUEUED; i++) {
        submit(&r, &g_key2, NULL);
        json_decref(r.json);
    }
    call(&r, "POST", "/v1/backtests", &g_key2, body, "again");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/backtests", &g_key2, body, "new");
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED);
}

Test(tiers, a_sweep_over_the_member_cap_is_413_and_one_over_the_queue_is_429_with_nothing_inserted)
{
    reply r;
    sweep(&r, &g_key2, 3, 2); /* 6 > 4 members */
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "quota_exceeded");
    cr_assert_str_eq(err_str(&r, "quota"), "sweep_members");
    cr_assert_eq(err_int(&r, "limit"), FREE_MEMBERS);
    cr_assert_eq(err_int(&r, "requested"), 6);
    json_decref(r.json);
    cr_assert_eq(user_batches(g_user2), 0);
    cr_assert_eq(user_jobs(g_user2), 0);
    sweep(&r, &g_key2, 2, 2);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    sweep(&r, &g_key2, 2, 1); /* 4 waiting + 2 > 5 */
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_str_eq(err_str(&r, "quota"), "queued");
    cr_assert_eq(err_int(&r, "usage"), 4);
    cr_assert_eq(err_int(&r, "requested"), 2);
    json_decref(r.json);
    cr_assert_eq(user_batches(g_user2), 1);
    cr_assert_eq(user_jobs(g_user2), 4);
    /* premium: 60 members are over its cap of 50; enterprise: no cap, no queue limit */
    sweep(&r, &g_key1, 6, 10);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.text);
    json_decref(r.json);
    sweep(&r, &g_key3, 6, 10);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    for (int i = 0; i < PREMIUM_QUEUED + 5; i++) {
        submit(&r, &g_key3, "high");
        cr_assert_eq(r.status, 202, "enterprise submission %d: %ld %s", i, r.status, r.text);
        json_decref(r.json);
    }
    cr_assert_eq(user_jobs(g_user3), 60 + PREMIUM_QUEUED + 5);
}

Test(tiers, high_priority_is_refused_to_free_users_and_allowed_to_paying_ones)
{
    reply r;
    submit(&r, &g_key2, "high");
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    cr_assert_str_eq(error_field(&r), "priority");
    cr_assert(strstr(r.text, "premium") != NULL, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 0);
    submit(&r, &g_key2, "low");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    submit(&r, &g_key1, "high");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(q_int("SELECT count(*) FROM jobs WHERE user_id = '%s' AND priority = 0%s", g_user1, NULL), 1);
}

Test(tiers, reruns_count_against_the_quota_and_keep_the_priority_rule)
{
    char ids[FREE_QUEUED][64], path[256];
    for (int i = 0; i < FREE_QUEUED; i++)
        submit_ok(&g_key2, ids[i], sizeof ids[i]);
    sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE user_id = '%s'", g_user2);
    reply r;
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
    snprintf(path, sizeof path, "/v1/jobs/%s/rerun", ids[0]);
    call(&r, "POST", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_eq(err_int(&r, "requested"), FREE_QUEUED);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
    /* a high-priority original (from when the user paid) is not re-run at high for free */
    sql("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE user_id = '%s' AND status = 'pending'",
        g_user2);
    sql("UPDATE jobs SET priority = 0 WHERE id = '%s'", ids[0]);
    call(&r, "POST", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
}

/* ---- GET /v1/me -------------------------------------------------------------------------- */

Test(tiers, me_shows_the_tier_the_quotas_and_the_usage)
{
    reply r;
    for (int i = 0; i < 3; i++) {
        submit(&r, &g_key1, NULL);
        json_decref(r.json);
    }
    sweep(&r, &g_key1, 2, 2);
    json_decref(r.json);
    sql("UPDATE jobs SET status = 'running' WHERE id IN (SELECT id FROM jobs WHERE user_id = '%s' LIMIT 2)", g_user1);
    call(&r, "GET", "/v1/me", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "user_id"), g_user1);
    cr_assert_str_eq(jstr(r.json, "tier"), "premium");
    cr_assert_eq(json_integer_value(json_object_get(r.json, "key_id")), g_key1.id);
    json_t *q = json_object_get(r.json, "quotas"), *u = json_object_get(r.json, "usage");
    cr_assert_eq(json_integer_value(json_object_get(q, "running")), 2, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(q, "queued")), PREMIUM_QUEUED, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(q, "sweep_members")), PREMIUM_MEMBERS, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "running")), 2, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "queued")), 5, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "unfinished")), 7, "%s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/me", &g_key3, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    q = json_object_get(r.json, "quotas");
    cr_assert(json_is_null(json_object_get(q, "queued")) && json_is_null(json_object_get(q, "rate_per_second")),
              "enterprise is unlimited: %s", r.text);
    json_decref(r.json);
}

/* ---- rate limit -------------------------------------------------------------------------- */

Test(tiers, the_rate_limit_answers_429_after_the_burst_and_recovers)
{
    char resp[16384];
    int ok = 0;
    int64_t t0 = rawhttp_now_ms();
    for (int i = 0; i < 200; i++) {
        raw("GET", "/v1/me", &g_key2, NULL, resp, sizeof resp);
        if (strncmp(resp, "HTTP/1.1 429", 12) == 0)
            break;
        cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "%s", resp);
        cr_assert_eq(header_int(resp, "X-RateLimit-Limit"), FREE_BURST, "%s", resp);
        ok++;
    }
    int64_t elapsed_s = (rawhttp_now_ms() - t0) / 1000 + 1;
    /* the burst, plus at most one token a second while the loop ran */
    cr_assert_geq(ok, FREE_BURST);
    cr_assert_leq(ok, FREE_BURST + elapsed_s, "%d allowed in %lld s", ok, (long long)elapsed_s);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0, "never limited: %s", resp);
    long long after = header_int(resp, "Retry-After");
    cr_assert(after >= 1 && after <= 2, "%s", resp);
    cr_assert_eq(header_int(resp, "X-RateLimit-Remaining"), 0, "%s", resp);
    cr_assert_geq(header_int(resp, "X-RateLimit-Reset"), 1, "%s", resp);
    cr_assert(strstr(resp, "\"code\":\"rate_limited\"") != NULL, "%s", resp);
    /* another key has its own bucket; an enterprise key has none */
    raw("GET", "/v1/me", &g_key1, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "%s", resp);
    raw("GET", "/v1/me", &g_key3, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0 && header_int(resp, "X-RateLimit-Limit") == -1, "%s", resp);
    /* a limited request's body is never read: nothing was submitted */
    raw("POST", "/v1/backtests", &g_key2, "{}", resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0 || strncmp(resp, "HTTP/1.1 400", 12) == 0, "%s", resp);
    struct timespec ts = {after + 1, 0};
    nanosleep(&ts, NULL);
    raw("GET", "/v1/me", &g_key2, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "after Retry-After: %s", resp);
    cr_assert_eq(user_jobs(g_user2), 0);
}

/* ---- sfctl me and sfctl admin ---------------------------------------------------------------- */

/* Run sfctl with args (NULL-terminated) and key (NULL = none) as SF_API_KEY;
 * stdout in out; returns the exit status. */
static int sfctl(const char *const *args, const char *key, char *out, size_t size)
{
    char api[128], k[128], db[1100];
    snprintf(api, sizeof api, "SF_API_URL=http://127.0.0.1:%d", g_port);
    snprintf(k, sizeof k, "SF_API_KEY=%s", key ? key : "");
    snprintf(db, sizeof db, "DATABASE_URL=%s", g_url);
    char *envp[] = {api, k, db, NULL};
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)(uintptr_t) "sfctl";
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)(uintptr_t)args[i];
    argv[n] = NULL;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execve(SF_BINARY_DIR "/sfctl", argv, envp);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < size && (got = read(fds[0], out + len, size - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(tiers, sfctl_me_and_admin_list_rotate_and_revoke)
{
    char out[16384];
    reply r;
    submit(&r, &g_key2, NULL);
    json_decref(r.json);
    const char *me[] = {"me", NULL};
    cr_assert_eq(sfctl(me, g_key2.text, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "free") && strstr(out, g_user2) && strstr(out, "1 of 5"), "%s", out);
    const char *me_json[] = {"me", "--json", NULL};
    cr_assert_eq(sfctl(me_json, g_key3.text, out, sizeof out), 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_str_eq(jstr(j, "tier"), "enterprise", "%s", out);
    json_decref(j);

    const char *users[] = {"admin", "user", "list", NULL};
    cr_assert_eq(sfctl(users, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "one@example.com\tOne\tpremium\t1") && strstr(out, "two@example.com\tTwo\tfree\t1"), "%s",
              out);
    const char *tier[] = {"admin", "user", "tier", "--email", "two@example.com", "--tier", "premium", NULL};
    cr_assert_eq(sfctl(tier, NULL, out, sizeof out), 0, "%s", out);
    call(&r, "GET", "/v1/me", &g_key2, NULL, NULL);
    cr_assert_str_eq(jstr(r.json, "tier"), "premium", "%s", r.text);
    json_decref(r.json);

    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)g_key2.id);
    const char *rotate[] = {"admin", "key", "rotate", "--id", id, "--key-only", NULL};
    cr_assert_eq(sfctl(rotate, NULL, out, sizeof out), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(sf_auth_key_well_formed(out, strlen(out)), "not a key: %s", out);
    sf_auth_key fresh = {0};
    memcpy(fresh.text, out, SF_AUTH_KEY_LEN); /* well formed: exactly SF_AUTH_KEY_LEN characters */
    fresh.text[SF_AUTH_KEY_LEN] = '\0';
    call(&r, "GET", "/v1/me", &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 401, "the old key still works: %s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/me", &fresh, NULL, NULL);
    cr_assert_eq(r.status, 200, "the new key: %s", r.text);
    cr_assert_str_eq(jstr(r.json, "user_id"), g_user2);
    long long new_id = (long long)json_integer_value(json_object_get(r.json, "key_id"));
    json_decref(r.json);
    cr_assert_eq(sfctl(rotate, NULL, out, sizeof out), 5, "rotating a revoked key: %s", out);

    const char *keys[] = {"admin", "key", "list", "--email", "two@example.com", "--json", NULL};
    cr_assert_eq(sfctl(keys, NULL, out, sizeof out), 0, "%s", out);
    j = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(j), 2, "%s", out);
    cr_assert(json_is_string(json_object_get(json_array_get(j, 0), "revoked_at")), "%s", out);
    cr_assert(json_is_null(json_object_get(json_array_get(j, 1), "revoked_at")), "%s", out);
    json_decref(j);

    snprintf(id, sizeof id, "%lld", new_id);
    const char *revoke[] = {"admin", "key", "revoke", "--id", id, NULL};
    cr_assert_eq(sfctl(revoke, NULL, out, sizeof out), 0, "%s", out);
    call(&r, "GET", "/v1/me", &fresh, NULL, NULL);
    cr_assert_eq(r.status, 401, "a revoked key: %s", r.text);
    json_decref(r.json);
    cr_assert_eq(sfctl(me, fresh.text, out, sizeof out), 4, "sfctl me with a revoked key: %s", out);
}
