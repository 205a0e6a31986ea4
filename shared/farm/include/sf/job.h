/*
 * job: THE one module that changes a job's state in PostgreSQL.
 *
 * States (jobs.status): pending -> queued -> running -> succeeded | failed |
 * dead | cancelled; running -> pending on a transient failure, an expired
 * lease or a graceful release. Every change goes through one transitions
 * table (event -> allowed from-states -> to-state) and one SQL builder, which
 * fences worker writes on the claim's token: a row changes only while
 * jobs.fence is the caller's fence AND status is still 'running', so a worker
 * presumed dead that finishes late writes nothing.
 *
 * Claim: status queued -> running, attempt + 1, a fresh fence from
 * job_fence_seq, lease_until = now() + lease, for a batch of ids in one
 * statement. Retry backoff (transient failure, reaped lease): d = min(cap,
 * base * 2^(attempt-1)) ms, run_at = now() + d/2 + random() * d/2 (equal
 * jitter, PostgreSQL's clock), or `dead` once attempt >= max_attempts. A job
 * whose cancel was requested ends `cancelled` instead of being retried, and
 * instead of succeeded or failed (its result is not stored).
 * Release (drain): back to pending with run_at = now() and attempt - 1.
 *
 * Functions that say "in the caller's transaction" do not BEGIN/COMMIT; the
 * others are one statement (atomic by themselves) or run their own
 * transaction. Failure: SF_ERR_UNAVAILABLE when the database is unreachable
 * (reconnect and retry: nothing was written), SF_ERR_DB when a statement is
 * rejected, SF_ERR_LIMIT for more than SF_JOB_BATCH_MAX ids, SF_ERR_INVALID
 * for a malformed id. "Nothing to claim" and "lease lost" are results.
 *
 * Thread safety: functions use only the sf_db given (one per thread).
 * Ownership: an sf_job filled by sf_job_claim owns logic and grid, freed by
 * sf_job_destroy; strings in an sf_job_done are borrowed for the call.
 */
#ifndef SF_JOB_H
#define SF_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "sf/db.h"
#include "sf/err.h"
#include "sf/queue.h"

#define SF_JOB_ID_MAX 40      /* uuid text (36) + NUL, with room */
#define SF_JOB_BATCH_MAX 1000 /* ids in one call */
#define SF_JOB_STATEMENT_BYTES                                                                                         \
    ((size_t)256 << 20) /* most result bytes (sf_job_done_bytes)
                                                    * one completion statement carries */
#define SF_JOB_SYMBOL_MAX 64
#define SF_JOB_TIMEFRAME_MAX 32
#define SF_JOB_KIND_MAX 32
#define SF_JOB_STATUS_MAX 16
#define SF_JOB_ERROR_MAX 2048 /* stored error text is cut to this many bytes */
#define SF_JOB_RETRY_BASE_MS_DEFAULT 1000
#define SF_JOB_RETRY_CAP_MS_DEFAULT 600000

/* Retry backoff parameters (RETRY_BASE_MS, RETRY_CAP_MS). NULL = defaults. */
typedef struct sf_job_retry {
    int64_t base_ms;
    int64_t cap_ms;
} sf_job_retry;

/* A claimed job: what a worker needs to run it. */
typedef struct sf_job {
    char id[SF_JOB_ID_MAX];
    char user_id[SF_JOB_ID_MAX];
    char batch_id[SF_JOB_ID_MAX]; /* "" unless a sweep member */
    char kind[SF_JOB_KIND_MAX];   /* "backtest", "logic_execution" */
    char symbol[SF_JOB_SYMBOL_MAX];
    char timeframe[SF_JOB_TIMEFRAME_MAX];
    int attempt; /* this attempt, 1-based */
    int max_attempts;
    int64_t fence;       /* the token every later write is fenced on */
    int64_t combo_index; /* -1 unless a sweep member */
    int64_t schedule_id; /* 0 when none */
    int has_from, has_to;
    int64_t from_ts, to_ts;  /* Unix seconds, inclusive, when has_* */
    int64_t dataset_version; /* the data set's version at the claim; 0 if it had none */
    char *logic;             /* the job's logic, or the batch's for a sweep member */
    size_t logic_len;
    char *grid; /* the batch's grid; NULL unless a sweep member */
    size_t grid_len;
    const char *bad;       /* non-NULL: the row cannot be run (e.g. "symbol too long"); fail it permanently */
    int optimistic;        /* 1: read, not claimed (a tiny sweep member's first
                                       * attempt, see sf_job_claim): the row is still queued,
                                       * fence is 0, attempt is 1; complete it with
                                       * sf_job_done.optimistic and started_us */
    int64_t started_us;    /* optimistic: PostgreSQL's now() at the read, Unix us */
    int64_t queue_wait_us; /* from queued_at (the relay) to this claim or read, PostgreSQL's
                            * clock; -1 when unknown */
    int blocks;            /* a sweep member: its batch's S for the block statistics
                            * (batches.blocks, sf/overfit.h); 0 otherwise */
} sf_job;

void sf_job_destroy(sf_job *job); /* frees logic and grid; accepts NULL */

/*
 * Claim ids (status queued, cancel not requested) for worker: one statement
 * for all of them. out must hold n jobs; *n_out receives how many were
 * claimed, in any order. Ids not claimed (duplicates, cancelled, already
 * taken) are simply absent: drop their Redis leases.
 *
 * Members of tiny_batches (n_tiny batch ids: sweeps whose members this
 * worker has seen run in less time than a claim costs) on their first
 * attempt are read, not claimed (out[i].optimistic): no row is written until
 * the completion, which commits only while the row is still queued at
 * attempt 0 and not cancelled, and sets running's columns (attempt 1, a
 * fresh fence, worker, started_at) with the outcome's. A second reader of the
 * same id (a duplicate Redis entry), a cancel or a claim in between makes
 * that completion write nothing, as a stale fence does. Every other row is
 * claimed: status running, attempt + 1, a fresh fence, the lease.
 */
sf_status sf_job_claim(sf_db *db, const char *const *ids, size_t n, const char *worker, int64_t lease_ms,
                       const char *const *tiny_batches, size_t n_tiny, sf_job *out, size_t *n_out, sf_err *err);

/* One lease to renew. alive / cancel_requested are filled by the call. */
typedef struct sf_job_lease {
    char id[SF_JOB_ID_MAX];
    int64_t fence;
    int alive;            /* out: 0 = the lease is lost, abandon the job */
    int cancel_requested; /* out: stop the engine, complete as cancelled */
} sf_job_lease;

/* Renew leases (fenced, status running) to now() + lease_ms: one statement. */
sf_status sf_job_heartbeat(sf_db *db, sf_job_lease *leases, size_t n, int64_t lease_ms, sf_err *err);

typedef enum sf_job_outcome {
    SF_JOB_SUCCEEDED, /* results row written, status succeeded */
    SF_JOB_FAILED,    /* permanent error: failed at once */
    SF_JOB_TRANSIENT, /* retry with backoff, or dead at max_attempts */
    SF_JOB_CANCELLED, /* stopped on a cancel request */
    SF_JOB_RELEASED,  /* drain: back to pending now, attempt not spent */
    SF_JOB_OUTCOMES
} sf_job_outcome;

/* The live signal of a succeeded logic execution (see sf_job_done.signal). */
typedef struct sf_job_signal {
    int64_t bar_time;   /* Unix seconds of the bar the decision was taken on */
    const char *signal; /* borrowed: "enter", "exit", "hold" or "flat" */
    int side;           /* +1 long, -1 short, 0 none */
} sf_job_signal;

/* One finished attempt. */
typedef struct sf_job_done {
    char id[SF_JOB_ID_MAX];
    int64_t fence;
    sf_job_outcome outcome;
    const char *error;       /* borrowed; NULL = none (cut to SF_JOB_ERROR_MAX) */
    const char *metrics;     /* borrowed JSON text; SF_JOB_SUCCEEDED only */
    const char *trades;      /* stored as json (text), metrics as jsonb */
    const char *equity;      /* [{"time", "equity"}] or the column form {"t": [...], "v": [...]}
                            * as JSON text, stored in results.equity; read back through
                            * sf_equity_points() (migrations 0004, 0006). The worker sends
                            * equity_t/equity_v instead */
    const char *result;      /* borrowed: the whole {"metrics","trades","equity"} document
                            * (sf_result_to_json); fills whichever of the three is NULL */
    const char *params;      /* borrowed JSON text: a sweep member's combination
                            * ({"path": value, ...}, sf_grid_params_json), stored in
                            * results.params. With params and no trades, equity or result,
                            * the row is compact (migration 0011): trades and the curve stay
                            * NULL instead of []. NULL = none */
    const int64_t *equity_t; /* borrowed: the equity curve as arrays, the farm's storage form
                              * (results.equity_t and equity_v, migration 0006): Unix
                              * seconds and values, equity_n of each; when set, equity and
                              * result's equity are ignored. Sent in binary. */
    const double *equity_v;
    size_t equity_n;
    const uint8_t *blocks; /* borrowed: a sweep member's block statistics (sf_blocks_pack),
                            * stored in results.blocks (migration 0013); NULL = none */
    size_t blocks_len;
    int applied;                    /* out: 1 = the fenced write took effect */
    char status[SF_JOB_STATUS_MAX]; /* out: the job's new status when applied */
    const sf_job_signal *signal;    /* borrowed; SF_JOB_SUCCEEDED only: record a signals row
                                  * (schedule_id and symbol from the job) instead of a
                                  * results row, in the same transaction; its webhook is
                                  * marked pending (webhook_due_at = now()) when the
                                  * job's schedule has a webhook_url. NULL = none */
    int optimistic;                 /* the job was read optimistically (sf_job.optimistic): the
                            * write commits only while the row is queued at attempt 0;
                            * fence is ignored. SF_JOB_RELEASED and SF_JOB_CANCELLED
                            * put the row back to pending with the attempt unspent */
    int64_t started_us;             /* optimistic: sf_job.started_us, stored as started_at */
    const char *worker;             /* optimistic: the worker's name, stored as worker (borrowed) */
} sf_job_done;

/*
 * Record finished attempts in ONE transaction (a single statement when all
 * share one outcome and are all optimistic or all claimed, and their bytes
 * fit in one), each fenced on its fence and status 'running' (optimistic
 * ones: status 'queued' at attempt 0, not cancelled); a succeeded job gets
 * its results row (or, with a signal, its signals row) in the same
 * transaction. A cancel always wins: a claimed job whose cancel_requested is
 * set ends `cancelled` whatever the outcome given (status "cancelled", no
 * results or signals row); an optimistic one then changes nothing. Rows that do not match (a stale fence: the late worker)
 * change nothing and have applied = 0. Rows whose results together exceed
 * SF_JOB_STATEMENT_BYTES are sent in several statements of the transaction;
 * a single row above it fails the call with SF_ERR_LIMIT, naming the job and
 * the limit, before anything is sent.
 */
sf_status sf_job_complete(sf_db *db, sf_job_done *done, size_t n, const sf_job_retry *retry, sf_err *err);

/* The bytes of done's data a completion sends: its texts (error, metrics,
 * trades, equity, result, params) and equity arrays (16 bytes a point). */
size_t sf_job_done_bytes(const sf_job_done *done);

typedef enum sf_job_cancel_result {
    SF_JOB_CANCEL_NOT_FOUND, /* no such job (for this user) */
    SF_JOB_CANCEL_DONE,      /* was pending/queued: now cancelled */
    SF_JOB_CANCEL_REQUESTED, /* running: cancel_requested set; PUBLISH its id */
    SF_JOB_CANCEL_FINAL,     /* already finished: nothing changed */
} sf_job_cancel_result;

/*
 * Cancel one job; user_id NULL = any owner. One statement. When the job was
 * queued and entry is not NULL, entry is filled (id, tenant, score) for a
 * best-effort sf_queue_remove; otherwise entry->id is "".
 */
sf_status sf_job_cancel(sf_db *db, const char *job_id, const char *user_id, sf_job_cancel_result *result,
                        sf_queue_entry *entry, sf_err *err);

/* Cancel a batch (sweep): batches.cancel_requested, pending/queued members ->
 * cancelled, running members -> cancel_requested; one transaction. *found = 0
 * when the batch does not exist (for this user). Counts may be NULL. */
sf_status sf_job_cancel_batch(sf_db *db, const char *batch_id, const char *user_id, int *found, int64_t *cancelled,
                              int64_t *requested, sf_err *err);

/*
 * Relay in ONE transaction of its own (a selection without row locks, then
 * one guarded UPDATE of the selected ids): pending rows with run_at <=
 * now(), selected fairly (round robin across tenants: every tenant's first
 * job, then every tenant's second, ...; priority then age within a tenant;
 * at most max(per_tenant, limit / tenants) per tenant), become queued; those
 * the UPDATE changed (a row a concurrent relay or cancel took first is
 * skipped), up to limit (<= SF_JOB_BATCH_MAX), are returned as queue entries
 * for sf_queue_enqueue, to be added AFTER this commit. out must hold limit.
 * rotation turns the tenants' order within a round: pass a counter that
 * grows by one each call, so a small limit serves every tenant in turn.
 */
sf_status sf_job_relay_pending(sf_db *db, size_t per_tenant, size_t limit, uint64_t rotation, sf_queue_entry *out,
                               size_t *n, sf_err *err);

/* Rebuild: queued jobs with id > after_id ("" = from the start), by id, up to
 * limit, as queue entries. Page with the last id returned. */
sf_status sf_job_list_queued(sf_db *db, const char *after_id, size_t limit, sf_queue_entry *out, size_t *n,
                             sf_err *err);

/* Expired Redis leases of ids: those still queued (a worker leased them in
 * Redis and stopped before its PostgreSQL claim, or read them optimistically
 * and stopped before completing) as queue entries for sf_queue_requeue; out
 * must hold n. A sweep member still at attempt 0 spends one attempt first
 * (error_class lease), since an optimistic run leaves no other trace: a
 * member that kills its worker goes dead after max_attempts like any other
 * job, and its next claim is a real one (attempt > 0). */
sf_status sf_job_lease_expired(sf_db *db, const char *const *ids, size_t n, sf_queue_entry *out, size_t *n_out,
                               sf_err *err);

typedef struct sf_job_reap_stats {
    int64_t retried;   /* -> pending with backoff */
    int64_t dead;      /* attempts exhausted */
    int64_t cancelled; /* cancel had been requested */
} sf_job_reap_stats;

/* Running rows whose lease_until < now(): up to limit of them (FOR UPDATE SKIP
 * LOCKED, one statement) -> pending with backoff, dead, or cancelled. */
sf_status sf_job_reap(sf_db *db, size_t limit, const sf_job_retry *retry, sf_job_reap_stats *stats, sf_err *err);

/* The transitions table: 1 when some event moves a job from `from` to `to`
 * (status names). */
int sf_job_transition_allowed(const char *from, const char *to);

/* "succeeded", "failed", ... for an outcome (the event names of the table). */
const char *sf_job_outcome_name(sf_job_outcome outcome);

#endif
