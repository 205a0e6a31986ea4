/*
 * sf-api: the lists and reruns of issue 13 (lists.c, reruns.c), and the
 * submission entry points they share with POST /v1/backtests (submit.c) and
 * POST /v1/sweeps (sweeps.c).
 *
 * A rerun is a submission: its body is built from the original's stored
 * identity (the logic, symbol, timeframe, range, priority, attempts; a
 * sweep's grid, rank_by and detail_top) and goes through the very functions
 * of the submit routes (validation, data set and range checks, run size,
 * sweep slots, the INSERT and NOTIFY in one transaction, the relay), with an
 * api_origin saying what it re-runs.
 */
#ifndef API_LISTS_H
#define API_LISTS_H

#include "api.h"
#include "sf/joblist.h"

/* What a submission re-runs; all zero for a new one. */
typedef struct api_origin {
    const char *rerun_of;    /* the job (batch) re-run, stored as rerun_of; NULL = none */
    const char *logic_id;    /* the stored logic it was submitted by; NULL = none */
    int64_t logic_version;   /* > 0: that logic's version (stored with the job) */
    int64_t dataset_version; /* > 0: refuse (409 dataset_changed) unless the data set is still at it */
    const char *members_of;  /* a batch rerun: the old batch whose members ... */
    const char *statuses;    /* ... in these statuses ("{failed,dead}") are re-run (their combo_index) */
    int64_t total;           /* how many of them there were when counted */
} api_origin;

/* POST /v1/backtests with a parsed body (keys already checked); answers. */
void api_backtest_submit_body(api_app *app, sf_httpd_req *req, const sf_auth_user *user, json_t *body,
                              const api_origin *origin);

/* POST /v1/sweeps with a parsed body (keys already checked); answers. */
void api_sweep_submit_body(api_app *app, sf_httpd_req *req, const sf_auth_user *user, json_t *body,
                           const api_origin *origin);

/* 409 dataset_changed when origin pins a data-set version c no longer has;
 * returns 0 then. */
int api_dataset_pinned(sf_httpd_req *req, const api_submit_common *c, const api_origin *origin);

/* Filters as given (query parameters, or a rerun's JSON fields); NULL = absent. */
typedef struct api_filter_in {
    const char *status[SF_JOBLIST_STATUSES];
    size_t n_status;
    const char *kind, *batch, *logic, *symbol, *since, *until;
} api_filter_in;

/* The checked filter, for sf/joblist.h. */
typedef struct api_filter {
    sf_joblist_filter f;
    char logic[65]; /* the logic hash (lower case) */
} api_filter;

/* Check in and fill out for user (limit SF_JOBLIST_LIMIT_DEFAULT, no
 * cursor): a status or kind that is not one (400 naming the allowed
 * values), a bad symbol, time (ISO-8601) or logic (a hash of 64 hex digits,
 * or the id of one of the user's stored logics, which stands for its body's
 * hash) is 400; a batch that is not the user's is 404. Answers and returns
 * 0 on failure. */
int api_filter_parse(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const api_filter_in *in,
                     api_filter *out);

/* ?limit= and ?cursor= into f (limit 1 .. 500, 50 when absent); answers
 * 400 and returns 0 when bad. */
int api_page_args(sf_httpd_req *req, sf_joblist_filter *f);

/* Run a page's statement q (columns: the item's JSON text, created_at in
 * Unix microseconds, id; at most f->limit + 1 rows) and answer {"items",
 * "next_cursor"}. */
void api_reply_page(api_app *app, sf_httpd_req *req, const sf_joblist_filter *f, const sf_joblist_query *q);

/* handlers */
void api_jobs_list(sf_httpd_req *req, void *app);
void api_batches_list(sf_httpd_req *req, void *app);
void api_job_rerun(sf_httpd_req *req, void *app);
void api_batch_rerun(sf_httpd_req *req, void *app);
void api_reruns(sf_httpd_req *req, void *app);

#endif
