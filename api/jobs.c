/*
 * sf-api: GET /v1/jobs/{id}, GET /v1/jobs/{id}/result, POST /v1/jobs/{id}/cancel.
 *
 * A user sees only their own jobs: every query is filtered on user_id, so
 * another user's job is 404 exactly like a missing one. PostgreSQL builds the
 * JSON of the read routes (timestamps ISO-8601 in UTC: the connection's time
 * zone is UTC; a result's equity is stored as two arrays and rendered as the
 * documented [{"time", "equity"}] by sf_equity_points, migration 0006). State
 * changes go through sf/job.h. GET /v1/jobs/{id} is answered from the
 * cache of jobs' JSON when it holds the job (jobcache.h: bounded lifetimes;
 * a cancel here drops the job's entry, a batch's cancel and a detail asked
 * for again drop them all).
 *
 * A result is served from what is stored: a backtest's own row; a sweep
 * member's compact row (params, metrics) joined to its detail job's row
 * (trades, curve; sf/detail.h), or, while the detail is not there yet, 202
 * with what is known and the detail enqueued; a logic execution's signal.
 * The API never runs the engine: a recomputation is a high-priority job on
 * the workers, whose memory is bounded by their configuration, and it is
 * the same single backtest a user would submit, so it stores exactly what
 * that backtest stores.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#include "sf/detail.h"
#include "sf/job.h"
#include "sf/joblist.h"

/* The {id} capture when it is a UUID; else answers 404 and returns NULL. */
static const char *job_id(sf_httpd_req *req)
{
    const char *id = sf_httpd_param(req, "id");
    if (!api_is_uuid(id)) {
        sf_httpd_reply_error(req, 404, "not_found", "no such job", NULL);
        return NULL;
    }
    return id;
}

/* Run a one-row query with (id, user id); answers 404/5xx itself, returns the row. */
static sf_db_res *owned_row(api_app *app, sf_httpd_req *req, const char *sql, const char *id, const sf_auth_user *user,
                            const char *what)
{
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *params[] = {id, user->id};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query_prepared(db, sql, 2, params, &res, &err); /* parsed and planned once a connection */
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return NULL;
    }
    if (sf_db_nrows(res) == 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "no such %s", what);
        sf_httpd_reply_error(req, 404, "not_found", msg, NULL);
        sf_db_res_free(res);
        return NULL;
    }
    return res;
}

/* The job's JSON as GET /v1/jobs/{id} shows it: a logic execution's with its
 * signal spliced in as the last member (PostgreSQL's text kept as it is, no
 * parse in sf-api); whether the cache may keep it as final (jobcache.h: a
 * final state and no signal, whose webhook may still be delivered). */
static const char JOB_SQL[] =
    "SELECT CASE WHEN sig IS NULL THEN job ELSE left(job, -1) || ', \"signal\" : ' || sig || '}' END, "
    "final AND sig IS NULL FROM (SELECT " SF_JOBLIST_JOB_JSON "::text AS job, "
    "status IN ('succeeded', 'failed', 'dead', 'cancelled') AS final, "
    "(SELECT " SF_JOBLIST_SIGNAL_JSON "::text FROM signals WHERE signals.job_id = jobs.id) AS sig "
    "FROM jobs WHERE id = $1::uuid AND user_id = $2::uuid) j";

static void reply_job(api_app *app, sf_httpd_req *req, const char *json, size_t len)
{
    sf_err err = {0};
    sf_status st = sf_httpd_reply(req, 200, "application/json", json, len, &err);
    if (st != SF_OK)
        api_fail(app, req, st, &err);
}

void api_job_get(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = job_id(req)) == NULL)
        return;
    char text[API_JOBCACHE_TEXT_MAX + 1];
    size_t len = 0;
    if (api_jobcache_get(app->jobs, id, user.id, text, sizeof text, &len)) {
        reply_job(app, req, text, len);
        return;
    }
    api_jobcache_ticket_t ticket = api_jobcache_ticket(app->jobs); /* before the read */
    sf_db_res *res = owned_row(app, req, JOB_SQL, id, &user, "job");
    if (res == NULL)
        return;
    const char *json = sf_db_get(res, 0, 0);
    len = strlen(json);
    api_jobcache_put(app->jobs, id, user.id, json, len, strcmp(sf_db_get(res, 0, 1), "t") == 0, ticket);
    reply_job(app, req, json, len);
    sf_db_res_free(res);
}

/* What a job's result is made of (column 2): "full" (its own trades and
 * curve: a single backtest, or a sweep member stored before migration 0011),
 * "detail" (a compact sweep member whose detail job succeeded: the member's
 * params, the detail's metrics, trades and curve), "compact" (a member with
 * metrics and params alone), "signal" (a logic execution) or "none". Column
 * 3 is the answer for full, detail and signal; column 4 the member's params
 * and metrics for compact. */
static const char RESULT_SQL[] =
    "SELECT j.status::text, j.error, CASE WHEN g.job_id IS NOT NULL THEN 'signal' "
    "WHEN r.job_id IS NULL THEN 'none' WHEN r.trades IS NOT NULL THEN 'full' "
    "WHEN dr.job_id IS NOT NULL THEN 'detail' ELSE 'compact' END, "
    "CASE WHEN g.job_id IS NOT NULL THEN json_build_object('job_id', j.id, 'kind', j.kind, "
    "  'signal', json_build_object('symbol', g.symbol, 'bar_time', g.bar_time, 'signal', g.signal, "
    "  'side', g.side, 'schedule_id', g.schedule_id, 'created_at', g.created_at, 'webhook', "
    "  CASE WHEN g.webhook_status IS NOT NULL THEN json_build_object('status', g.webhook_status, "
    "  'attempts', g.webhook_attempts, 'http_status', g.webhook_http_status, 'error', g.webhook_error, "
    "  'done_at', g.webhook_done_at) END)) "
    "WHEN r.trades IS NOT NULL AND r.params IS NULL THEN json_build_object('job_id', j.id, "
    "  'source', 'stored', 'metrics', r.metrics, 'trades', r.trades, "
    "  'equity', sf_equity_points(r.equity, r.equity_t, r.equity_v)) "
    "WHEN r.trades IS NOT NULL THEN json_build_object('job_id', j.id, 'source', 'stored', "
    "  'params', r.params, 'metrics', r.metrics, 'trades', r.trades, "
    "  'equity', sf_equity_points(r.equity, r.equity_t, r.equity_v)) "
    "WHEN dr.job_id IS NOT NULL THEN json_build_object('job_id', j.id, 'source', "
    "  CASE d.detail_source WHEN 'top' THEN 'stored' ELSE 'recomputed' END, 'detail_job_id', d.id, "
    "  'metrics_match', dr.metrics = r.metrics, 'params', r.params, 'metrics', dr.metrics, "
    "  'trades', dr.trades, 'equity', sf_equity_points(dr.equity, dr.equity_t, dr.equity_v)) "
    "END::text, json_build_object('params', r.params, 'metrics', r.metrics)::text "
    "FROM jobs j LEFT JOIN results r ON r.job_id = j.id LEFT JOIN signals g ON g.job_id = j.id "
    "LEFT JOIN jobs d ON d.detail_of = j.id AND d.status = 'succeeded' "
    "LEFT JOIN results dr ON dr.job_id = d.id "
    "WHERE j.id = $1::uuid AND j.user_id = $2::uuid";

/* 202 for a compact sweep member: its detail job (sf/detail.h) is enqueued
 * if it has none, and the answer says which and what is known already
 * (params and metrics). The client asks again; the trades come with 200. */
static void reply_computing(api_app *app, sf_httpd_req *req, const char *id, const char *known)
{
    sf_db *db = NULL;
    sf_err err = {0};
    sf_detail d;
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_detail_request(db, id, &d, &err);
    if (st == SF_OK && d.previous_error[0] != '\0')
        api_jobcache_clear(app->jobs); /* the failed detail it replaced is gone */
    json_t *out = st == SF_OK ? api_json_from_db(known) : NULL;
    if (st == SF_OK && out == NULL)
        st = sf_err_set(&err, SF_ERR_INTERNAL, "could not read the member's metrics");
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return;
    }
    char self[96], detail[96];
    snprintf(self, sizeof self, "/v1/jobs/%s/result", id);
    snprintf(detail, sizeof detail, "/v1/jobs/%s", d.id);
    json_t *head = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:{s:s, s:s}}", "job_id", id, "status", "computing",
                             "source", strcmp(d.source, "top") == 0 ? "stored" : "recomputed", "detail_job_id", d.id,
                             "detail_status", d.status, "previous_error", d.previous_error[0] ? d.previous_error : NULL,
                             "links", "self", self, "detail", detail);
    json_object_update(head, out);
    json_decref(out);
    sf_httpd_set_header(req, "Retry-After", "1", NULL);
    api_reply_json(app, req, 202, head);
}

void api_job_result(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = job_id(req)) == NULL)
        return;
    sf_db_res *res = owned_row(app, req, RESULT_SQL, id, &user, "job");
    if (res == NULL)
        return;
    const char *status = sf_db_get(res, 0, 0), *error = sf_db_get(res, 0, 1), *what = sf_db_get(res, 0, 2);
    int succeeded = strcmp(status, "succeeded") == 0;
    if (succeeded && strcmp(what, "compact") == 0) {
        reply_computing(app, req, id, sf_db_get(res, 0, 4));
    } else if (succeeded && strcmp(what, "none") != 0) {
        api_reply_text(app, req, 200, sf_db_get(res, 0, 3));
    } else if (succeeded) {
        sf_httpd_reply_error(req, 404, "result_not_available", "job succeeded but stored no result", NULL);
    } else {
        char msg[SF_JOB_ERROR_MAX + 128];
        snprintf(msg, sizeof msg, "job is %s: a result exists once it has succeeded%s%.2048s", status,
                 error ? "; error: " : "", error ? error : "");
        sf_httpd_reply_error(req, 404, "result_not_available", msg, NULL);
    }
    sf_db_res_free(res);
}

/* Best effort: Redis tidying after a cancel (PostgreSQL already decided). */
static void tell_redis(api_app *app, sf_httpd_req *req, const sf_queue_entry *entry, const char *running_id)
{
    sf_queue *q = NULL;
    sf_err err = {0};
    sf_status st = api_queue(app, &q, NULL, &err);
    if (st == SF_OK && entry != NULL && entry->id[0] != '\0')
        st = sf_queue_remove(q, entry, 1, NULL, &err);
    if (st == SF_OK && running_id != NULL)
        st = sf_queue_publish_cancel(q, &running_id, 1, &err);
    if (st != SF_OK) {
        sf_log_field f[] = {
            SF_LF_STR("request_id", sf_httpd_request_id(req)), SF_LF_STR("error", err.msg), {SF_LF_END_, NULL, {0}}};
        sf_log_emit(app->log, SF_LOG_WARN, "cancel: redis not updated (workers learn it by heartbeat)", f);
    }
}

void api_job_cancel(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = job_id(req)) == NULL)
        return;
    sf_db *db = NULL;
    sf_err err = {0};
    sf_job_cancel_result result = SF_JOB_CANCEL_NOT_FOUND;
    sf_queue_entry entry;
    memset(&entry, 0, sizeof entry);
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_job_cancel(db, id, user.id, &result, &entry, &err);
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return;
    }
    if (result == SF_JOB_CANCEL_DONE || result == SF_JOB_CANCEL_REQUESTED)
        api_jobcache_forget(app->jobs, id); /* committed: the next GET reads it */
    switch (result) {
    case SF_JOB_CANCEL_NOT_FOUND: sf_httpd_reply_error(req, 404, "not_found", "no such job", NULL); return;
    case SF_JOB_CANCEL_FINAL:
        sf_httpd_reply_error(req, 409, "already_finished", "job has already finished; nothing to cancel", NULL);
        return;
    case SF_JOB_CANCEL_DONE:
        tell_redis(app, req, &entry, NULL);
        api_reply_json(app, req, 200,
                       json_pack("{s:s, s:s, s:b}", "id", id, "status", "cancelled", "cancel_requested", 1));
        return;
    case SF_JOB_CANCEL_REQUESTED:
        tell_redis(app, req, NULL, id);
        api_reply_json(app, req, 202,
                       json_pack("{s:s, s:s, s:b}", "id", id, "status", "running", "cancel_requested", 1));
        return;
    }
}
