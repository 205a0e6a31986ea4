/*
 * sf-worker: claims backtest jobs from Redis, runs them with the engine on
 * WORKER_THREADS runner threads and records the results in PostgreSQL (see
 * worker.h for the threads).
 *
 * main hands the configuration table to sf_daemon_main (sf/daemon.h: --help,
 * --version, configuration errors, signals, the start and stop lines). run
 * starts the threads and waits for the drain: on the first SIGTERM/SIGINT it
 * stops claiming, lets running jobs finish within SF_DRAIN_SECONDS, releases
 * the rest, flushes outcomes, and the process exits 0.
 */
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "sf/daemon.h"
#include "sf/equity.h"
#include "sf/http.h"
#include "sf/opsd.h"
#include "sf/webhook.h"

#include "worker.h"

#define DRAIN_DEFAULT_S 25

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(wrk_config, database_url),
    SF_CONFIG_REDIS_URL_VAR(wrk_config, redis_url),
    {"WORKER_THREADS", SF_CFG_INT, "0", 0, WRK_THREADS_MAX, NULL, 0, offsetof(wrk_config, threads),
     "runner threads (jobs run at once); 0 = one per online CPU"},
    {"WORKER_NAME", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(wrk_config, name),
     "name recorded on claimed jobs; empty = hostname-pid"},
    {"LEASE_SECONDS", SF_CFG_INT, "30", 1, 3600, NULL, 0, offsetof(wrk_config, lease_seconds),
     "job lease; renewed every third of it"},
    {"SF_DRAIN_SECONDS", SF_CFG_INT, "-1", -1, 3600, NULL, 0, offsetof(wrk_config, drain_seconds),
     "on SIGTERM, how long running jobs may finish before they are released; -1 = DRAIN_SECONDS, else 25"},
    {"DRAIN_SECONDS", SF_CFG_INT, "-1", -1, 3600, NULL, 0, offsetof(wrk_config, drain_seconds_old),
     "old name of SF_DRAIN_SECONDS, used when that is -1; -1 = unset"},
    {"SF_CACHE_MB", SF_CFG_INT, "128", 1, 1048576, NULL, 0, offsetof(wrk_config, cache_mb),
     "memory for cached data sets (LRU)"},
    SF_CONFIG_QUEUE_VAR(wrk_config, queue),
    {"SF_RUNNER_NICE", SF_CFG_INT, "10", 0, 19, NULL, 0, offsetof(wrk_config, runner_nice),
     "niceness of the threads that run jobs, so job CPU never starves heartbeats, claims or the control plane"},
    {"SF_OPTIMISTIC_US", SF_CFG_INT, "200", 0, 3600000000LL, NULL, 0, offsetof(wrk_config, optimistic_us),
     "sweep members that run here faster than this on average are read and committed with one "
     "compare-and-set instead of claimed first (they cost less than a claim); 0 = always claim"},
    {"SF_EQUITY_POINTS", SF_CFG_INT, "1000", 0, 100000000, NULL, 0, offsetof(wrk_config, equity_points),
     "most equity points stored per backtest (first, last, drawdown peak and trough kept); 0 = all"},
    {"SF_WEBHOOK_TIMEOUT_MS", SF_CFG_INT, "5000", 100, 120000, NULL, 0, offsetof(wrk_config, webhook_timeout_ms),
     "one webhook POST, connect included"},
    {"SF_WEBHOOK_ATTEMPTS", SF_CFG_INT, "3", 1, SF_WEBHOOK_ATTEMPTS_MAX, NULL, 0,
     offsetof(wrk_config, webhook_attempts), "webhook attempts before the delivery is recorded failed"},
    {"SF_WEBHOOK_BACKOFF_MS", SF_CFG_INT, "500", 1, 60000, NULL, 0, offsetof(wrk_config, webhook_backoff_ms),
     "pause before the second webhook attempt; doubles after each"},
    {"SF_WEBHOOK_ALLOW_CIDRS", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(wrk_config, webhook_allow_cidrs),
     "comma-separated CIDRs (10.0.0.0/8,127.0.0.1/32) webhooks may reach though they are not public; "
     "empty = none: loopback, private, link-local, metadata, CGNAT, multicast and reserved addresses are refused"},
    {"SF_OUTCOME_BUDGET_MB", SF_CFG_INT, "64", 1, 65536, NULL, 0, offsetof(wrk_config, outcome_budget_mb),
     "claim only while finished outcomes not yet committed hold less memory than this (README: Worker memory and "
     "leases)"},
    {"SF_OUTCOME_BUDGET_JOBS", SF_CFG_INT, "2000", 1, 1000000, NULL, 0, offsetof(wrk_config, outcome_budget_jobs),
     "claim only while running jobs and outcomes not yet committed are fewer than this"},
    {"SF_COMPLETION_BATCH_MB", SF_CFG_INT, "8", 1, 256, NULL, 0, offsetof(wrk_config, completion_batch_mb),
     "most outcome bytes committed in one statement (and at most 1000 outcomes)"},
    {"SF_RESULT_MAX_MB", SF_CFG_INT, "64", 1, 256, NULL, 0, offsetof(wrk_config, result_max_mb),
     "a job whose stored result would be bigger fails permanently, naming this limit"},
    {"SF_RUN_MAX_MB", SF_CFG_INT, "96", 1, 1048576, NULL, 0, offsetof(wrk_config, run_max_mb),
     "a run whose working set (indicator series, equity curve: sf_engine_working_set) would be "
     "bigger fails permanently before it starts, naming its estimate and this limit"},
    {"SF_JOB_TIMEOUT_S", SF_CFG_INT, "900", 0, 604800, NULL, 0, offsetof(wrk_config, job_timeout_s),
     "a run (indicators and simulation) that takes longer is stopped within milliseconds and fails "
     "permanently, naming this limit; 0 = no limit"},
    SF_CONFIG_METRICS_PORT_VAR(wrk_config, metrics_port),
    SF_CONFIG_METRICS_ADDR_VAR(wrk_config, metrics_addr),
    SF_CONFIG_METRICS_TOKEN_VAR(wrk_config, metrics_token),
    SF_CONFIG_COMMON_VARS(wrk_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

static const char summary[] = "Claims jobs from Redis, runs backtests and logic executions with the engine on\n"
                              "WORKER_THREADS threads, records results and signals in PostgreSQL and POSTs the\n"
                              "signals of schedules with a webhook. SIGTERM drains: no new claims, running jobs get\n"
                              "SF_DRAIN_SECONDS to finish, the rest are released; a second SIGTERM exits at once.";

/* WORKER_THREADS 0 = online CPUs; SF_DRAIN_SECONDS -1 = DRAIN_SECONDS or 25. */
static void resolve_defaults(wrk_config *cfg)
{
    if (cfg->threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cpus < 1 ? 1 : cpus > WRK_THREADS_MAX ? WRK_THREADS_MAX : cpus;
    }
    if (cfg->drain_seconds < 0)
        cfg->drain_seconds = cfg->drain_seconds_old >= 0 ? cfg->drain_seconds_old : DRAIN_DEFAULT_S;
}

/* Across variables, after a clean load; then the derived defaults. */
static sf_status check(void *cfgv, sf_buf *errors)
{
    wrk_config *cfg = cfgv;
    sf_status st = SF_OK;
    sf_queue *q = NULL;
    sf_err err = {0};
    if (sf_queue_new(cfg->queue, NULL, &q, &err) != SF_OK) {
        sf_buf_printf(errors, NULL, "QUEUE: %s\n", err.msg);
        st = SF_ERR_CONFIG;
    }
    sf_queue_free(q);
    if (cfg->equity_points > 0 && cfg->equity_points < SF_EQUITY_POINTS_MIN) {
        sf_buf_printf(errors, NULL, "SF_EQUITY_POINTS: must be 0 (keep all) or at least %d, got %lld\n",
                      SF_EQUITY_POINTS_MIN, (long long)cfg->equity_points);
        st = SF_ERR_CONFIG;
    }
    if (sf_netpolicy_parse(cfg->webhook_allow_cidrs, &cfg->webhook_policy, &err) != SF_OK) {
        sf_buf_printf(errors, NULL, "SF_WEBHOOK_ALLOW_CIDRS: %s\n", err.msg);
        st = SF_ERR_CONFIG;
    }
    resolve_defaults(cfg);
    return st;
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* METRICS_PORT: /metrics, /health and /ready (sf/opsd.h); *out NULL when 0. */
static sf_status start_listener(wrk *w, double start_time, sf_opsd **out, sf_err *err)
{
    const wrk_config *cfg = w->cfg;
    *out = NULL;
    if (cfg->metrics_port == 0)
        return SF_OK;
    sf_opsd_opts o = {.bind_address = cfg->metrics_addr,
                      .port = (int)cfg->metrics_port,
                      .metrics_token = cfg->metrics_token,
                      .database_url = cfg->database_url,
                      .redis_url = cfg->redis_url,
                      .metrics = w->metrics,
                      .start_time = start_time,
                      .refresh = wrk_metrics_refresh,
                      .ready = wrk_ready,
                      .app = w};
    sf_status st = sf_opsd_start(&o, out, err);
    if (st == SF_OK)
        sf_log_info(w->log, "metrics listening", SF_LF_STR("bind_address", cfg->metrics_addr),
                    SF_LF_INT("port", sf_opsd_port(*out)));
    return st;
}

/* The threads, from the start to the end of the drain. */
static int work(wrk *w, sf_daemon *d)
{
    const wrk_config *cfg = w->cfg;
    double start_time = now_unix();
    sf_opsd *ops = NULL;
    sf_err err = {0};
    if ((cfg->metrics_port != 0 && wrk_metrics_new(&w->metrics, &err) != SF_OK) ||
        wrk_cache_new((size_t)cfg->cache_mb << 20, &w->cache, &err) != SF_OK ||
        wrk_gridcache_new(&w->grids, &err) != SF_OK || wrk_start(w, &err) != 0 ||
        start_listener(w, start_time, &ops, &err) != SF_OK) {
        sf_log_error(w->log, "could not start", SF_LF_STR("error", err.msg));
        return 1;
    }
    sf_log_info(w->log, "running", SF_LF_STR("worker", w->name), SF_LF_INT("threads", cfg->threads),
                SF_LF_INT("lease_seconds", cfg->lease_seconds), SF_LF_INT("drain_seconds", cfg->drain_seconds),
                SF_LF_STR("queue", cfg->queue));
    sf_daemon_wait(d);
    wrk_drain_and_stop(w); /* /ready answers 503 (draining) meanwhile */
    sf_opsd_stop(ops);
    sf_metrics_free(w->metrics);
    w->metrics = NULL;
    wrk_cache_stats cs;
    wrk_cache_get_stats(w->cache, &cs);
    sf_log_info(w->log, "drained", SF_LF_STR("worker", w->name), SF_LF_INT("cache_hits", cs.hits),
                SF_LF_INT("cache_misses", cs.misses));
    wrk_cache_free(w->cache);
    wrk_gridcache_free(w->grids);
    return 0;
}

static int run(void *cfgv, sf_daemon *d)
{
    static wrk w; /* lives as long as the process: threads may outlive a failed start */
    const wrk_config *cfg = cfgv;
    w.cfg = cfg;
    w.log = sf_daemon_log(d);
    w.lease_ms = cfg->lease_seconds * 1000;
    if (cfg->name[0])
        snprintf(w.name, sizeof w.name, "%s", cfg->name);
    else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(w.name, sizeof w.name, "%s-%d", host, (int)getpid());
    }
    sf_err err = {0};
    /* with the signal thread running: curl_global_init is thread-safe since 7.84 */
    if (sf_http_global_init(&err) != SF_OK) {
        sf_log_error(w.log, "could not start", SF_LF_STR("error", err.msg));
        return 1;
    }
    int rc = work(&w, d);
    sf_http_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const sf_daemon_spec spec = {.prog = "sf-worker",
                                        .summary = summary,
                                        .vars = config_vars,
                                        .n_vars = N_VARS,
                                        .common_offset = offsetof(wrk_config, common),
                                        .check = check,
                                        .run = run};
    wrk_config cfg = {0};
    return sf_daemon_main(&spec, argc, argv, &cfg);
}
