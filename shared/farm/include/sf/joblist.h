/*
 * joblist: the keyset pages of a user's jobs and batches (GET /v1/jobs, GET
 * /v1/batches), the bounded count and the selection of a rerun filter, as
 * SQL text and parameters. Built here, not in sf-api, so that the tests
 * EXPLAIN exactly the statement the API runs (migration 0012 has the
 * indexes behind every filter).
 *
 * Order: newest first by (created_at, id). A page asks for limit + 1 rows
 * (the last one only tells there is a next page); the next page starts after
 * the last row shown, by a row comparison on the index's own columns: no
 * OFFSET, no count of the table. Every statement is led by user_id = $1, so
 * another user's rows are never read. Without batch_id, jobs of sweeps
 * (members) are left out: they are listed with their batch. With batch_id
 * and no single status, the page merges the batch's seven status ranges of
 * jobs_batch (each range already in order, at most limit + 1 rows each).
 *
 * Values travel as parameters only; the statuses and kinds that are spliced
 * (the merge's status literals) come from this module's fixed table. The
 * caller validates filters with the checks below before building.
 *
 * Cursor: the unpadded base64url text of "<created_at in Unix microseconds>.
 * <id>", opaque to clients; sf_joblist_cursor_decode refuses anything else.
 *
 * Thread safety: pure functions on caller storage.
 */
#ifndef SF_JOBLIST_H
#define SF_JOBLIST_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define SF_JOBLIST_LIMIT_DEFAULT 50
#define SF_JOBLIST_LIMIT_MAX 500
#define SF_JOBLIST_CURSOR_MAX 128 /* bytes of a cursor's text, NUL included */
#define SF_JOBLIST_STATUSES 7
#define SF_JOBLIST_STATUS_LIST "pending, queued, running, succeeded, failed, dead, cancelled"
#define SF_JOBLIST_KIND_LIST "backtest, logic_execution"
#define SF_JOBLIST_PARAMS_MAX 16

/* A job as GET /v1/jobs/{id} and the list show it (a json expression over
 * the columns of jobs, unqualified). */
#define SF_JOBLIST_JOB_JSON                                                                                            \
    "json_build_object('id', id, 'kind', kind, 'status', status, 'priority', "                                         \
    "CASE priority WHEN 0 THEN 'high' WHEN 1 THEN 'normal' ELSE 'low' END, "                                           \
    "'symbol', symbol, 'timeframe', timeframe, 'from', from_ts, 'to', to_ts, "                                         \
    "'batch_id', batch_id, 'combo_index', combo_index, 'detail_of', detail_of, 'attempt', attempt, "                   \
    "'max_attempts', max_attempts, 'worker', worker, 'error', error, 'error_class', error_class, "                     \
    "'cancel_requested', cancel_requested, 'created_at', created_at, 'queued_at', queued_at, "                         \
    "'started_at', started_at, 'finished_at', finished_at, 'run_at', run_at, "                                         \
    "'logic_hash', logic_hash, 'logic_id', logic_id, 'logic_version', logic_version, "                                 \
    "'schedule_id', schedule_id, 'dataset_version', dataset_version, 'rerun_of', rerun_of, "                           \
    "'links', json_build_object('self', '/v1/jobs/' || id, 'result', '/v1/jobs/' || id || '/result'))"

/* A schedule as the API shows it (over the columns of schedules; never its
 * webhook_secret, only whether it has one). */
#define SF_JOBLIST_SCHEDULE_JSON                                                                                       \
    "json_build_object('id', id, 'name', name, 'cron', cron, 'logic_id', logic_id, 'logic_version', logic_version, "   \
    "'symbol', symbol, 'timeframe', timeframe, 'catch_up', catch_up, 'enabled', enabled, "                             \
    "'disabled_reason', disabled_reason, 'disabled_at', disabled_at, 'next_fire', next_fire, "                         \
    "'webhook_url', webhook_url, 'webhook_signed', webhook_secret IS NOT NULL, 'created_at', created_at, "             \
    "'links', json_build_object('self', '/v1/schedules/' || id, 'signals', '/v1/schedules/' || id || '/signals'))"

/* A signal (a logic execution's outcome) as the API shows it (over the
 * columns of signals, unqualified). */
#define SF_JOBLIST_SIGNAL_JSON                                                                                         \
    "json_build_object('job_id', job_id, 'schedule_id', schedule_id, 'symbol', symbol, 'bar_time', bar_time, "         \
    "'signal', signal, 'side', side, 'created_at', created_at, 'webhook', "                                            \
    "CASE WHEN webhook_status IS NOT NULL THEN json_build_object('status', webhook_status, "                           \
    "'attempts', webhook_attempts, 'http_status', webhook_http_status, 'error', webhook_error, "                       \
    "'done_at', webhook_done_at) END)"

typedef struct sf_joblist_filter {
    const char *user_id;                     /* required */
    const char *status[SF_JOBLIST_STATUSES]; /* validated names; n_status of them (0 = any) */
    size_t n_status;
    const char *kind;       /* "backtest" | "logic_execution" | NULL */
    const char *batch_id;   /* a batch's members; NULL = jobs outside sweeps */
    const char *logic_hash; /* 64 lower-case hex digits | NULL */
    const char *symbol;     /* NULL = any */
    int has_since, has_until;
    int64_t since_s, until_s; /* created_at >= since, created_at < until (Unix seconds) */
    int has_cursor;
    int64_t cursor_us;  /* the last row shown: created_at (Unix microseconds) ... */
    char cursor_id[40]; /* ... and id */
    int limit;          /* rows on a page, 1 .. SF_JOBLIST_LIMIT_MAX */
} sf_joblist_filter;

typedef struct sf_joblist_query {
    char sql[8192];
    const char *params[SF_JOBLIST_PARAMS_MAX];
    int nparams;
    char store[SF_JOBLIST_PARAMS_MAX][128]; /* texts of the derived parameters */
} sf_joblist_query;

/* One page of jobs: columns 0 the job's JSON text (SF_JOBLIST_JOB_JSON), 1
 * created_at in Unix microseconds, 2 the id; at most limit + 1 rows.
 * SF_ERR_INVALID for a filter that breaks the contract above. */
sf_status sf_joblist_jobs(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

/* One page of batches (filters: since, until, cursor; the others must be
 * unset): columns as sf_joblist_jobs. */
sf_status sf_joblist_batches(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

/* One page of the user's stored logics that are not deleted (filters:
 * cursor, limit; the others must be unset), columns as sf_joblist_jobs: the
 * current version's id, name, version, logic_hash and times, no body. */
sf_status sf_joblist_logics(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

/* One page of the user's schedules (cursor, limit), columns as above; no
 * webhook secret, ever. The cursor's id is the schedule's number. */
sf_status sf_joblist_schedules(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

/* One page of the signals of schedule schedule_id (decimal text; the caller
 * checked it is the user's), newest first by (created_at, job_id). */
sf_status sf_joblist_signals(const sf_joblist_filter *f, const char *schedule_id, sf_joblist_query *q, sf_err *err);

/* How many jobs match (cursor and limit ignored), counting at most max + 1:
 * one row, one column. A filter that matches more than max answers max + 1
 * after reading max + 1 index entries, whatever the table's size. */
sf_status sf_joblist_count(const sf_joblist_filter *f, int64_t max, sf_joblist_query *q, sf_err *err);

/* The ids of the matching jobs, all of them (cursor and limit ignored):
 * "SELECT id FROM jobs WHERE ...", to nest in a statement of the caller's
 * (the parameters are $1 .. $nparams). */
sf_status sf_joblist_ids(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

/* Checks of filter values (1 = valid). */
int sf_joblist_status_valid(const char *s);
int sf_joblist_kind_valid(const char *s);
int sf_joblist_logic_hash_valid(const char *s); /* 64 hex digits, lower case */

/* The opaque cursor of a row; out holds SF_JOBLIST_CURSOR_MAX. */
void sf_joblist_cursor_encode(int64_t created_us, const char *id, char *out, size_t size);
/* Decode a cursor; SF_ERR_INVALID ("cursor: ...") when it is not one. Its id
 * is a UUID or, for a list keyed by a number (schedules), 1 to 18 digits; a
 * list checks which it wants. */
sf_status sf_joblist_cursor_decode(const char *text, int64_t *created_us, char *id, size_t id_size, sf_err *err);

#endif
