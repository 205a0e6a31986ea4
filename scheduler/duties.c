/*
 * duties: the leader's work loop. It waits in LISTEN sf_jobs (the API
 * NOTIFYs in the submitting transaction) for at most one tick (1 s), then,
 * while this process holds the lease:
 *   every wake    relay pending jobs to Redis (also promotes delayed retries,
 *                 which are pending rows whose run_at has come)
 *   every tick    cron firings; detail jobs of finished sweeps' best members
 *                 (sf/detail.h); the Redis incarnation check (rebuild)
 *   REAPER_INTERVAL_MS   expired PostgreSQL leases, expired Redis leases
 *   RETENTION_INTERVAL_SECONDS   retention
 * On becoming leader every timer fires at once and Redis is rebuilt (the
 * previous leader's incarnation is not ours).
 *
 * Failure behaviour: a lost database connection is reopened with backoff
 * (nothing is done meanwhile: every duty needs PostgreSQL). A lost Redis
 * connection is retried with backoff up to 5 s while cron, the PostgreSQL
 * reaper and retention go on. Errors are logged here, once, per pass.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"
#include "sf/detail.h"
#include "sf/time.h"

#define TICK_MS 1000
#define DETAIL_BATCHES 20 /* finished sweeps whose details are enqueued per tick */
#define DRAIN_NOTIFIES 1000
#define RELAY_AGAIN_MS 20

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int stopping(const sched_duties *d)
{
    return atomic_load(&d->stop->requested);
}

void sched_duties_redis_down(sched_duties *d, const sf_err *err)
{
    sf_log_warn(d->log, "redis unavailable", SF_LF_STR("error", err->msg),
                SF_LF_INT("retry_in_ms", d->redis_backoff_ms));
    sf_queue_free(d->queue);
    d->queue = NULL;
    sf_redis_close(d->redis);
    d->redis = NULL;
    d->redis_retry_ms = sf_time_mono_ms() + d->redis_backoff_ms;
    d->redis_backoff_ms = d->redis_backoff_ms * 2 > 5000 ? 5000 : d->redis_backoff_ms * 2;
    d->rebuild_needed = 1; /* what Redis holds now is unknown */
}

/* 1 when d->queue is usable. */
static int ensure_redis(sched_duties *d)
{
    if (d->queue != NULL)
        return 1;
    if (sf_time_mono_ms() < d->redis_retry_ms)
        return 0;
    sf_err err;
    sf_err_clear(&err);
    sf_redis_opts opts = {.connect_timeout_ms = 1000, .command_timeout_ms = 5000, .client_name = "sf-scheduler"};
    if (sf_redis_open(d->cfg->redis_url, &opts, &d->redis, &err) != SF_OK ||
        sf_queue_new(d->cfg->queue, d->redis, &d->queue, &err) != SF_OK) {
        sched_duties_redis_down(d, &err);
        return 0;
    }
    d->redis_backoff_ms = 100;
    sf_log_info(d->log, "redis connected", SF_LF_STR("queue", sf_queue_prefix(d->queue)));
    return 1;
}

/* 1 when d->db is usable (LISTEN sf_jobs issued). */
static int ensure_db(sched_duties *d, int64_t *backoff)
{
    if (d->db != NULL && sf_db_is_ok(d->db))
        return 1;
    sf_db_close(d->db);
    d->db = NULL;
    sf_err err;
    sf_err_clear(&err);
    sf_db_opts opts = {.connect_timeout_s = 2,
                       .connect_attempts = 1,
                       .statement_timeout_ms = 30000,
                       .application_name = "sf-scheduler",
                       .index_plans = 1 /* jobs grows from empty: see job.c */};
    /* A stalled process must not hold the leader row (FOR SHARE in the cron
     * transaction) or job rows for long: the server ends such a session. */
    char idle[96];
    int64_t idle_ms = d->cfg->leader_ttl_s * 1000 > 2000 ? d->cfg->leader_ttl_s * 1000 : 2000;
    snprintf(idle, sizeof idle, "SET idle_in_transaction_session_timeout = %lld", (long long)idle_ms);
    if (sf_db_open(d->cfg->database_url, &opts, &d->db, &err) == SF_OK && sf_db_exec(d->db, idle, &err) == SF_OK &&
        sf_db_exec(d->db, "LISTEN sf_jobs", &err) == SF_OK) {
        *backoff = 100;
        return 1;
    }
    sf_log_warn(d->log, "could not connect to the database", SF_LF_STR("error", err.msg));
    sf_db_close(d->db);
    d->db = NULL;
    sleep_ms(*backoff);
    *backoff = *backoff * 2 > 5000 ? 5000 : *backoff * 2;
    return 0;
}

/* Sleep in LISTEN until a notification or the next timer; drain the rest. */
static void wait_wake(sched_duties *d, int64_t until_ms)
{
    int64_t left = until_ms - sf_time_mono_ms();
    int got = 0;
    char ch[32], payload[64];
    sf_err err;
    if (left > 0 && sf_db_wait_notify(d->db, (int)left, &got, ch, sizeof ch, payload, sizeof payload, &err) != SF_OK)
        return;
    for (int i = 0; got && i < DRAIN_NOTIFIES; i++)
        if (sf_db_wait_notify(d->db, 0, &got, ch, sizeof ch, payload, sizeof payload, &err) != SF_OK)
            return;
}

static void log_pass_error(sched_duties *d, const char *what, const sf_err *err)
{
    sf_log_error(d->log, what, SF_LF_STR("error", err->msg), SF_LF_STR("code", sf_status_name(err->code)));
}

static void run_cron(sched_duties *d)
{
    sched_cron_stats cs = {0};
    sf_err err;
    sf_err_clear(&err);
    if (sched_cron_pass(d, &cs, &err) != SF_OK)
        log_pass_error(d, "cron pass failed", &err);
    sf_log_level lvl = (cs.fired || cs.skipped || cs.disabled) ? SF_LOG_INFO : SF_LOG_DEBUG;
    if (cs.schedules > 0 || sf_log_enabled(d->log, SF_LOG_DEBUG))
        SF_LOG_(d->log, lvl, "cron pass", SF_LF_INT("schedules", cs.schedules), SF_LF_INT("fired", cs.fired),
                SF_LF_INT("skipped", cs.skipped), SF_LF_INT("duplicates", cs.duplicates),
                SF_LF_INT("disabled", cs.disabled));
}

static void run_details(sched_duties *d)
{
    sf_detail_stats ds = {0};
    sf_err err;
    sf_err_clear(&err);
    if (sf_detail_finished_batches(d->db, DETAIL_BATCHES, &ds, &err) != SF_OK)
        log_pass_error(d, "details pass failed", &err);
    SF_LOG_(d->log, ds.batches > 0 ? SF_LOG_INFO : SF_LOG_DEBUG, "details pass", SF_LF_INT("sweeps", ds.batches),
            SF_LF_INT("details", ds.details));
}

static void run_relay(sched_duties *d)
{
    int64_t relayed = 0;
    sf_err err;
    sf_err_clear(&err);
    sf_status st = sched_relay_pass(d, &relayed, &err);
    if (st == SF_ERR_UNAVAILABLE && d->queue == NULL)
        return; /* Redis went away; logged by sched_duties_redis_down */
    if (st != SF_OK)
        log_pass_error(d, "relay pass failed", &err);
    SF_LOG_(d->log, relayed > 0 ? SF_LOG_INFO : SF_LOG_DEBUG, "relay pass", SF_LF_INT("relayed", relayed));
}

static void run_rebuild(sched_duties *d)
{
    int64_t jobs = 0, requeued = 0;
    int rebuilt = 0;
    sf_err err;
    sf_err_clear(&err);
    sf_status st = sched_rebuild_check(d, &jobs, &requeued, &rebuilt, &err);
    if (st != SF_OK && d->queue != NULL)
        log_pass_error(d, "rebuild failed", &err);
    if (rebuilt)
        sf_log_info(d->log, "rebuilt redis from postgresql", SF_LF_INT("queued_jobs", jobs),
                    SF_LF_INT("requeued", requeued), SF_LF_STR("incarnation", d->incarnation));
}

static void run_reaper(sched_duties *d, int redis_ok)
{
    sched_reap_stats rs = {0};
    sf_err err;
    sf_err_clear(&err);
    if (sched_reap_pg(d, &rs, &err) != SF_OK)
        log_pass_error(d, "reaper pass failed", &err);
    sf_err_clear(&err);
    if (redis_ok && sched_reap_redis(d, &rs, &err) != SF_OK && d->queue != NULL)
        log_pass_error(d, "reaper redis pass failed", &err);
    sched_metrics_reaped(d, rs.pg.retried);
    int64_t any = rs.pg.retried + rs.pg.dead + rs.pg.cancelled + rs.redis_expired;
    SF_LOG_(d->log, any ? SF_LOG_INFO : SF_LOG_DEBUG, "reaper pass", SF_LF_INT("retried", rs.pg.retried),
            SF_LF_INT("dead", rs.pg.dead), SF_LF_INT("cancelled", rs.pg.cancelled),
            SF_LF_INT("redis_expired", rs.redis_expired), SF_LF_INT("redis_requeued", rs.redis_requeued),
            SF_LF_INT("redis_dropped", rs.redis_dropped));
}

static void run_retention(sched_duties *d)
{
    sched_retention_stats rs = {0};
    sf_err err;
    sf_err_clear(&err);
    if (sched_retention_pass(d, &rs, &err) != SF_OK)
        log_pass_error(d, "retention pass failed", &err);
    SF_LOG_(d->log, (rs.jobs || rs.batches || rs.firings) ? SF_LOG_INFO : SF_LOG_DEBUG, "retention pass",
            SF_LF_INT("jobs", rs.jobs), SF_LF_INT("batches", rs.batches), SF_LF_INT("firings", rs.firings),
            SF_LF_INT("days", d->cfg->retention_days));
}

static void run_fleet_metrics(sched_duties *d)
{
    sf_err err;
    sf_err_clear(&err);
    if (sched_metrics_fleet(d, &err) != SF_OK && !(err.code == SF_ERR_UNAVAILABLE && d->queue == NULL))
        log_pass_error(d, "fleet metrics pass failed", &err);
}

/* Everything a leader does after one wake. */
static void leader_work(sched_duties *d)
{
    int64_t now = sf_time_mono_ms();
    if (!d->was_active) {
        d->was_active = 1;
        d->next_tick_ms = d->next_reap_ms = d->next_retention_ms = d->next_fleet_ms = now;
        d->incarnation[0] = '\0';
        d->rebuild_needed = 1;
    }
    int tick = now >= d->next_tick_ms;
    if (tick) {
        d->next_tick_ms = now + TICK_MS;
        run_cron(d);
        if (sched_leader_active(d->leader, NULL))
            run_details(d);
    }
    int redis_ok = ensure_redis(d);
    if (redis_ok && (tick || d->rebuild_needed) && sched_leader_active(d->leader, NULL))
        run_rebuild(d);
    if (d->queue != NULL && sched_leader_active(d->leader, NULL))
        run_relay(d);
    if (now >= d->next_reap_ms && sched_leader_active(d->leader, NULL)) {
        d->next_reap_ms = now + d->cfg->reaper_interval_ms;
        run_reaper(d, d->queue != NULL);
    }
    if (d->metrics != NULL && now >= d->next_fleet_ms && sched_leader_active(d->leader, NULL)) {
        d->next_fleet_ms = now + d->cfg->fleet_metrics_s * 1000;
        run_fleet_metrics(d);
    }
    if (now >= d->next_retention_ms && sched_leader_active(d->leader, NULL)) {
        d->next_retention_ms = now + d->cfg->retention_interval_s * 1000;
        run_retention(d);
    }
}

static int64_t next_timer(const sched_duties *d)
{
    int64_t t = d->next_tick_ms;
    if (d->next_reap_ms < t)
        t = d->next_reap_ms;
    /* A relay pass that left work (Redis at RELAY_MAX_READY, or the pass's
     * batch cap) comes back soon rather than at the next tick: workers drain
     * a full Redis in under a second at farm rates. */
    int64_t again = sf_time_mono_ms() + RELAY_AGAIN_MS;
    if (d->relay_more && again < t)
        t = again;
    return t;
}

static void *duties_main(void *arg)
{
    sched_duties *d = arg;
    int64_t db_backoff = 100;
    while (!stopping(d)) {
        if (!ensure_db(d, &db_backoff))
            continue;
        if (!sched_leader_active(d->leader, NULL)) {
            if (d->was_active)
                sched_metrics_drop_fleet(d->metrics);
            d->was_active = 0;
            wait_wake(d, sf_time_mono_ms() + 200);
            continue;
        }
        leader_work(d);
        if (!stopping(d))
            wait_wake(d, next_timer(d));
    }
    return NULL;
}

sf_status sched_duties_start(sched_duties *d, const sched_config *cfg, sf_log *log, sched_leader *leader,
                             const sched_stop *stop, sf_metrics *metrics, sf_err *err)
{
    memset(d, 0, sizeof *d);
    d->metrics = metrics;
    d->cfg = cfg;
    d->log = log;
    d->leader = leader;
    d->stop = stop;
    d->redis_backoff_ms = 100;
    d->retry.base_ms = cfg->retry_base_ms;
    d->retry.cap_ms = cfg->retry_cap_ms;
    int rc = pthread_create(&d->thread, NULL, duties_main, d);
    if (rc != 0)
        return sf_err_sys(err, SF_ERR_INTERNAL, rc, "could not start the duties thread");
    pthread_setname_np(d->thread, "sched-duties");
    d->started = 1;
    return SF_OK;
}

void sched_duties_join(sched_duties *d)
{
    if (!d->started)
        return;
    pthread_join(d->thread, NULL);
    d->started = 0;
    sf_queue_free(d->queue);
    sf_redis_close(d->redis);
    sf_db_close(d->db);
}
