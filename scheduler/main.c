/*
 * sf-scheduler: the only process that adds jobs to the dispatch queue.
 * Several replicas may run; one holds the leader lease and acts (relay,
 * cron, reaper, rebuild, retention; see scheduler.h), the others wait.
 *
 * main: parse the configuration (exit 2 with one line per bad variable),
 * block signals, start the leader and duties threads, then wait for signals
 * here (sigwait). The first SIGTERM/SIGINT stops the duties (the current
 * pass ends), then the leader gives up its lease (NOTIFY sf_leader, so a
 * follower takes over at once) and the process exits 0. A second signal
 * exits at once with status 1.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "scheduler.h"

#define PROG "sf-scheduler"

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(sched_config, database_url),
    SF_CONFIG_REDIS_URL_VAR(sched_config, redis_url),
    {"SCHEDULER_NAME", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(sched_config, name),
     "name of this replica in the leader row; empty = hostname-pid"},
    SF_CONFIG_QUEUE_VAR(sched_config, queue),
    {"LEADER_TTL_SECONDS", SF_CFG_INT, "10", 2, 3600, NULL, 0, offsetof(sched_config, leader_ttl_s),
     "leader lease length; renewed every third of it"},
    {"RELAY_MAX_READY", SF_CFG_INT, "10000", 1, 10000000, NULL, 0,
     offsetof(sched_config, relay_max_ready), "most job ids kept ready in Redis"},
    {"REAPER_INTERVAL_MS", SF_CFG_INT, "1000", 10, 3600000, NULL, 0,
     offsetof(sched_config, reaper_interval_ms), "how often expired leases are reaped"},
    {"SF_RETENTION_DAYS", SF_CFG_INT, "30", 1, 36500, NULL, 0, offsetof(sched_config, retention_days),
     "finished jobs, empty batches and cron firings older than this are deleted"},
    {"RETENTION_INTERVAL_SECONDS", SF_CFG_INT, "300", 1, 86400, NULL, 0,
     offsetof(sched_config, retention_interval_s), "how often retention runs"},
    {"SF_SCHEDULE_MAX_FAILURES", SF_CFG_INT, "3", 0, 1000, NULL, 0,
     offsetof(sched_config, schedule_max_failures),
     "consecutive failed executions that disable a cron schedule (reason in schedules.disabled_reason); "
     "0 = never"},
    {"RETRY_BASE_MS", SF_CFG_INT, "1000", 1, 3600000, NULL, 0, offsetof(sched_config, retry_base_ms),
     "first retry backoff of a reaped job"},
    {"RETRY_CAP_MS", SF_CFG_INT, "600000", 1, 86400000, NULL, 0, offsetof(sched_config, retry_cap_ms),
     "longest retry backoff"},
    SF_CONFIG_COMMON_VARS(sched_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

static const char summary[] =
        "Relays submitted jobs from PostgreSQL to Redis, fires cron schedules, reaps expired\n"
        "leases, rebuilds Redis after a flush and prunes old jobs. Several replicas may run;\n"
        "one leader (a lease row in PostgreSQL) acts. SIGTERM gives the lease up and exits.";

/* -1 = go on; otherwise the exit code (after --help or a bad argument). */
static int parse_args(int argc, char **argv)
{
    sf_buf out;
    sf_buf_init(&out, 1 << 16);
    int rc = sf_config_args(PROG, summary, config_vars, N_VARS, argc, argv, &out);
    fputs(sf_buf_str(&out), rc == 0 ? stdout : stderr);
    sf_buf_destroy(&out);
    return rc;
}

/* One "PROG: VARIABLE: reason" line per bad variable, on stderr. */
static void print_config_errors(const sf_buf *errors)
{
    sf_buf out;
    sf_buf_init(&out, 1 << 16);
    sf_config_errors_format(PROG, errors, &out, NULL);
    fputs(sf_buf_str(&out), stderr);
    sf_buf_destroy(&out);
}

static int load_config(sched_config *cfg)
{
    sf_buf errors;
    sf_buf_init(&errors, 1 << 16);
    sf_status st = sf_config_load(config_vars, N_VARS, cfg, &errors);
    if (st == SF_OK && cfg->retry_cap_ms < cfg->retry_base_ms) {
        sf_buf_puts(&errors, "RETRY_CAP_MS: must be at least RETRY_BASE_MS\n", NULL);
        st = SF_ERR_CONFIG;
    }
    if (st != SF_OK)
        print_config_errors(&errors);
    sf_buf_destroy(&errors);
    return st == SF_OK;
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
        snprintf(buf, size, "%.120s-%ld/%02x%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2],
                 r[3]);
}

static void wait_for_signals(const sigset_t *set, sched_stop *stop, sf_log *log)
{
    int sig = 0;
    while (sigwait(set, &sig) == 0) {
        if (sig != SIGTERM && sig != SIGINT)
            continue;
        if (atomic_load(&stop->requested)) {
            sf_log_warn(log, "second signal: exiting at once", SF_LF_INT("signal", sig));
            _exit(1);
        }
        sf_log_info(log, "stopping", SF_LF_INT("signal", sig));
        atomic_store(&stop->requested, 1);
    }
}

typedef struct sched_app {
    sched_config *cfg;
    sf_log *log;
    sched_stop stop;
    sched_leader leader;
    sched_duties duties;
    sigset_t sigs;
} sched_app;

/* The signal thread: lives until the process exits. */
static void *signal_main(void *arg)
{
    sched_app *app = arg;
    wait_for_signals(&app->sigs, &app->stop, app->log);
    return NULL;
}

static int run(sched_app *app)
{
    char holder[SCHED_HOLDER_MAX];
    sf_err err;
    sf_err_clear(&err);
    make_holder(app->cfg, holder, sizeof holder);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, app) != 0) {
        sf_log_error(app->log, "could not start the signal thread");
        return 1;
    }
    pthread_setname_np(sig_thread, "sched-signals");
    pthread_detach(sig_thread);
    sf_log_info(app->log, "starting", SF_LF_STR("holder", holder),
                SF_LF_STR("queue", app->cfg->queue), SF_LF_INT("ttl_seconds", app->cfg->leader_ttl_s));
    if (sched_leader_start(&app->leader, app->cfg, app->log, holder, &err) != SF_OK ||
        sched_duties_start(&app->duties, app->cfg, app->log, &app->leader, &app->stop, &err) != SF_OK) {
        sf_log_error(app->log, "could not start", SF_LF_STR("error", err.msg));
        atomic_store(&app->stop.requested, 1);
        sched_leader_stop(&app->leader);
        return 1;
    }
    sched_duties_join(&app->duties); /* returns once stop is requested */
    sched_leader_stop(&app->leader);
    sf_log_info(app->log, "stopped", SF_LF_STR("holder", holder));
    return 0;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc >= 0)
        return rc;
    sched_config cfg = {0};
    if (!load_config(&cfg)) {
        sf_config_free(config_vars, N_VARS, &cfg);
        return 2;
    }
    sched_app app = {.cfg = &cfg};
    sigemptyset(&app.sigs);
    sigaddset(&app.sigs, SIGTERM);
    sigaddset(&app.sigs, SIGINT);
    sigaddset(&app.sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &app.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sf_err err;
    sf_err_clear(&err);
    if (sf_log_open(PROG, cfg.common.environment, (sf_log_level)cfg.common.log_level,
                    cfg.common.log_dir, 1, &app.log, &err) != SF_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        sf_config_free(config_vars, N_VARS, &cfg);
        return 2;
    }
    atomic_store(&app.stop.requested, 0);
    rc = run(&app);
    sf_log_close(app.log);
    sf_config_free(config_vars, N_VARS, &cfg);
    return rc;
}
