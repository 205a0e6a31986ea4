/*
 * sf-api: GET /v1/jobs/{id}, GET /v1/jobs/{id}/result, POST /v1/jobs/{id}/cancel.
 *
 * A user sees only their own jobs: every query is filtered on user_id, so
 * another user's job is 404 exactly like a missing one. PostgreSQL builds the
 * JSON of the read routes (timestamps ISO-8601 in UTC: the connection's time
 * zone is UTC; a result's equity is stored as two arrays and rendered as the
 * documented [{"time", "equity"}] by sf_equity_points, migration 0006). State
 * changes go through sf/job.h.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#include "sf/job.h"

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
static sf_db_res *owned_row(api_app *app, sf_httpd_req *req, const char *sql, const char *id,
                            const sf_auth_user *user, const char *what)
{
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *params[] = {id, user->id};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, sql, 2, params, &res, &err);
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

static const char JOB_SQL[] =
    "SELECT json_build_object('id', id, 'kind', kind, 'status', status, 'priority', "
    "CASE priority WHEN 0 THEN 'high' WHEN 1 THEN 'normal' ELSE 'low' END, "
    "'symbol', symbol, 'timeframe', timeframe, 'from', from_ts, 'to', to_ts, "
    "'batch_id', batch_id, 'combo_index', combo_index, 'attempt', attempt, "
    "'max_attempts', max_attempts, 'worker', worker, 'error', error, 'error_class', error_class, "
    "'cancel_requested', cancel_requested, 'created_at', created_at, 'queued_at', queued_at, "
    "'started_at', started_at, 'finished_at', finished_at, 'run_at', run_at, "
    "'links', json_build_object('self', '/v1/jobs/' || id, 'result', '/v1/jobs/' || id || '/result'))::text "
    "FROM jobs WHERE id = $1::uuid AND user_id = $2::uuid";

void api_job_get(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = job_id(req)) == NULL)
        return;
    sf_db_res *res = owned_row(app, req, JOB_SQL, id, &user, "job");
    if (res == NULL)
        return;
    api_reply_text(app, req, 200, sf_db_get(res, 0, 0));
    sf_db_res_free(res);
}

static const char RESULT_SQL[] =
    "SELECT j.status::text, j.error, json_build_object('job_id', j.id, 'metrics', r.metrics, "
    "'trades', r.trades, 'equity', sf_equity_points(r.equity, r.equity_t, r.equity_v))::text, r.job_id IS NOT NULL "
    "FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.id = $1::uuid AND j.user_id = $2::uuid";

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
    const char *status = sf_db_get(res, 0, 0), *error = sf_db_get(res, 0, 1);
    if (strcmp(status, "succeeded") == 0 && strcmp(sf_db_get(res, 0, 3), "t") == 0) {
        api_reply_text(app, req, 200, sf_db_get(res, 0, 2));
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
        sf_log_field f[] = {SF_LF_STR("request_id", sf_httpd_request_id(req)), SF_LF_STR("error", err.msg),
                            {SF_LF_END_, NULL, {0}}};
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
    switch (result) {
    case SF_JOB_CANCEL_NOT_FOUND:
        sf_httpd_reply_error(req, 404, "not_found", "no such job", NULL);
        return;
    case SF_JOB_CANCEL_FINAL:
        sf_httpd_reply_error(req, 409, "already_finished", "job has already finished; nothing to cancel", NULL);
        return;
    case SF_JOB_CANCEL_DONE:
        tell_redis(app, req, &entry, NULL);
        api_reply_json(app, req, 200, json_pack("{s:s, s:s, s:b}", "id", id, "status", "cancelled",
                                                "cancel_requested", 1));
        return;
    case SF_JOB_CANCEL_REQUESTED:
        tell_redis(app, req, NULL, id);
        api_reply_json(app, req, 202, json_pack("{s:s, s:s, s:b}", "id", id, "status", "running",
                                                "cancel_requested", 1));
        return;
    }
}
