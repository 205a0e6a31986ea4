/*
 * detail: the trades and equity curves of sweep members (migration 0011).
 *
 * A sweep member stores a compact result: its metrics and its combination's
 * parameters, no trades and no curve (results.trades NULL). Its trades and
 * curve are computed again when they are wanted, by its detail job: a single
 * backtest (kind backtest, priority high, batch_id NULL) of the member's
 * logic, which is the batch's logic with the member's combination applied
 * (sf_grid_apply), over the member's data set and range, with
 * jobs.detail_of = the member. The engine is deterministic, so the detail's
 * result is what the member's run would have stored, bit for bit, as long as
 * the data set was not re-imported in between. A member has at most one
 * detail job (a unique index); its source says why it exists:
 *   "top"      sf-scheduler enqueued it when the sweep finished, for one of
 *              the batch's best batches.detail_top members by its rank_by
 *              (the leaderboard's order, sf/rank.h);
 *   "request"  sf-api enqueued it because the member's result was asked for.
 *
 * Functions run their own transaction. Failure: SF_ERR_UNAVAILABLE when the
 * database is unreachable, SF_ERR_DB when a statement is rejected,
 * SF_ERR_NOTFOUND when the member is not a sweep member, the grid or logic
 * errors of sf_grid_parse / sf_grid_apply (a batch that was validated at
 * submission does not give them).
 *
 * Thread safety: functions use only the sf_db given (one per thread).
 */
#ifndef SF_DETAIL_H
#define SF_DETAIL_H

#include <stddef.h>
#include <stdint.h>

#include "sf/db.h"
#include "sf/err.h"
#include "sf/job.h"

#define SF_DETAIL_TOP_DEFAULT 10 /* batches.detail_top when a sweep does not say */
#define SF_DETAIL_TOP_MAX 100

/* A member's detail job as sf_detail_request left it. */
typedef struct sf_detail {
    char id[SF_JOB_ID_MAX];         /* the detail job */
    char status[SF_JOB_STATUS_MAX]; /* its status ("pending" when just enqueued) */
    char source[16];                /* "top" or "request" */
    int created;                    /* 1 when this call enqueued it */
    char previous_error[256];       /* created in place of a failed, dead or cancelled
                                      * detail: that one's error; else "" */
} sf_detail;

/*
 * Make sure member_id (a sweep member) has a detail job that has not failed:
 * an existing one is kept (queued, running or succeeded); a failed, dead or
 * cancelled one is deleted and a new one enqueued (source "request",
 * NOTIFY sf_jobs). *out describes the detail job either way.
 */
sf_status sf_detail_request(sf_db *db, const char *member_id, sf_detail *out, sf_err *err);

typedef struct sf_detail_stats {
    int64_t batches; /* finished sweeps handled (details_at set) */
    int64_t details; /* detail jobs enqueued for their best members */
} sf_detail_stats;

/*
 * Sweeps that have finished (no member pending, queued or running) and
 * whose best members' details were not enqueued yet (batches.details_at
 * NULL), oldest first, up to limit of them, one transaction each: enqueue a
 * detail job (source "top") for each of the batch's best detail_top
 * succeeded members that has neither a detail job nor stored trades, and
 * set details_at. Stats are added to *stats.
 */
sf_status sf_detail_finished_batches(sf_db *db, size_t limit, sf_detail_stats *stats, sf_err *err);

#endif
