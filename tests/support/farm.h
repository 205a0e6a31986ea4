/*
 * farm: a private backtest farm for one cross-process test (header-only).
 *
 * farm_setup gives the test its own scratch PostgreSQL database on the local
 * stack (migrations applied; see testenv.h), its own redis-server on a free
 * port (so FLUSHALL and restarts touch nobody else) and a temp directory for
 * logs. The farm's programs (sf-scheduler, sf-worker, sf-api from
 * SF_BINARY_DIR) are started with proc.h, configured only through their
 * documented environment variables, and stopped by PID in farm_teardown,
 * even when the test failed. Jobs are inserted the way sf-api inserts them
 * (a pending row plus NOTIFY sf_jobs: the jobs table is its own outbox).
 *
 * Thread safety: test main thread only. Ownership: strings returned are heap
 * copies freed with free().
 */
#ifndef SF_FARM_H
#define SF_FARM_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "testenv.h"

#include "sf/bars.h"
#include "sf/dataset.h"
#include "sf/engine.h"
#include "sf/job.h"
#include "sf/logic.h"
#include "sf/db.h"
#include "sf/migrate.h"
#include "sf/queue.h"
#include "sf/redis.h"

#define FARM_ENV_MAX 32
#define FARM_KV_MAX 1100

/* Bounds on how fast a program reacts (exits after SIGTERM, answers a probe)
 * are multiplied by this: AddressSanitizer programs start, stop (the leak
 * check walks the heap at exit) and run 2-3x slower, and the two builds'
 * suites run side by side on a 2-core machine. The bounds stay far below
 * what the behaviour they guard against would take. */
#if defined(__SANITIZE_ADDRESS__)
#define FARM_TIME_SCALE 3
#else
#define FARM_TIME_SCALE 1
#endif

typedef struct farm {
    char base_url[1024]; /* the local stack's DATABASE_URL */
    char db_name[64];    /* sf_t_<random> */
    char db_url[1024];   /* DATABASE_URL of the scratch database */
    char redis_url[128];
    int redis_port;
    char dir[128]; /* logs and private servers' files */
    sf_db *db;     /* the test's own connection to the scratch database */
    sf_proc *redis;
} farm;

static farm F;

/* Simple long-only SMA cross: trades on any random walk. */
#define FARM_LOGIC_SMA                                                                                                 \
    "{\"name\":\"sma\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":5},"                 \
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":20}},"                                                 \
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}"

/* Eight indicators and a seven-clause entry: the slow logic of long backtests. */
#define FARM_LOGIC_HEAVY                                                                                               \
    "{\"name\":\"heavy\",\"indicators\":{"                                                                             \
    "\"a\":{\"type\":\"sma\",\"source\":\"close\",\"period\":50},"                                                     \
    "\"b\":{\"type\":\"ema\",\"source\":\"close\",\"period\":80},"                                                     \
    "\"c\":{\"type\":\"rsi\",\"source\":\"close\",\"period\":14},\"d\":{\"type\":\"adx\",\"period\":14},"              \
    "\"e\":{\"type\":\"bbands\",\"source\":\"close\",\"period\":20},\"f\":{\"type\":\"stoch\"},"                       \
    "\"g\":{\"type\":\"cci\",\"period\":20},\"h\":{\"type\":\"highest\",\"source\":\"high\",\"period\":200}},"         \
    "\"entry\":{\"all\":[{\"crosses_above\":[\"a\",\"b\"]},{\"lt\":[\"c\",70]},{\"gt\":[\"d\",10]},"                   \
    "{\"lt\":[\"close\",\"e.upper\"]},{\"lt\":[\"f.k\",80]},{\"gt\":[\"g\",-200]},{\"lt\":[\"close\",\"h\"]}]},"       \
    "\"exit\":{\"any\":[{\"crosses_below\":[\"a\",\"b\"]},{\"gt\":[\"c\",80]}]}}"

static inline void farm_bin(const char *prog, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", SF_BINARY_DIR, prog);
    cr_assert(access(path, X_OK) == 0, "%s is not built (cmake --build %s --target %s)", path, SF_BINARY_DIR, prog);
}

static inline sf_redis *farm_redis_open(void)
{
    sf_redis *r = NULL;
    sf_err err = {0};
    sf_redis_opts o = {.connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    if (sf_redis_open(F.redis_url, &o, &r, &err) != SF_OK)
        return NULL;
    return r;
}

/* Run one command on the private Redis; the integer or string answer as text
 * ("" for nil or an array). Fails the test on error. free() the result. */
static inline char *farm_redis(int argc, const char *const *argv)
{
    sf_redis *r = farm_redis_open();
    cr_assert(r != NULL, "private redis at %s is down", F.redis_url);
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    sf_status st = sf_redis_cmd(r, argc, argv, NULL, &rep, &err);
    cr_assert_eq(st, SF_OK, "redis %s: %s", argv[0], err.msg);
    char out[256] = "";
    if (sf_redis_reply_type(rep) == SF_REDIS_INT)
        snprintf(out, sizeof out, "%lld", sf_redis_reply_int(rep));
    else if (sf_redis_reply_str(rep, NULL))
        snprintf(out, sizeof out, "%s", sf_redis_reply_str(rep, NULL));
    sf_redis_reply_free(rep);
    sf_redis_close(r);
    return strdup(out);
}

static inline int farm_redis_up_(void *ctx)
{
    (void)ctx;
    sf_redis *r = farm_redis_open();
    sf_redis_close(r);
    return r != NULL;
}

/* (Re)start the private redis-server on F.redis_port, no persistence. */
static inline void farm_redis_start(void)
{
    char port[16], dir[160];
    snprintf(port, sizeof port, "%d", F.redis_port);
    snprintf(dir, sizeof dir, "%s", F.dir);
    const char *argv[] = {"redis-server", "--bind", "127.0.0.1",          "--port",     port,    "--save", "",
                          "--appendonly", "no",     "--maxmemory-policy", "noeviction", "--dir", dir,      NULL};
    F.redis = sf_proc_start("redis", "/usr/bin/redis-server", argv, NULL, F.dir);
    cr_assert(sf_proc_wait_until(farm_redis_up_, NULL, 10000, 20), "redis-server did not start on port %d",
              F.redis_port);
}

static inline void farm_setup(void)
{
    memset(&F, 0, sizeof F);
    char *base = sf_testenv_require("DATABASE_URL");
    snprintf(F.base_url, sizeof F.base_url, "%s", base);
    free(base);
    sf_testenv_tmpdir(F.dir, sizeof F.dir);
    chmod(F.dir, 0777); /* private PostgreSQL runs as the postgres user */
    F.db = sf_testenv_scratch_create_migrated(F.base_url, F.db_name, sizeof F.db_name, F.db_url, sizeof F.db_url);
    F.redis_port = sf_proc_free_port();
    snprintf(F.redis_url, sizeof F.redis_url, "redis://127.0.0.1:%d/0", F.redis_port);
    farm_redis_start();
}

/* Stop every program by PID, print their logs when asked, drop the database. */
static inline void farm_teardown_ex(int dump_logs)
{
    sf_proc_stop_all(5000);
    if (dump_logs)
        sf_proc_dump_logs(4000);
    sf_db_close(F.db);
    F.db = NULL;
    if (F.db_name[0])
        sf_testenv_scratch_drop(F.base_url, F.db_name);
    sf_testenv_rmtree(F.dir);
}

static inline void farm_teardown(void)
{
    farm_teardown_ex(0);
}

/* Start SF_BINARY_DIR/<prog> as <name> with DATABASE_URL/REDIS_URL of the farm
 * and extra "NAME=value" settings (NULL-terminated, may be NULL). */
static inline sf_proc *farm_start(const char *name, const char *prog, const char *const *extra)
{
    char path[1024];
    farm_bin(prog, path, sizeof path);
    static char kv[FARM_ENV_MAX][FARM_KV_MAX];
    const char *env[FARM_ENV_MAX + 1];
    int n = 0;
    /* The first of two settings of a name wins (getenv), so extras go first. */
    for (int i = 0; extra && extra[i] && n < FARM_ENV_MAX - 9; i++)
        env[n++] = extra[i];
    snprintf(kv[n], FARM_KV_MAX, "DATABASE_URL=%s", F.db_url);
    env[n] = kv[n], n++;
    snprintf(kv[n], FARM_KV_MAX, "REDIS_URL=%s", F.redis_url);
    env[n] = kv[n], n++;
    env[n++] = "ENVIRONMENT=test";
    env[n++] = "LOG_LEVEL=info";
    env[n++] = "LOG_DIR";
    env[n++] = "DATABASE_URL_FILE";
    env[n++] = "REDIS_URL_FILE";
    env[n] = NULL;
    const char *argv[] = {prog, NULL};
    return sf_proc_start(name, path, argv, env, F.dir);
}

/* A worker named name with `threads` threads and LEASE_SECONDS=lease; extra may be NULL. */
static inline sf_proc *farm_worker(const char *name, int threads, int lease_s, const char *const *extra)
{
    char t[48], l[48], w[96];
    snprintf(t, sizeof t, "WORKER_THREADS=%d", threads);
    snprintf(l, sizeof l, "LEASE_SECONDS=%d", lease_s);
    snprintf(w, sizeof w, "WORKER_NAME=%s", name);
    const char *env[FARM_ENV_MAX];
    int n = 0;
    for (int i = 0; extra && extra[i] && n + 5 < FARM_ENV_MAX - 10; i++)
        env[n++] = extra[i];
    env[n++] = t;
    env[n++] = l;
    env[n++] = w;
    env[n++] = "DRAIN_SECONDS=10";
    env[n] = NULL;
    return farm_start(name, "sf-worker", env);
}

typedef struct {
    const sf_proc *proc;
    const char *needle;
} farm_log_wait_;

static inline int farm_log_has_(void *ctx)
{
    const farm_log_wait_ *w = ctx;
    return sf_proc_log_contains(w->proc, w->needle);
}

/* Wait until p logged its start line ("message":"running": signal handlers,
 * threads and listener all up); a signal sent before that proves nothing
 * about the program's handling of it. */
static inline int farm_wait_started(const sf_proc *p, int64_t timeout_ms)
{
    farm_log_wait_ w = {p, "\"message\":\"running\""};
    return sf_proc_wait_until(farm_log_has_, &w, timeout_ms, 20);
}

/* A scheduler with LEADER_TTL_SECONDS=2, fast reaper and retries; extra may be NULL. */
static inline sf_proc *farm_scheduler(const char *name, const char *const *extra)
{
    char s[96];
    snprintf(s, sizeof s, "SCHEDULER_NAME=%s", name);
    const char *defaults[] = {
        s, "LEADER_TTL_SECONDS=2", "REAPER_INTERVAL_MS=200", "RETRY_BASE_MS=400", "RETRY_CAP_MS=5000", NULL};
    const char *env[FARM_ENV_MAX];
    int n = 0;
    for (int i = 0; extra && extra[i] && n < FARM_ENV_MAX - 16; i++)
        env[n++] = extra[i];
    for (int i = 0; defaults[i]; i++)
        env[n++] = defaults[i];
    env[n] = NULL;
    return farm_start(name, "sf-scheduler", env);
}

/* ---- SQL ---- */

static inline void farm_exec(const char *sql)
{
    sf_testenv_exec(F.db, sql);
}

/* One value of a query with parameters; "" for NULL. free() it. */
static inline char *farm_query1(const char *sql, int n, const char *const *params)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    if (sf_db_query(F.db, sql, n, params, &res, &err) != SF_OK)
        cr_assert_fail("%s: %s", sql, err.msg);
    cr_assert_eq(sf_db_nrows(res), 1, "%s: %d rows, want 1", sql, sf_db_nrows(res));
    const char *v = sf_db_get(res, 0, 0);
    char *copy = strdup(v ? v : "");
    sf_db_res_free(res);
    return copy;
}

static inline long long farm_int(const char *sql)
{
    return sf_testenv_query_int(F.db, sql);
}

static inline long long farm_int1(const char *sql, const char *param)
{
    char *s = farm_query1(sql, 1, &param);
    long long v = strtoll(s, NULL, 10);
    free(s);
    return v;
}

static inline char *farm_text1(const char *sql, const char *param)
{
    return farm_query1(sql, 1, &param);
}

typedef struct farm_sql_wait_ {
    const char *sql;
    const char *param;
} farm_sql_wait_;

static inline int farm_sql_true_(void *ctx)
{
    const farm_sql_wait_ *w = ctx;
    char *s = farm_query1(w->sql, w->param ? 1 : 0, w->param ? &w->param : NULL);
    int yes = strcmp(s, "t") == 0;
    free(s);
    return yes;
}

/* Poll a boolean query (with $1 = param when param != NULL) every 25 ms until
 * it is true or timeout_ms passes; 1 when it became true. */
static inline int farm_wait_sql(const char *sql, const char *param, int64_t timeout_ms)
{
    farm_sql_wait_ w = {sql, param};
    return sf_proc_wait_until(farm_sql_true_, &w, timeout_ms, 25);
}

/* A user (tenant); returns its id. Enterprise: the farm tests measure the
 * farm, not the tiers' quotas and rate limits (test_api_tiers does). */
static inline char *farm_user(const char *name)
{
    char email[128];
    snprintf(email, sizeof email, "%s@farm.test", name);
    const char *p[] = {email, name};
    return farm_query1("INSERT INTO users (email, name, password_hash, tier) VALUES ($1, $2, 'x', 'enterprise') "
                       "RETURNING id",
                       2, p);
}

/* Relay every due pending job into Redis (queue "backtest") the way the
 * scheduler does: mark queued and commit (sf_job_relay_pending), then
 * enqueue. For tests that run workers without a scheduler. The count. */
static inline size_t farm_relay_all(void)
{
    sf_redis *r = farm_redis_open();
    cr_assert_not_null(r);
    sf_queue *q = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_queue_new("backtest", r, &q, &err), SF_OK, "%s", err.msg);
    static sf_queue_entry e[SF_JOB_BATCH_MAX];
    size_t total = 0, n = 0;
    do {
        size_t added = 0;
        cr_assert_eq(sf_job_relay_pending(F.db, SF_JOB_BATCH_MAX, SF_JOB_BATCH_MAX, total, e, &n, &err), SF_OK, "%s",
                     err.msg);
        cr_assert_eq(sf_queue_enqueue(q, e, n, &added, &err), SF_OK, "%s", err.msg);
        total += n;
    } while (n == SF_JOB_BATCH_MAX);
    sf_queue_free(q);
    sf_redis_close(r);
    return total;
}

/* n daily bars of a seeded random walk (deterministic), imported as symbol/tf. */
static inline void farm_dataset(const char *symbol, const char *tf, size_t n, uint64_t seed)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK, "%s", err.msg);
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    double price = 100.0;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) / 9007199254740992.0 - 0.5; /* [-0.5, 0.5) */
        double open = price, close = price * (1.0 + 0.02 * u);
        b->ts[i] = 946684800 + (int64_t)i * 60;
        b->open[i] = open;
        b->close[i] = close;
        b->high[i] = fmax(open, close) * 1.001;
        b->low[i] = fmin(open, close) * 0.999;
        b->volume[i] = 1000.0 + (double)(i % 100);
        price = close;
    }
    sf_status st = sf_dataset_import(F.db, symbol, tf, b, NULL, &err);
    sf_bars_free(b);
    cr_assert_eq(st, SF_OK, "import %s %s: %s", symbol, tf, err.msg);
}

/* One backtest job as sf-api inserts it: pending, then NOTIFY sf_jobs. */
static inline char *farm_job(const char *user, const char *logic, const char *symbol, const char *tf, int priority,
                             int max_attempts)
{
    char pr[16], ma[16];
    snprintf(pr, sizeof pr, "%d", priority);
    snprintf(ma, sizeof ma, "%d", max_attempts);
    const char *p[] = {user, logic, symbol, tf, pr, ma};
    char *id = farm_query1("INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, priority, max_attempts)"
                           " VALUES ($1, 'backtest', $2::jsonb, $3, $4, $5::smallint, $6::int) RETURNING id",
                           6, p);
    farm_exec("NOTIFY sf_jobs");
    return id;
}

/* n identical backtest jobs in one statement. */
static inline void farm_jobs_bulk(const char *user, const char *logic, const char *symbol, const char *tf, int n)
{
    char nn[16];
    snprintf(nn, sizeof nn, "%d", n);
    const char *p[] = {user, logic, symbol, tf, nn};
    sf_err err = {0};
    cr_assert_eq(sf_db_query(F.db,
                             "INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, created_at)"
                             " SELECT $1, 'backtest', $2::jsonb, $3, $4,"
                             "  now() + g * interval '1 microsecond' FROM generate_series(1, $5::int) g",
                             5, p, NULL, &err),
                 SF_OK, "%s", err.msg);
    farm_exec("NOTIFY sf_jobs");
}

/*
 * A sweep (batch) of total members over grid whose members from held_from on
 * are held back (run_at infinity: the relay does not see them) until
 * farm_release_held; returns the batch id. A fault test holds work back this
 * way so that work remains at the fault whatever the machine's speed.
 */
static inline char *farm_sweep_held(const char *user, const char *logic, const char *grid, const char *symbol,
                                    const char *tf, int total, int held_from)
{
    char nn[16], hh[16];
    snprintf(nn, sizeof nn, "%d", total);
    snprintf(hh, sizeof hh, "%d", held_from);
    const char *p[] = {user, logic, grid, symbol, tf, nn, hh};
    /* one statement, as sf-api's: a scheduler between a batch and its
     * members would take it for a finished sweep of none */
    char *id = farm_query1("WITH b AS (INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total)"
                           "  VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6::int) RETURNING *),"
                           " m AS (INSERT INTO jobs (user_id, kind, batch_id, combo_index, symbol, timeframe,"
                           "  created_at, run_at)"
                           "  SELECT b.user_id, 'backtest', b.id, g, b.symbol, b.timeframe,"
                           "   now() + g * interval '1 microsecond',"
                           "   CASE WHEN g >= $7::int THEN 'infinity'::timestamptz ELSE now() END"
                           "  FROM b, generate_series(0, b.total - 1) g)"
                           " SELECT id FROM b",
                           7, p);
    farm_exec("NOTIFY sf_jobs");
    return id;
}

/* A sweep (batch) of total members over grid; returns the batch id. */
static inline char *farm_sweep(const char *user, const char *logic, const char *grid, const char *symbol,
                               const char *tf, int total)
{
    return farm_sweep_held(user, logic, grid, symbol, tf, total, total);
}

/* Let the held-back members of batch run (see farm_sweep_held). */
static inline void farm_release_held(const char *batch)
{
    const char *q[] = {batch};
    sf_err err = {0};
    cr_assert_eq(sf_db_query(F.db, "UPDATE jobs SET run_at = now() WHERE batch_id = $1 AND run_at = 'infinity'", 1, q,
                             NULL, &err),
                 SF_OK, "%s", err.msg);
    farm_exec("NOTIFY sf_jobs");
}

/* Fail the test with every program's log tail on stderr. */
#define FARM_ASSERT(cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            sf_proc_dump_logs(6000);                                                                                   \
            cr_assert_fail(__VA_ARGS__);                                                                               \
        }                                                                                                              \
    } while (0)

/* final_equity of logic over the stored data set, computed here with the
 * engine (the independent value a worker's result must equal bit for bit). */
static inline double farm_expected_final_equity(const char *logic_json, const char *symbol, const char *tf)
{
    sf_bars *bars = NULL;
    sf_logic *logic = NULL;
    sf_result *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(F.db, symbol, tf, 0, &bars, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_logic_parse(logic_json, strlen(logic_json), &logic, NULL, &err), SF_OK, "%s", err.msg);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.keep_equity = 0;
    o.keep_trades = 0;
    cr_assert_eq(sf_engine_run(logic, bars, &o, &res, &err), SF_OK, "%s", err.msg);
    double v = res->perf.final_equity;
    sf_result_free(res);
    sf_logic_free(logic);
    sf_bars_free(bars);
    return v;
}

/* metrics.final_equity of a job's stored result (NaN when there is none). */
static inline double farm_result_final_equity(const char *job_id)
{
    const char *p[] = {job_id};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(F.db, "SELECT metrics->>'final_equity' FROM results WHERE job_id = $1", 1, p, &res, &err),
                 SF_OK, "%s", err.msg);
    double v = NAN;
    if (sf_db_nrows(res) == 1 && sf_db_get(res, 0, 0))
        v = strtod(sf_db_get(res, 0, 0), NULL);
    sf_db_res_free(res);
    return v;
}

/* "status attempt worker error" of a job, for messages. free() it. */
static inline char *farm_job_state(const char *job_id)
{
    return farm_text1("SELECT status || ' attempt=' || attempt || ' worker=' || coalesce(worker, '-') ||"
                      " ' class=' || coalesce(error_class, '-') || ' error=' || coalesce(error, '-')"
                      " FROM jobs WHERE id = $1",
                      job_id);
}

#endif
