/*
 * sched: sf-scheduler's private interfaces (not part of shared/).
 *
 * Two threads do the work, each with its own PostgreSQL connection:
 *   leader  (leader.c)  holds the scheduler_leader lease row: acquire, renew
 *                       every ttl/3, release on shutdown. It publishes "active
 *                       until" as a monotonic deadline a safety margin before
 *                       the lease's end, so a leader that cannot renew stops
 *                       acting before another replica may take over.
 *   duties  (duties.c)  while active: cron firings (cronfire.c), relay and
 *                       rebuild (relay.c), reaper (reaper.c), retention
 *                       (retention.c). It sleeps in LISTEN sf_jobs with a 1 s
 *                       tick. Redis may be down: duties that need only
 *                       PostgreSQL go on, the others retry with backoff.
 * A third thread (main.c) waits for signals with sigwait.
 *
 * Thread safety: sched_leader's fields marked (atomic) are read by the duties
 * thread; everything in sched_duties belongs to the duties thread alone.
 */
#ifndef SF_SCHEDULER_H
#define SF_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sf/config.h"
#include "sf/db.h"
#include "sf/job.h"
#include "sf/log.h"
#include "sf/metrics.h"
#include "sf/queue.h"
#include "sf/redis.h"

#define SCHED_HOLDER_MAX 192
#define SCHED_INCARNATION_MAX 256
#define SCHED_CRON_GRACE_S 30    /* a firing at most this late is on time, not "missed" */
#define SCHED_CRON_BATCH 100     /* firings per schedule per tick ('all' catch-up) */
#define SCHED_CRON_SCHEDULES 200 /* due schedules handled per tick */
#define SCHED_RELAY_BATCHES 64   /* relay transactions per pass (ids per transaction: relay.c) */
#define SCHED_RELAY_PER_TENANT 32
#define SCHED_REAP_BATCH 500
#define SCHED_REAP_BATCHES 20
#define SCHED_RETENTION_BATCH 1000
#define SCHED_RETENTION_BATCHES 50

typedef struct sched_config {
    sf_common_config common;
    char *database_url;
    char *redis_url;
    char *name;  /* SCHEDULER_NAME; "" = hostname-pid */
    char *queue; /* QUEUE */
    int64_t leader_ttl_s;
    int64_t relay_max_ready;
    int64_t reaper_interval_ms;
    int64_t retention_days;
    int64_t retention_interval_s;
    int64_t retry_base_ms;
    int64_t retry_cap_ms;
    int64_t schedule_max_failures; /* SF_SCHEDULE_MAX_FAILURES; 0 = never disable */
    int64_t fleet_metrics_s;       /* FLEET_METRICS_SECONDS: the leader's fleet gauges */
    int64_t metrics_port;          /* METRICS_PORT: /metrics, /health, /ready; 0 = none */
    char *metrics_addr;            /* METRICS_ADDR */
    char *metrics_token;           /* METRICS_TOKEN: "" = /metrics open */
} sched_config;

/* The stop flag set by the signal thread, read by the others. */
typedef struct sched_stop {
    atomic_int requested;
} sched_stop;

typedef struct sched_leader {
    const sched_config *cfg;
    sf_log *log;
    atomic_int quit; /* set by sched_leader_stop */
    char holder[SCHED_HOLDER_MAX];
    atomic_llong active_until_ms; /* (atomic) monotonic ms; 0 = not leader */
    atomic_llong term;            /* (atomic) term of the current lease */
    pthread_t thread;
    int started;
} sched_leader;

/* leader.c */
sf_status sched_leader_start(sched_leader *l, const sched_config *cfg, sf_log *log, const char *holder, sf_err *err);
/* 1 while this process may act as leader; *term (may be NULL) gets the term. */
int sched_leader_active(sched_leader *l, int64_t *term);
/* Stop renewing, give the lease up (NOTIFY sf_leader) and join. */
void sched_leader_stop(sched_leader *l);

/* State of the duties thread. */
typedef struct sched_duties {
    const sched_config *cfg;
    sf_log *log;
    sched_leader *leader;
    const sched_stop *stop;
    sf_db *db;
    sf_redis *redis;
    sf_queue *queue;
    int64_t redis_retry_ms; /* monotonic: next reconnect attempt */
    int64_t redis_backoff_ms;
    char incarnation[SCHED_INCARNATION_MAX]; /* what this leader set; "" = none yet */
    int rebuild_needed;
    int relay_more;      /* the last relay pass left work (Redis full, or its batch cap) */
    uint64_t relay_turn; /* rotation of the tenants' order, one step per relay batch */
    int was_active;
    int64_t next_tick_ms, next_reap_ms, next_retention_ms, next_fleet_ms;
    sf_metrics *metrics;   /* metrics.c; NULL when METRICS_PORT is 0 (set before start) */
    uint64_t fleet_passes; /* fleet gauge passes (the finished counts every tenth) */
    sf_job_retry retry;
    pthread_t thread;
    int started;
} sched_duties;

/* duties.c; metrics may be NULL */
sf_status sched_duties_start(sched_duties *d, const sched_config *cfg, sf_log *log, sched_leader *leader,
                             const sched_stop *stop, sf_metrics *metrics, sf_err *err);
void sched_duties_join(sched_duties *d);
/* Redis failed with SF_ERR_UNAVAILABLE: drop the connection, retry later. */
void sched_duties_redis_down(sched_duties *d, const sf_err *err);

/* cronfire.c: fire due schedules; counts for the log line (disabled: schedules
 * disabled for an invalid cron text or for SF_SCHEDULE_MAX_FAILURES
 * consecutive failed executions, the reason in schedules.disabled_reason). */
typedef struct sched_cron_stats {
    int64_t schedules, fired, skipped, duplicates, disabled;
} sched_cron_stats;
sf_status sched_cron_pass(sched_duties *d, sched_cron_stats *stats, sf_err *err);

/* relay.c */
sf_status sched_relay_pass(sched_duties *d, int64_t *relayed, sf_err *err);
/* Rebuild Redis from PostgreSQL when the incarnation key is missing or not
 * ours: *jobs = queued jobs seen, *requeued = ids that were missing from Redis. */
sf_status sched_rebuild_check(sched_duties *d, int64_t *jobs, int64_t *requeued, int *rebuilt, sf_err *err);

/* reaper.c */
typedef struct sched_reap_stats {
    sf_job_reap_stats pg;
    int64_t redis_expired, redis_requeued, redis_dropped;
} sched_reap_stats;
sf_status sched_reap_pg(sched_duties *d, sched_reap_stats *stats, sf_err *err);
sf_status sched_reap_redis(sched_duties *d, sched_reap_stats *stats, sf_err *err);

/* retention.c */
typedef struct sched_retention_stats {
    int64_t jobs, batches, firings;
} sched_retention_stats;
sf_status sched_retention_pass(sched_duties *d, sched_retention_stats *stats, sf_err *err);

/* metrics.c: the scheduler's Prometheus series. */
enum {
    SCHED_METRIC_LEADER,      /* sf_leader */
    SCHED_METRIC_QUEUE_DEPTH, /* sf_queue_depth{priority} (leader only) */
    SCHED_METRIC_JOBS,        /* sf_jobs{status} (leader only) */
    SCHED_METRIC_WORKERS,     /* sf_workers_live (leader only) */
    SCHED_METRIC_RETRIES,     /* sf_job_retries_total (the reaper's) */
    SCHED_METRIC_COUNT
};
#define SCHED_METRIC_SERIES 64
sf_status sched_metrics_new(sf_metrics **out, sf_err *err);
/* Before a scrape (sf_opsd_opts.refresh, app = the sched_duties): sf_leader,
 * and no fleet series unless this replica leads. */
void sched_metrics_refresh(void *duties);
/* Remove the fleet series (no longer leading). Accepts NULL. */
void sched_metrics_drop_fleet(sf_metrics *m);
/* The leader's duties thread: recompute the fleet gauges (see metrics.c). */
sf_status sched_metrics_fleet(sched_duties *d, sf_err *err);
/* The reaper put retried jobs back to pending. */
void sched_metrics_reaped(sched_duties *d, int64_t retried);

#endif
