/*
 * sf-api internals: the application state shared by every handler, the
 * per-thread connections, and the helpers handlers use to authenticate and
 * answer.
 *
 * Threads: handlers run on the httpd pool threads. Each pool thread gets its
 * own PostgreSQL connection and (when first needed) Redis connection and
 * queue, created lazily and kept in thread-local storage (a pthread key whose
 * destructor closes them when the pool thread exits at shutdown). api_app is
 * immutable after start except the metrics registry, which has its own mutex,
 * and the count of sweep submissions in progress (atomic; zeroed by
 * api_app_init).
 *
 * Answers: every 4xx/5xx has a JSON body {"error": {"code", "message",
 * "field"?}}. A database or Redis outage is 503; any other unexpected failure
 * is 500 and is logged once here (handlers do not log).
 */
#ifndef API_H
#define API_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/auth.h"
#include "sf/config.h"
#include "sf/db.h"
#include "sf/err.h"
#include "sf/httpd.h"
#include "sf/log.h"
#include "sf/logic.h"
#include "sf/metrics.h"
#include "sf/netpolicy.h"
#include "sf/queue.h"
#include "sf/redis.h"

#include "jobcache.h"
#include "keycache.h"

/* Tiers (users.tier) and their limits in api_config.tier (tiers.h). */
enum { API_TIER_FREE, API_TIER_PREMIUM, API_TIER_ENTERPRISE, API_TIERS };
enum { API_LIMIT_RUNNING, API_LIMIT_QUEUED, API_LIMIT_MEMBERS, API_LIMIT_RATE, API_LIMIT_BURST, API_LIMITS };

typedef struct api_config {
    sf_common_config common;
    char *database_url;
    char *redis_url;
    int64_t port;
    char *bind_address;
    int64_t threads;
    int64_t max_body;
    int64_t per_client; /* MAX_CONNECTIONS_PER_CLIENT: open connections of one client address */
    int64_t sweep_max;
    int64_t sweep_check_ms;
    int64_t sweep_concurrency;
    char *queue;
    int64_t db_statement_timeout_ms;
    int64_t drain_s;
    int64_t max_attempts_cap;    /* MAX_ATTEMPTS_CAP: most max_attempts a job may ask for */
    int64_t run_max_mb;          /* SF_RUN_MAX_MB: a run's working set (the workers' bound) */
    int64_t rerun_max;           /* RERUN_MAX: most jobs one POST /v1/reruns may re-run */
    int64_t key_cache_s;         /* API_KEY_CACHE_SECONDS: a valid key's user is cached this long (keycache.h) */
    int64_t job_cache_s;         /* API_JOB_CACHE_SECONDS: a final job's JSON is cached this long (jobcache.h) */
    int64_t job_cache_active_ms; /* API_JOB_CACHE_ACTIVE_MS: an unfinished job's JSON, this long */
    char *metrics_token;         /* "" = /metrics open */
    char *webhook_allow_cidrs;   /* SF_WEBHOOK_ALLOW_CIDRS: non-public addresses a schedule's webhook may name */
    int64_t tier[API_TIERS][API_LIMITS]; /* quotas and rate of each tier, 0 = unlimited (tiers.h) */
} api_config;

enum { API_METRIC_HTTP_DURATION, API_METRIC_COUNT };

typedef struct api_app {
    const api_config *cfg;
    sf_log *log;
    sf_metrics *metrics;
    api_keycache *keys;     /* valid keys' users (keycache.h; thread-safe) */
    api_jobcache *jobs;     /* jobs' JSON for GET /v1/jobs/{id} (jobcache.h; thread-safe) */
    double start_time;      /* Unix seconds */
    pthread_key_t conn_key; /* -> api_conn of the calling thread */
    atomic_int sweeps_busy; /* sweep submissions compiling or storing (at most sweep_concurrency) */
    int metrics_locked;     /* METRICS_TOKEN set: /metrics wants it as a Bearer token */
    unsigned char metrics_hash[SF_AUTH_HASH_BYTES]; /* its SHA-256 (the token itself is not kept) */
    sf_netpolicy webhook_policy;                    /* webhook_allow_cidrs, parsed (sf/netpolicy.h) */
    _Atomic int64_t rate_rest_until_ms; /* after a Redis error the rate limiter rests (fails open) until then */
    _Atomic int64_t rate_logged_ms;     /* when that was last logged */
} api_app;

/* One pool thread's connections. */
typedef struct api_conn {
    sf_db *db;
    sf_redis *redis;
    sf_queue *queue;
    sf_redis_script rate_script; /* the rate limit's script (its SHA is cached per thread) */
} api_conn;

sf_status api_app_init(api_app *app, const api_config *cfg, sf_log *log, sf_err *err);
void api_app_destroy(api_app *app);

/* The calling thread's database connection (opened or reset as needed). */
sf_status api_db(api_app *app, sf_db **out, sf_err *err);
/* The calling thread's queue (and Redis connection). */
sf_status api_queue(api_app *app, sf_queue **out, sf_redis **redis, sf_err *err);

/* Check "Authorization: Bearer <key>". Returns 1 with user filled, or 0 after
 * answering 401 (or 503 / 500). A key api_on_headers already checked is not
 * looked up again; a valid key is served from the cache of keys for up to
 * API_KEY_CACHE_SECONDS (keycache.h), an invalid one always asks PostgreSQL. */
int api_authenticate(api_app *app, sf_httpd_req *req, sf_auth_user *user);

/* The httpd on_headers hook: every /v1/ request's key is checked once its
 * headers are in, before its body is read; a request without a valid key is
 * answered 401 and its body never read. The user found rides with the request
 * (sf_httpd_set_ctx) to api_authenticate. */
void api_on_headers(sf_httpd_req *req, void *appv);

/* Answer a failed sf_status: 503 for SF_ERR_UNAVAILABLE / SF_ERR_TIMEOUT,
 * 500 otherwise (logged with the request id). */
void api_fail(api_app *app, sf_httpd_req *req, sf_status st, const sf_err *err);

/* Answer with json (stolen: the reference is released). */
void api_reply_json(api_app *app, sf_httpd_req *req, int status, json_t *json);
/* Answer with JSON text already built (e.g. by PostgreSQL). */
void api_reply_text(api_app *app, sf_httpd_req *req, int status, const char *json);

/* Parse the request body as a JSON object (duplicate keys rejected); answers
 * 400 itself and returns NULL when it is not one. */
json_t *api_body_object(sf_httpd_req *req);

/* JSON text that PostgreSQL printed, parsed. jsonb prints a number at or
 * above 2^63 (a metric of 1e20) as an integer without exponent, which jansson
 * refuses: such integers are read as reals (sf/jsonnum.h). NULL when text is
 * NULL or not JSON, or memory is short. */
json_t *api_json_from_db(const char *text);

/* 1 when s is a canonical lower- or upper-case UUID text. */
int api_is_uuid(const char *s);

/* The routes (handlers in jobs.c, sweeps.c, ops.c, status.c, ...). */
extern const sf_httpd_route api_routes[];
extern const size_t api_n_routes;

/* handlers */
void api_health(sf_httpd_req *req, void *app);
void api_ready(sf_httpd_req *req, void *app);
void api_metrics(sf_httpd_req *req, void *app);
void api_datasets(sf_httpd_req *req, void *app);
void api_backtest_submit(sf_httpd_req *req, void *app);
void api_job_get(sf_httpd_req *req, void *app);
void api_job_result(sf_httpd_req *req, void *app);
void api_job_cancel(sf_httpd_req *req, void *app);
void api_sweep_submit(sf_httpd_req *req, void *app);
void api_batch_get(sf_httpd_req *req, void *app);
void api_batch_cancel(sf_httpd_req *req, void *app);
/* status.c: GET /v1/status, the status page (GET /), GET /openapi.json */
void api_status(sf_httpd_req *req, void *app);
void api_page(sf_httpd_req *req, void *app);
void api_openapi(sf_httpd_req *req, void *app);

/* Shared by the submit handlers (submit.c). */
typedef struct api_submit_common {
    const char *symbol, *timeframe;
    const char *from, *to; /* Unix seconds as text, or NULL when absent */
    int priority;          /* 0 high, 1 normal, 2 low */
    int max_attempts;
    int64_t bars;                  /* bars of the range, estimated from the data set's count and span */
    int64_t dataset_version;       /* the data set's version when checked (stored with the job) */
    const char *idempotency_key;   /* NULL when none */
    char from_buf[24], to_buf[24]; /* storage for from / to (Unix seconds as text) */
} api_submit_common;

/* Validate symbol, timeframe, from, to, priority and max_attempts (1 ..
 * MAX_ATTEMPTS_CAP) of body, that the data set exists (404) and that
 * from..to holds at least one of its bars (400 no_bars_in_range), and
 * estimate c->bars; answers 4xx/5xx itself and returns 0 on
 * failure. Strings in c are borrowed from body and req. */
int api_submit_common_parse(api_app *app, sf_httpd_req *req, sf_db *db, json_t *body, api_submit_common *c);

/* 400 run_too_big, naming the estimate and the limit, when a run of logic
 * over c->bars bars would need more than SF_RUN_MAX_MB
 * (sf_engine_working_set; keep_equity as the run would); returns 0 then. */
int api_check_run_size(sf_httpd_req *req, const api_config *cfg, const sf_logic *logic, const api_submit_common *c,
                       int keep_equity);

/* Reject keys of body not in allowed (NULL-terminated): answers 400 naming
 * the first unknown key; returns 0 then. */
int api_only_keys(sf_httpd_req *req, json_t *body, const char *const *allowed);

/* Answer 400 invalid_logic listing every error of errs, fields prefixed with
 * prefix ("logic" -> "logic.indicators.fast.period"). */
void api_reply_logic_errors(api_app *app, sf_httpd_req *req, const char *prefix, const sf_logic_errors *errs);

#endif
