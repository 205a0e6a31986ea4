/*
 * worker: the sf-worker program's private modules.
 *
 * Threads (all named, each with its own PostgreSQL and Redis connections):
 *   claimer    waits on the wake list, claims for every idle slot at once
 *              (one Lua call + one PostgreSQL UPDATE), hands jobs to slots;
 *   runner N   runs the job of slot N with the engine, queues the outcome;
 *   completer  commits queued outcomes in batches bounded by count and by
 *              bytes (SF_COMPLETION_BATCH_MB; one fenced transaction), then
 *              drops their Redis leases in one command, logs each job;
 *   heartbeat  every lease/3 renews the lease of every job the worker holds:
 *              assigned, running, its outcome waiting or being committed
 *              (one statement + one script per SF_JOB_BATCH_MAX of them);
 *              marks lost leases and cancel requests on the slots (the
 *              fallback of cancels);
 *   cancels    SUBSCRIBEd to the cancel channel on its own Redis connection:
 *              sets the cancel flag of the slot holding a job whose cancel
 *              was published, at once (cancels.c);
 *   webhook    after commits of signals (and every few seconds) claims due
 *              webhook deliveries from the signals table, POSTs them signed,
 *              records the outcome.
 * main.c: config, signals (one sigwait thread), start, drain, stop.
 *
 * Backpressure: the claimer claims only while the outcomes not yet committed
 * (waiting or being committed) stay under SF_OUTCOME_BUDGET_MB and, with the
 * jobs running, under SF_OUTCOME_BUDGET_JOBS; an outcome whose stored data
 * would exceed SF_RESULT_MAX_MB fails permanently instead of waiting.
 *
 * Shared state: struct wrk. Lock order: wrk.mu only (the cache has its own
 * mutex and never calls back). Every condition wait sits in a while loop.
 */
#ifndef WRK_WORKER_H
#define WRK_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sf/config.h"
#include "sf/db.h"
#include "sf/engine.h"
#include "sf/job.h"
#include "sf/log.h"
#include "sf/metrics.h"
#include "sf/netpolicy.h"
#include "sf/queue.h"
#include "sf/redis.h"

#include "cache.h"
#include "gridcache.h"

#define WRK_THREADS_MAX 256
#define WRK_NAME_MAX 128

typedef struct wrk_config {
    sf_common_config common;
    char *database_url;
    char *redis_url;
    int64_t threads;
    char *name;
    int64_t lease_seconds;
    int64_t drain_seconds;     /* SF_DRAIN_SECONDS, or the old name DRAIN_SECONDS */
    int64_t drain_seconds_old; /* DRAIN_SECONDS; -1 = not set */
    int64_t cache_mb;
    char *queue;
    int64_t runner_nice;        /* SF_RUNNER_NICE: niceness of the runner threads */
    int64_t equity_points;      /* SF_EQUITY_POINTS: stored equity points; 0 = all */
    int64_t optimistic_us;      /* SF_OPTIMISTIC_US: tiny sweep members are read optimistically */
    int64_t webhook_timeout_ms; /* per attempt */
    int64_t webhook_attempts;
    int64_t webhook_backoff_ms;  /* before the 2nd attempt, doubling */
    char *webhook_allow_cidrs;   /* SF_WEBHOOK_ALLOW_CIDRS: non-public addresses webhooks may reach */
    sf_netpolicy webhook_policy; /* parsed from it when the configuration is checked */
    int64_t outcome_budget_mb;   /* SF_OUTCOME_BUDGET_MB: claim only while uncommitted outcomes hold less */
    int64_t outcome_budget_jobs; /* SF_OUTCOME_BUDGET_JOBS: ... and they and the running jobs are fewer */
    int64_t completion_batch_mb; /* SF_COMPLETION_BATCH_MB: most outcome bytes in one completion */
    int64_t result_max_mb;       /* SF_RESULT_MAX_MB: a bigger result fails permanently */
    int64_t run_max_mb;          /* SF_RUN_MAX_MB: a run whose working set is bigger fails permanently */
    int64_t job_timeout_s;       /* SF_JOB_TIMEOUT_S: a run that takes longer fails permanently; 0 = none */
    int64_t metrics_port;        /* METRICS_PORT: /metrics, /health, /ready; 0 = no listener */
    char *metrics_addr;          /* METRICS_ADDR: the listener's address */
    char *metrics_token;         /* METRICS_TOKEN: "" = /metrics open */
} wrk_config;

typedef enum wrk_slot_state { SLOT_IDLE, SLOT_ASSIGNED, SLOT_RUNNING } wrk_slot_state;

struct wrk;

typedef struct wrk_slot {
    struct wrk *w;
    int index;
    pthread_t thread;
    pthread_cond_t cv; /* with wrk.mu: wakes this slot's runner thread to start the
                            * assigned jobs (its own first, then others nobody started:
                            * a thread may run another slot's job), or stopping changed */
    /* guarded by wrk.mu */
    wrk_slot_state state;
    sf_job job;  /* valid unless SLOT_IDLE */
    int lost;    /* heartbeat: lease lost, abandon the result */
    int release; /* drain: cancelled to be released, not cancelled */
    /* read by the engine without the lock */
    atomic_int cancel;
} wrk_slot;

/* Run time of one sweep's members on this worker: the claimer reads the
 * members of tiny sweeps optimistically (sf_job_claim, threads.c). */
#define WRK_BATCH_STATS 8
typedef struct wrk_batch_stat {
    char id[SF_JOB_ID_MAX]; /* "" = unused */
    int64_t run_ns_avg;     /* moving average of a member's run time */
    int64_t runs;           /* members finished here */
    uint64_t used;          /* wrk.batch_clock at the last update (least recent is replaced) */
} wrk_batch_stat;

/* A finished attempt waiting for the completer (owns its strings). */
typedef struct wrk_done {
    struct wrk_done *next;
    sf_job_done d;
    char *error;       /* d.error points here */
    char *result;      /* d.metrics and d.trades point into it */
    sf_result *engine; /* the engine's result: d.equity_t and d.equity_v point into it */
    sf_job_signal sig; /* d.signal points here for a logic execution */
    int attempt;
    int64_t duration_ms;
    int64_t run_ns;             /* the run's time (metrics.c) */
    char kind[SF_JOB_KIND_MAX]; /* the job's kind (metrics label) */
    int64_t schedule_id;        /* a logic execution's schedule; 0 = none */
    size_t bytes;               /* memory it holds (wrk_outcome_measure), counted in wrk.held_bytes */
} wrk_done;

typedef struct wrk {
    const wrk_config *cfg;
    char name[WRK_NAME_MAX];
    sf_log *log;
    sf_metrics *metrics; /* metrics.c; NULL when METRICS_PORT is 0 */
    wrk_cache *cache;
    wrk_gridcache *grids; /* parsed sweep grids by batch id */
    int64_t lease_ms;

    pthread_mutex_t mu;
    pthread_cond_t idle_cv; /* a slot became idle */
    pthread_cond_t done_cv; /* outcomes queued, or runners finished */
    pthread_cond_t tick_cv; /* heartbeat sleep; broadcast at shutdown */
    pthread_cond_t hook_cv; /* signals with a webhook were committed, or hook_stop */
    /* guarded by mu */
    int stopping;                    /* SIGTERM: claim no more */
    int runners_done;                /* every runner has returned */
    int background_stop;             /* completer and heartbeat may end */
    wrk_done *done_head, *done_tail; /* outcomes waiting for the completer */
    size_t done_count;
    wrk_done *commit_head; /* the batch the completer is committing (a list), or NULL */
    size_t held_count;     /* outcomes not yet committed: waiting and being committed */
    size_t held_bytes;     /* their wrk_done.bytes */
    size_t held_count_peak, held_bytes_peak;
    int64_t budget_pauses; /* times the claimer stopped for the outcome budget */
    int64_t run_ns_avg;    /* moving average of a job's run time (assign() wakes fewer runners for tiny jobs) */
    wrk_batch_stat batch_stats[WRK_BATCH_STATS]; /* the sweeps run most recently */
    uint64_t batch_clock;
    int hook_hint; /* the completer committed signals: look for due webhooks */
    int hook_stop; /* the webhook thread: one last pass, then return */

    atomic_int claim_stop; /* set with stopping; read without the lock */

    int n_slots;
    wrk_slot *slots;
    pthread_t claimer, completer, heartbeat, webhook, cancels;
} wrk;

/* worker.c: start every thread (after signals are blocked); stop them. */
int wrk_start(wrk *w, sf_err *err);
/* Drain: stop claiming, wait up to drain_seconds, release the rest, flush,
 * join every thread. */
void wrk_drain_and_stop(wrk *w);

/* threads.c: an outcome on its way to the completer. measure (unlocked)
 * sets d->bytes, and turns an outcome whose data exceed SF_RESULT_MAX_MB into
 * a permanent failure that names the limit (its data freed); queue (with
 * wrk.mu held) appends it to the done list and counts it against the budget. */
void wrk_outcome_measure(wrk *w, wrk_done *d);
void wrk_outcome_queue(wrk *w, wrk_done *d);

/* Threads. */
void *wrk_claimer_main(void *arg);
void *wrk_runner_main(void *arg);
void *wrk_completer_main(void *arg);
void *wrk_heartbeat_main(void *arg);
/* webhook.c: delivers the webhooks of committed signals (the signals table is
 * the outbox: any worker delivers due rows, at least once). */
void *wrk_webhook_main(void *arg);
/* cancels.c: hears the cancel channel, flags the slots (until background_stop). */
void *wrk_cancels_main(void *arg);

/* metrics.c: the worker's Prometheus series (WRK_METRIC_*) and readiness. */
enum {
    WRK_METRIC_DURATION,  /* backtest_duration_seconds{kind} */
    WRK_METRIC_LOGIC,     /* logic_executions_total{logic_id,status} */
    WRK_METRIC_COMPLETED, /* sf_jobs_completed_total{kind,status} */
    WRK_METRIC_RETRIES,   /* sf_job_retries_total */
    WRK_METRIC_WAIT,      /* sf_job_queue_wait_seconds */
    WRK_METRIC_RUNNING,   /* sf_jobs_running */
    WRK_METRIC_THREADS,   /* sf_worker_threads{state} */
    WRK_METRIC_COUNT
};
#define WRK_METRIC_SERIES 2048 /* logic_id series past this count as logic_id="other" */
/* A registry with every known series at zero. */
sf_status wrk_metrics_new(sf_metrics **out, sf_err *err);
/* The claimer handed job to a slot: its queue wait. */
void wrk_metrics_started(wrk *w, const sf_job *job);
/* The completer wrote item's outcome; done: that write (applied, status). */
void wrk_metrics_finished(wrk *w, const wrk_done *item, const sf_job_done *done);
/* Before a scrape: the gauges from the slots (sf_opsd_opts.refresh). */
void wrk_metrics_refresh(void *w);
/* Ready unless draining (sf_opsd_opts.ready). */
int wrk_ready(void *w, char *reason, size_t size);

/* Connections for a thread that must not give up while the program runs:
 * retry with backoff until it works, or until give_up is set (NULL: until the
 * background threads are told to stop); NULL / 0 then. An outage is logged
 * once per episode. */
sf_db *wrk_db_connect(wrk *w, const char *who, const atomic_int *give_up);
sf_redis *wrk_redis_connect(wrk *w, const char *who, const atomic_int *give_up);
/* After SF_ERR_UNAVAILABLE: reconnect with backoff; 1 when reconnected. */
int wrk_db_recover(wrk *w, sf_db *db, const char *who, const sf_err *why, const atomic_int *give_up);
int wrk_redis_recover(wrk *w, sf_redis *r, const char *who, const sf_err *why, const atomic_int *give_up);
int wrk_is_stopping(wrk *w, const atomic_int *give_up);
void wrk_sleep_ms(int64_t ms);
void wrk_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

/* run.c: run one claimed job; fills the outcome. */
/* Run slot's job; sweep is the calling thread's cursor of the batch it ran
 * last (reused by that batch's next member, replaced for another batch;
 * the thread frees it with the cursor's owner, run.c). */
struct wrk_sweep;
void wrk_run_job(wrk *w, wrk_slot *slot, struct wrk_sweep **sweep, sf_db *db, wrk_done *out);

#endif
