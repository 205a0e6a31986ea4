/*
 * apitest: an sf-api of its own for an integration test, on a scratch
 * database (migrated, two users: g_key1/g_user1 premium, g_key2/g_user2
 * free; the daily data set BTC-USD 1d of 50 bars), and real HTTP calls to
 * it (header-only, like testenv.h: each test file is its own executable).
 *
 * apitest_setup(prefix, env) starts the server with PORT=0 on 127.0.0.1,
 * two threads and the extra environment entries env ("NAME=value", NULL
 * terminated; may be NULL), and reads its port from the "listening" line
 * (its stdout: a pipe, or with SF_TEST_LOG_DIR set a log file kept there);
 * apitest_teardown stops it (SIGTERM) and drops the database.
 *
 * A test that wants another setup composes the steps apitest_setup is made
 * of: apitest_open(prefix, tier1, tier2) (the database, the two users with
 * those tiers, NULL = free, and the HTTP client; no data set, no server),
 * apitest_import_dataset(), apitest_start_api(env) or
 * apitest_start_api_until(env, msg) (also waits for a log line whose msg is
 * msg); apitest_teardown undoes any of them. apitest_sfctl runs sfctl with
 * an environment of the caller's; apitest_submit_ok, apitest_q_int and
 * apitest_sql are the shortcuts several tests share.
 *
 * Thread safety: the test's main thread only. Ownership: a reply's json is
 * the caller's (json_decref).
 */
#ifndef SF_APITEST_H
#define SF_APITEST_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sf/auth.h"
#include "sf/dataset.h"
#include "sf/http.h"
#include "sf/migrate.h"
#include "testenv.h"

#define APITEST_ENV_MAX 24

static char g_base_url[1024], g_name[64], g_url[1024], g_redis[512], g_queue[64];
static sf_db *g_db;
static pid_t g_pid = -1;
static int g_port;
static sf_http *g_http;
static sf_auth_key g_key1, g_key2;
static char g_user1[SF_AUTH_ID_MAX], g_user2[SF_AUTH_ID_MAX];

static inline void apitest_import_dataset(void)
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

/* Read the child's stdout until its "listening" line and, when also is not
 * NULL, a line whose "msg" is also; returns the port. */
static inline int apitest_read_port(int fd, const char *also)
{
    char buf[16384], want[256];
    size_t len = 0;
    int64_t port = 0;
    snprintf(want, sizeof want, "\"%s\"", also ? also : "");
    for (int waited = 0; waited < 10000;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            waited += 100;
            continue;
        }
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        struct stat sb;
        if (n == 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) { /* a log file: wait for more */
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
            waited += 20;
            continue;
        }
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *l = strstr(buf, "\"listening\"");
        const char *pp = l ? strstr(l, "\"port\":") : NULL;
        if (port == 0 && pp && strchr(pp, '\n')) {
            char digits[8] = "";
            sscanf(pp + 7, "%7[0-9]", digits);
            cr_assert_eq(sf_config_parse_int(digits, 1, 65535, &port, NULL), SF_OK, "port in %s", pp);
        }
        if (port > 0 && (!also || strstr(buf, want)))
            return (int)port;
    }
    cr_assert_fail("sf-api did not report listening%s%s; output: %.*s", also ? " and " : "", also ? also : "", (int)len,
                   buf);
    return 0;
}

/* Where sf-api's stdout goes (fds[1]) and where its "listening" line is
 * read (fds[0]): a pipe, or with SF_TEST_LOG_DIR set (scripts/test) a log
 * file there, <test program>-<queue>-sf-api.log, kept for the checks that run
 * after the suites (scripts/check-secrets). */
static inline void apitest_output(int fds[2])
{
    char keep[2048];
    sf_testenv_log_dir(keep, sizeof keep);
    if (keep[0] == '\0') {
        cr_assert_eq(pipe(fds), 0);
        return;
    }
    char path[4096], prog[256];
    mkdir(keep, 0755);
    sf_testenv_program(prog, sizeof prog);
    snprintf(path, sizeof path, "%s/%s-%s-sf-api.log", keep, prog, g_queue);
    fds[1] = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    fds[0] = open(path, O_RDONLY);
    cr_assert(fds[0] >= 0 && fds[1] >= 0, "could not create %s", path);
    lseek(fds[0], 0, SEEK_END); /* a restarted server appends: read from here */
}

/* Start sf-api with the extra environment; wait for its "listening" line
 * and, when also is not NULL, for a log line whose msg is also. */
static inline void apitest_start_api_until(const char *const *extra, const char *also)
{
    static char env[APITEST_ENV_MAX][1200];
    char *envp[APITEST_ENV_MAX + 1];
    int n = 0;
    snprintf(env[n++], sizeof env[0], "DATABASE_URL=%s", g_url);
    snprintf(env[n++], sizeof env[0], "REDIS_URL=%s", g_redis);
    snprintf(env[n++], sizeof env[0], "QUEUE=%s", g_queue);
    snprintf(env[n++], sizeof env[0], "PORT=0");
    snprintf(env[n++], sizeof env[0], "BIND_ADDRESS=127.0.0.1");
    snprintf(env[n++], sizeof env[0], "API_THREADS=2");
    snprintf(env[n++], sizeof env[0], "LOG_LEVEL=info");
    for (size_t i = 0; extra && extra[i] && n < APITEST_ENV_MAX; i++)
        snprintf(env[n++], sizeof env[0], "%s", extra[i]);
    for (int i = 0; i < n; i++)
        envp[i] = env[i];
    envp[n] = NULL;
    int fds[2];
    apitest_output(fds);
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
    g_port = apitest_read_port(fds[0], also);
    close(fds[0]); /* on a pipe, later log lines get EPIPE (ignored by sf-api) */
}

static inline void apitest_start_api(const char *const *extra)
{
    apitest_start_api_until(extra, NULL);
}

/* SIGTERM and wait (SIGKILL after 10 s); the exit status, -1 when killed. */
static inline int apitest_stop_api(void)
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

/* The scratch database (migrated), users one@example.com (tier1) and
 * two@example.com (tier2; NULL = free), the HTTP client; no server yet. */
static inline void apitest_open(const char *prefix, const char *tier1, const char *tier2)
{
    char *base = sf_testenv_require("DATABASE_URL"), *redis = sf_testenv_require("REDIS_URL");
    snprintf(g_base_url, sizeof g_base_url, "%s", base);
    snprintf(g_redis, sizeof g_redis, "%s", redis);
    free(base);
    free(redis);
    sf_testenv_random_name(prefix, g_queue, sizeof g_queue);
    g_db = sf_testenv_scratch_create_migrated(g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
    sf_err err = {0};
    cr_assert_eq(sf_auth_user_add(g_db, "one@example.com", "One", tier1, g_user1, &g_key1, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_user_add(g_db, "two@example.com", "Two", tier2, g_user2, &g_key2, &err), SF_OK, "%s", err.msg);
    sf_http_opts o = {.timeout_ms = 20000};
    cr_assert_eq(sf_http_new(&o, &g_http, &err), SF_OK);
}

static inline void apitest_setup(const char *prefix, const char *const *extra_env)
{
    apitest_open(prefix, "premium", NULL);
    apitest_import_dataset();
    apitest_start_api(extra_env);
}

static inline void apitest_teardown(void)
{
    apitest_stop_api();
    sf_http_free(g_http);
    g_http = NULL;
    sf_db_close(g_db);
    g_db = NULL;
    sf_testenv_scratch_drop(g_base_url, g_name);
}

typedef struct reply {
    long status;
    json_t *json; /* parsed body, or NULL */
    char text[65536];
} reply;

/* One request to the server, with key (NULL: no Authorization) and an
 * Idempotency-Key (NULL: none); fails the test on a transport error. */
static inline void call(reply *r, const char *method, const char *path, const sf_auth_key *key, const char *body,
                        const char *idem)
{
    char url[2048], auth[128], idem_h[256];
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

static inline const char *error_code(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static inline const char *error_field(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

static inline const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* GET path (a JSON list) and check 200; returns the items (owned by r). */
static inline json_t *list(reply *r, const char *path, const sf_auth_key *key)
{
    call(r, "GET", path, key, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s: %ld %s", path, r->status, r->text);
    json_t *items = json_object_get(r->json, "items");
    cr_assert(json_is_array(items), "%s", r->text);
    return items;
}

/* 1 when an item of items has "id" (or "job_id") id. */
static inline int in_items(json_t *items, const char *id)
{
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *o = json_array_get(items, i);
        const char *v = jstr(o, "id") ? jstr(o, "id") : jstr(o, "job_id");
        if (v && strcmp(v, id) == 0)
            return 1;
    }
    return 0;
}

/* The logic the tests submit: a cross of SMAs of 2 and 3 closes. */
#define APITEST_LOGIC                                                                                                  \
    "{\"name\":\"sma-cross\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":2},"           \
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":3}},"                                                  \
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}"

/* POST /v1/backtests of APITEST_LOGIC on BTC-USD 1d with key; checks the
 * 202 and writes the job's id into id. */
static inline void apitest_submit_ok(const sf_auth_key *key, char *id, size_t size)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", APITEST_LOGIC);
    reply r;
    call(&r, "POST", "/v1/backtests", key, body, NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    json_decref(r.json);
}

/* The integer the query fmt gives, with a and b (NULL: "") for its two %s. */
static inline long long apitest_q_int(const char *fmt, const char *a, const char *b)
{
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, a, b ? b : "");
    return sf_testenv_query_int(g_db, sql);
}

/* Run the statement fmt with a for its %s. */
static inline void apitest_sql(const char *fmt, const char *a)
{
    char s[1024];
    snprintf(s, sizeof s, fmt, a);
    sf_testenv_exec(g_db, s);
}

/* Run sfctl with args (NULL terminated) and exactly the environment envp
 * (NULL terminated); its stdout in out; returns the exit status (-1 when
 * it did not exit). */
static inline int apitest_sfctl(const char *const *args, char *const *envp, char *out, size_t size)
{
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

#endif
