/*
 * sf-scheduler: the only process that adds jobs to the dispatch queue.
 * Several replicas may run; one holds the leader lease and acts (relay,
 * cron, reaper, rebuild, retention; see scheduler.h), the others wait.
 *
 * main hands the configuration table to sf_daemon_main (sf/daemon.h: --help,
 * --version, configuration errors, signals, the start and stop lines). run
 * starts the leader and duties threads and waits for the drain: on the first
 * SIGTERM/SIGINT the duties stop (the current pass ends), then the leader
 * gives up its lease (NOTIFY sf_leader, so a follower takes over at once) and
 * the process exits 0.
 */
#include <stddef.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sf/daemon.h"
#include "sf/opsd.h"

#include "scheduler.h"

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(sched_config, database_url),
    SF_CONFIG_REDIS_URL_VAR(sched_config, redis_url),
    {"SCHEDULER_NAME", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(sched_config, name),
     "name of this replica in the leader row; empty = hostname-pid"},
    SF_CONFIG_QUEUE_VAR(sched_config, queue),
    {"LEADER_TTL_SECONDS", SF_CFG_INT, "10", 2, 3600, NULL, 0, offsetof(sched_config, leader_ttl_s),
     "leader lease length; renewed every third of it"},
    {"RELAY_MAX_READY", SF_CFG_INT, "10000", 1, 10000000, NULL, 0, offsetof(sched_config, relay_max_ready),
     "most job ids kept ready in Redis"},
    {"REAPER_INTERVAL_MS", SF_CFG_INT, "1000", 10, 3600000, NULL, 0, offsetof(sched_config, reaper_interval_ms),
     "how often expired leases are reaped"},
    {"SF_RETENTION_DAYS", SF_CFG_INT, "30", 1, 36500, NULL, 0, offsetof(sched_config, retention_days),
     "finished jobs, empty batches and cron firings older than this are deleted"},
    {"RETENTION_INTERVAL_SECONDS", SF_CFG_INT, "300", 1, 86400, NULL, 0, offsetof(sched_config, retention_interval_s),
     "how often retention runs"},
    {"SF_SCHEDULE_MAX_FAILURES", SF_CFG_INT, "3", 0, 1000, NULL, 0, offsetof(sched_config, schedule_max_failures),
     "consecutive failed executions that disable a cron schedule (reason in schedules.disabled_reason); "
     "0 = never"},
    {"RETRY_BASE_MS", SF_CFG_INT, "1000", 1, 3600000, NULL, 0, offsetof(sched_config, retry_base_ms),
     "first retry backoff of a reaped job"},
    {"RETRY_CAP_MS", SF_CFG_INT, "600000", 1, 86400000, NULL, 0, offsetof(sched_config, retry_cap_ms),
     "longest retry backoff"},
    {"FLEET_METRICS_SECONDS", SF_CFG_INT, "5", 1, 3600, NULL, 0, offsetof(sched_config, fleet_metrics_s),
     "how often the leader recomputes the fleet gauges (queue depth, jobs by status, live workers; "
     "finished jobs every tenth time)"},
    SF_CONFIG_METRICS_PORT_VAR(sched_config, metrics_port),
    SF_CONFIG_METRICS_ADDR_VAR(sched_config, metrics_addr),
    SF_CONFIG_METRICS_TOKEN_VAR(sched_config, metrics_token),
    SF_CONFIG_COMMON_VARS(sched_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

static const char summary[] = "Relays submitted jobs from PostgreSQL to Redis, fires cron schedules, reaps expired\n"
                              "leases, rebuilds Redis after a flush and prunes old jobs. Several replicas may run;\n"
                              "one leader (a lease row in PostgreSQL) acts. SIGTERM gives the lease up and exits.";

/* Across variables, after a clean load. */
static sf_status check(void *cfgv, sf_buf *errors)
{
    const sched_config *cfg = cfgv;
    if (cfg->retry_cap_ms >= cfg->retry_base_ms)
        return SF_OK;
    sf_buf_puts(errors, "RETRY_CAP_MS: must be at least RETRY_BASE_MS\n", NULL);
    return SF_ERR_CONFIG;
}

/* SCHEDULER_NAME (or hostname-pid) plus a random suffix, so a restarted
 * replica never mistakes the previous process's lease for its own. */
static void make_holder(const sched_config *cfg, char *buf, size_t size)
{
    char host[128] = "host";
    unsigned char r[4] = {0};
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        r[0] = (unsigned char)getpid();
    if (cfg->name[0] != '\0')
        snprintf(buf, size, "%.120s/%02x%02x%02x%02x", cfg->name, r[0], r[1], r[2], r[3]);
    else
        snprintf(buf, size, "%.120s-%ld/%02x%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2], r[3]);
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* METRICS_PORT: /metrics, /health and /ready (sf/opsd.h) over the duties'
 * registry; *out NULL when 0. */
static sf_status start_listener(const sched_config *cfg, sf_log *log, sched_duties *duties, sf_opsd **out, sf_err *err)
{
    *out = NULL;
    if (cfg->metrics_port == 0)
        return SF_OK;
    sf_opsd_opts o = {.bind_address = cfg->metrics_addr,
                      .port = (int)cfg->metrics_port,
                      .metrics_token = cfg->metrics_token,
                      .database_url = cfg->database_url,
                      .redis_url = cfg->redis_url,
                      .metrics = duties->metrics,
                      .start_time = now_unix(),
                      .refresh = sched_metrics_refresh,
                      .app = duties};
    sf_status st = sf_opsd_start(&o, out, err);
    if (st == SF_OK)
        sf_log_info(log, "metrics listening", SF_LF_STR("bind_address", cfg->metrics_addr),
                    SF_LF_INT("port", sf_opsd_port(*out)));
    return st;
}

static int run(void *cfgv, sf_daemon *d)
{
    const sched_config *cfg = cfgv;
    sf_log *log = sf_daemon_log(d);
    sched_leader leader = {0};
    sched_duties duties = {0};
    sched_stop stop = {0};
    sf_metrics *metrics = NULL;
    sf_opsd *ops = NULL;
    char holder[SCHED_HOLDER_MAX];
    sf_err err;
    sf_err_clear(&err);
    make_holder(cfg, holder, sizeof holder);
    atomic_store(&stop.requested, 0);
    sf_log_info(log, "running", SF_LF_STR("holder", holder), SF_LF_STR("queue", cfg->queue),
                SF_LF_INT("ttl_seconds", cfg->leader_ttl_s));
    if ((cfg->metrics_port != 0 && sched_metrics_new(&metrics, &err) != SF_OK) ||
        sched_leader_start(&leader, cfg, log, holder, &err) != SF_OK ||
        sched_duties_start(&duties, cfg, log, &leader, &stop, metrics, &err) != SF_OK ||
        start_listener(cfg, log, &duties, &ops, &err) != SF_OK) {
        sf_log_error(log, "could not start", SF_LF_STR("error", err.msg));
        atomic_store(&stop.requested, 1);
        sched_duties_join(&duties);
        sched_leader_stop(&leader);
        sf_metrics_free(metrics);
        return 1;
    }
    sf_daemon_wait(d);
    atomic_store(&stop.requested, 1);
    sched_duties_join(&duties); /* the current pass ends */
    sched_leader_stop(&leader); /* gives the lease up */
    sf_opsd_stop(ops);
    sf_metrics_free(metrics);
    return 0;
}

int main(int argc, char **argv)
{
    static const sf_daemon_spec spec = {.prog = "sf-scheduler",
                                        .summary = summary,
                                        .vars = config_vars,
                                        .n_vars = N_VARS,
                                        .common_offset = offsetof(sched_config, common),
                                        .check = check,
                                        .run = run};
    sched_config cfg = {0};
    return sf_daemon_main(&spec, argc, argv, &cfg);
}
