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
    "'logic_hash', logic_hash, 'logic_id', logic_id, 'dataset_version', dataset_version, 'rerun_of', rerun_of, "       \
    "'links', json_build_object('self', '/v1/jobs/' || id, 'result', '/v1/jobs/' || id || '/result'))"

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
/* Decode a cursor; SF_ERR_INVALID ("cursor: ...") when it is not one. */
sf_status sf_joblist_cursor_decode(const char *text, int64_t *created_us, char *id, size_t id_size, sf_err *err);

#endif
