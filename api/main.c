/*
 * sf-api: the HTTP/JSON API of the backtest farm.
 *
 * main hands the configuration table to sf_daemon_main (sf/daemon.h: --help,
 * --version, configuration errors, signals, the start and stop lines). run
 * starts the HTTP daemon and waits for the drain: on the first SIGTERM/SIGINT
 * the listener stops accepting, requests in flight get up to DRAIN_SECONDS to
 * finish, then the daemon stops and the process exits 0.
 */
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "sf/daemon.h"

#include "api.h"

/* One limit of one tier (api_config.tier, tiers.h), 0 to 100,000,000; 0 = unlimited. */
#define TIER_VAR(name, dflt, t, k, doc)                                                                                \
    {                                                                                                                  \
        name, SF_CFG_INT, dflt, 0, 100000000, NULL, 0, offsetof(api_config, tier[t][k]), doc                           \
    }

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(api_config, database_url),
    SF_CONFIG_REDIS_URL_VAR(api_config, redis_url),
    {"PORT", SF_CFG_INT, "8080", 0, 65535, NULL, 0, offsetof(api_config, port),
     "TCP port to listen on (0 = any free port, logged at start)"},
    {"BIND_ADDRESS", SF_CFG_STRING, "0.0.0.0", 0, 0, NULL, 0, offsetof(api_config, bind_address),
     "IP address to listen on"},
    {"API_THREADS", SF_CFG_INT, "4", 1, 64, NULL, 0, offsetof(api_config, threads),
     "HTTP worker threads (each has its own database connection)"},
    {"MAX_BODY_BYTES", SF_CFG_INT, "1048576", 1024, 67108864, NULL, 0, offsetof(api_config, max_body),
     "largest request body accepted (413 above)"},
    {"MAX_CONNECTIONS_PER_CLIENT", SF_CFG_INT, "32", 1, 256, NULL, 0, offsetof(api_config, per_client),
     "connections one client IP address may hold open (more are refused at accept; 256 in all)"},
    {"SWEEP_MAX_COMBINATIONS", SF_CFG_INT, "100000", 1, 10000000, NULL, 0, offsetof(api_config, sweep_max),
     "most combinations in one sweep (400 above)"},
    {"SWEEP_CHECK_MS", SF_CFG_INT, "200", 0, 60000, NULL, 0, offsetof(api_config, sweep_check_ms),
     "longest a sweep submission compiles members (0 = the first only); workers check the rest"},
    {"SWEEP_CONCURRENCY", SF_CFG_INT, "2", 1, 64, NULL, 0, offsetof(api_config, sweep_concurrency),
     "sweep submissions compiled and stored at once (503 busy above); below API_THREADS"},
    SF_CONFIG_QUEUE_VAR(api_config, queue),
    {"DB_STATEMENT_TIMEOUT_MS", SF_CFG_INT, "30000", 0, 3600000, NULL, 0, offsetof(api_config, db_statement_timeout_ms),
     "statement timeout of API queries (0 = none)"},
    {"DRAIN_SECONDS", SF_CFG_INT, "10", 0, 3600, NULL, 0, offsetof(api_config, drain_s),
     "on SIGTERM, how long requests in flight may take to finish"},
    {"MAX_ATTEMPTS_CAP", SF_CFG_INT, "10", 1, 100, NULL, 0, offsetof(api_config, max_attempts_cap),
     "most attempts a job may ask for (max_attempts; 400 above)"},
    {"SF_RUN_MAX_MB", SF_CFG_INT, "96", 1, 1048576, NULL, 0, offsetof(api_config, run_max_mb),
     "a backtest or sweep whose run would need more memory over its range is refused (400 run_too_big); "
     "set it as the workers' SF_RUN_MAX_MB"},
    {"RERUN_MAX", SF_CFG_INT, "100000", 1, 10000000, NULL, 0, offsetof(api_config, rerun_max),
     "most jobs one POST /v1/reruns may re-run (400 rerun_too_large above; dry_run counts up to it)"},
    {"API_KEY_CACHE_SECONDS", SF_CFG_INT, "5", 0, 3600, NULL, 0, offsetof(api_config, key_cache_s),
     "how long a valid API key's user is cached in sf-api (0 = every request asks PostgreSQL); "
     "sfctl admin key revoke/rotate and user tier clear the cache at once through Redis, this bounds "
     "a change made otherwise"},
    {"API_JOB_CACHE_SECONDS", SF_CFG_INT, "10", 0, 3600, NULL, 0, offsetof(api_config, job_cache_s),
     "how long GET /v1/jobs/{id} serves a finished job from sf-api's memory (0 = no cache of jobs at all); "
     "a finished job deleted or edited outside the API shows within this"},
    {"API_JOB_CACHE_ACTIVE_MS", SF_CFG_INT, "500", 0, 60000, NULL, 0, offsetof(api_config, job_cache_active_ms),
     "how long GET /v1/jobs/{id} serves an unfinished job (and a logic execution) from memory: a change of state "
     "by a worker or the scheduler shows within this; a cancel through this sf-api at once (0 = not cached)"},
    {"METRICS_TOKEN", SF_CFG_STRING, "", 0, 0, NULL, 1, offsetof(api_config, metrics_token),
     "if set, GET /metrics wants Authorization: Bearer <this> (401 without); empty = open"},
    {"SF_WEBHOOK_ALLOW_CIDRS", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(api_config, webhook_allow_cidrs),
     "non-public addresses (CIDRs, comma-separated) a schedule's webhook_url may name; set it as the workers'"},
    /* tiers and limits (tiers.h); 0 = unlimited */
    TIER_VAR("TIER_FREE_RUNNING", "2", API_TIER_FREE, API_LIMIT_RUNNING,
             "free tier: running jobs counted with the queued quota (unfinished = running + queued quotas; 429 above)"),
    TIER_VAR("TIER_FREE_QUEUED", "100", API_TIER_FREE, API_LIMIT_QUEUED,
             "free tier: pending and queued jobs, sweep members included (429 quota_exceeded above); 0 = unlimited"),
    TIER_VAR("TIER_FREE_SWEEP_MEMBERS", "100", API_TIER_FREE, API_LIMIT_MEMBERS,
             "free tier: most members in one sweep (413 quota_exceeded above); 0 = unlimited"),
    TIER_VAR("TIER_PREMIUM_RUNNING", "20", API_TIER_PREMIUM, API_LIMIT_RUNNING, "premium tier: as TIER_FREE_RUNNING"),
    TIER_VAR("TIER_PREMIUM_QUEUED", "10000", API_TIER_PREMIUM, API_LIMIT_QUEUED, "premium tier: as TIER_FREE_QUEUED"),
    TIER_VAR("TIER_PREMIUM_SWEEP_MEMBERS", "10000", API_TIER_PREMIUM, API_LIMIT_MEMBERS,
             "premium tier: as TIER_FREE_SWEEP_MEMBERS"),
    TIER_VAR("TIER_ENTERPRISE_RUNNING", "0", API_TIER_ENTERPRISE, API_LIMIT_RUNNING,
             "enterprise tier: as TIER_FREE_RUNNING"),
    TIER_VAR("TIER_ENTERPRISE_QUEUED", "0", API_TIER_ENTERPRISE, API_LIMIT_QUEUED,
             "enterprise tier: as TIER_FREE_QUEUED"),
    TIER_VAR("TIER_ENTERPRISE_SWEEP_MEMBERS", "0", API_TIER_ENTERPRISE, API_LIMIT_MEMBERS,
             "enterprise tier: as TIER_FREE_SWEEP_MEMBERS"),
    TIER_VAR("RATE_LIMIT_FREE_PER_SECOND", "10", API_TIER_FREE, API_LIMIT_RATE,
             "free tier: requests a second each API key may make to /v1/ (token bucket; 429 rate_limited above)"),
    TIER_VAR("RATE_LIMIT_FREE_BURST", "20", API_TIER_FREE, API_LIMIT_BURST,
             "free tier: the bucket's size, requests in a burst; 0 (or a rate of 0) = no rate limit"),
    TIER_VAR("RATE_LIMIT_PREMIUM_PER_SECOND", "50", API_TIER_PREMIUM, API_LIMIT_RATE,
             "premium tier: as RATE_LIMIT_FREE_PER_SECOND"),
    TIER_VAR("RATE_LIMIT_PREMIUM_BURST", "200", API_TIER_PREMIUM, API_LIMIT_BURST,
             "premium tier: as RATE_LIMIT_FREE_BURST"),
    TIER_VAR("RATE_LIMIT_ENTERPRISE_PER_SECOND", "0", API_TIER_ENTERPRISE, API_LIMIT_RATE,
             "enterprise tier: as RATE_LIMIT_FREE_PER_SECOND"),
    TIER_VAR("RATE_LIMIT_ENTERPRISE_BURST", "0", API_TIER_ENTERPRISE, API_LIMIT_BURST,
             "enterprise tier: as RATE_LIMIT_FREE_BURST"),
#undef TIER_VAR
    SF_CONFIG_COMMON_VARS(api_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

#define API_CONNECTION_MEMORY (16 * 1024)

static const char summary[] = "The backtest farm's HTTP/JSON API: submissions, status, results, cancel, data sets,\n"
                              "/health, /ready and /metrics. Configured by environment variables (NAME or NAME_FILE).";

/* ---- requests ------------------------------------------------------------------ */

static void on_done(const sf_httpd_done *d, void *appv)
{
    api_app *app = appv;
    char status[8];
    snprintf(status, sizeof status, "%d", d->status);
    const char *labels[] = {d->method, d->route, status};
    sf_metrics_observe(app->metrics, API_METRIC_HTTP_DURATION, labels, d->duration_s, NULL);
    if (sf_log_enabled(app->log, SF_LOG_DEBUG))
        sf_log_debug(app->log, "request", SF_LF_STR("request_id", d->request_id), SF_LF_STR("method", d->method),
                     SF_LF_STR("route", d->route), SF_LF_INT("status", d->status),
                     SF_LF_DBL("duration_ms", d->duration_s * 1000.0));
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int serve(api_app *app, sf_daemon *d)
{
    const api_config *cfg = app->cfg;
    sf_httpd_opts o = {.bind_address = cfg->bind_address,
                       .port = (int)cfg->port,
                       .threads = (unsigned)cfg->threads,
                       .max_body = (size_t)cfg->max_body,
                       .per_client_limit = (unsigned)cfg->per_client,
                       /* headers and read buffer (431 over): libmicrohttpd zeroes a
                        * connection's whole pool after every request, so 64 KiB
                        * cost a 64 KiB memset a request (11 % of sf-api's CPU on a
                        * cached GET); an API request's headers are well under 8 KiB */
                       .connection_memory = API_CONNECTION_MEMORY,
                       .on_headers = api_on_headers,
                       .on_done = on_done,
                       .app = app};
    sf_httpd *httpd = NULL;
    sf_err err = {0};
    if (sf_httpd_start(api_routes, api_n_routes, &o, &httpd, &err) != SF_OK) {
        sf_log_error(app->log, "could not start the HTTP server", SF_LF_STR("error", err.msg));
        return 1;
    }
    sf_log_info(app->log, "listening", SF_LF_STR("bind_address", cfg->bind_address),
                SF_LF_INT("port", sf_httpd_port(httpd)), SF_LF_INT("threads", cfg->threads));
    sf_daemon_wait(d);
    sf_httpd_quiesce(httpd);
    sf_log_info(app->log, "listener closed", SF_LF_INT("in_flight", sf_httpd_in_flight(httpd)),
                SF_LF_INT("drain_seconds", cfg->drain_s));
    sf_httpd_stop(httpd, (int)cfg->drain_s * 1000);
    return 0;
}

static int run(void *cfgv, sf_daemon *d)
{
    api_app app;
    sf_err err = {0};
    if (api_app_init(&app, cfgv, sf_daemon_log(d), &err) != SF_OK) {
        sf_log_error(sf_daemon_log(d), "could not start", SF_LF_STR("error", err.msg));
        return 1;
    }
    app.start_time = now_unix();
    int rc = serve(&app, d);
    api_app_destroy(&app);
    return rc;
}

int main(int argc, char **argv)
{
    static const sf_daemon_spec spec = {.prog = "sf-api",
                                        .summary = summary,
                                        .vars = config_vars,
                                        .n_vars = N_VARS,
                                        .common_offset = offsetof(api_config, common),
                                        .run = run};
    api_config cfg = {0};
    return sf_daemon_main(&spec, argc, argv, &cfg);
}
