/*
 * sf-api: the route table, and the operational routes: /health (the process
 * answers), /ready (PostgreSQL and Redis answer), /metrics (Prometheus text),
 * GET /v1/datasets.
 */
#include "api.h"
#include "lists.h"
#include "stored.h"
#include "tiers.h"

#include <stdlib.h>
#include <string.h>

#include "sf/dataset.h"
#include "sf/time.h"

const sf_httpd_route api_routes[] = {
    {"GET", "/health", api_health},
    {"GET", "/ready", api_ready},
    {"GET", "/metrics", api_metrics},
    {"GET", "/v1/datasets", api_datasets},
    {"POST", "/v1/backtests", api_backtest_submit},
    {"POST", "/v1/sweeps", api_sweep_submit},
    {"GET", "/v1/jobs/{id}", api_job_get},
    {"GET", "/v1/jobs/{id}/result", api_job_result},
    {"POST", "/v1/jobs/{id}/cancel", api_job_cancel},
    {"GET", "/v1/batches/{id}", api_batch_get},
    {"POST", "/v1/batches/{id}/cancel", api_batch_cancel},
    {"GET", "/v1/jobs", api_jobs_list},
    {"GET", "/v1/batches", api_batches_list},
    {"POST", "/v1/jobs/{id}/rerun", api_job_rerun},
    {"POST", "/v1/batches/{id}/rerun", api_batch_rerun},
    {"POST", "/v1/reruns", api_reruns},
    {"POST", "/v1/logics", api_logic_create},
    {"GET", "/v1/logics", api_logics_list},
    {"GET", "/v1/logics/{id}", api_logic_get},
    {"PUT", "/v1/logics/{id}", api_logic_update},
    {"DELETE", "/v1/logics/{id}", api_logic_delete},
    {"POST", "/v1/schedules", api_schedule_create},
    {"GET", "/v1/schedules", api_schedules_list},
    {"GET", "/v1/schedules/{id}", api_schedule_get},
    {"DELETE", "/v1/schedules/{id}", api_schedule_delete},
    {"GET", "/v1/schedules/{id}/signals", api_schedule_signals},
    {"GET", "/v1/me", api_me},
    {"GET", "/", api_page},
    {"GET", "/openapi.json", api_openapi},
    {"GET", "/v1/status", api_status},
};
const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];

void api_health(sf_httpd_req *req, void *appv)
{
    api_reply_text(appv, req, 200, "{\"status\":\"ok\"}\n");
}

static sf_status ping_db(api_app *app, sf_err *err)
{
    sf_db *db = NULL;
    sf_status st = api_db(app, &db, err);
    return st == SF_OK ? sf_db_exec(db, "SELECT 1", err) : st;
}

static sf_status ping_redis(api_app *app, sf_err *err)
{
    sf_queue *q = NULL;
    sf_redis *r = NULL;
    sf_redis_reply *rep = NULL;
    const char *argv[] = {"PING"};
    sf_status st = api_queue(app, &q, &r, err);
    if (st == SF_OK)
        st = sf_redis_cmd(r, 1, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

void api_ready(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_err dberr = {0}, rerr = {0};
    sf_status dbst = ping_db(app, &dberr), rst = ping_redis(app, &rerr);
    if (dbst == SF_OK && rst == SF_OK) {
        api_reply_text(app, req, 200, "{\"status\":\"ready\",\"database\":\"ok\",\"redis\":\"ok\"}\n");
        return;
    }
    sf_log_field f[] = {SF_LF_STR("database", dbst == SF_OK ? "ok" : dberr.msg),
                        SF_LF_STR("redis", rst == SF_OK ? "ok" : rerr.msg),
                        {SF_LF_END_, NULL, {0}}};
    sf_log_emit(app->log, SF_LOG_WARN, "not ready", f);
    api_reply_json(app, req, 503,
                   json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", "not_ready", "message",
                             "a dependency is unavailable", "database", dbst == SF_OK ? "ok" : "unavailable", "redis",
                             rst == SF_OK ? "ok" : "unavailable"));
}

/* With METRICS_TOKEN set: is the request's Bearer token that one? Compared
 * by SHA-256 in constant time, so neither the token nor its length leaks. */
static int metrics_allowed(api_app *app, sf_httpd_req *req)
{
    if (!app->metrics_locked)
        return 1;
    size_t len = 0;
    const char *given = sf_auth_bearer(sf_httpd_header(req, "Authorization"), &len);
    unsigned char h[SF_AUTH_HASH_BYTES];
    return given != NULL && sf_auth_hash(given, len, h, NULL) == SF_OK && sf_auth_hash_equal(h, app->metrics_hash);
}

void api_metrics(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    if (!metrics_allowed(app, req)) {
        sf_httpd_set_header(req, "WWW-Authenticate", "Bearer", NULL);
        sf_httpd_reply_error(req, 401, "unauthorized",
                             "/metrics wants the METRICS_TOKEN: send Authorization: Bearer <token>", NULL);
        return;
    }
    sf_buf b;
    sf_err err = {0};
    sf_buf_init(&b, 16u << 20);
    sf_status st = sf_metrics_render(app->metrics, &b, &err);
    if (st == SF_OK)
        st = sf_metrics_render_process(app->start_time, &b, &err);
    if (st == SF_OK)
        sf_httpd_reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b, &err);
    else
        api_fail(app, req, st, &err);
    sf_buf_destroy(&b);
}

static json_t *dataset_json(const sf_dataset_info *d)
{
    char first[32], last[32], updated[32];
    sf_time_format_iso8601(d->first_ts, first, sizeof first);
    sf_time_format_iso8601(d->last_ts, last, sizeof last);
    sf_time_format_iso8601(d->updated_at, updated, sizeof updated);
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "symbol", d->symbol, "timeframe", d->timeframe, "version",
                     (json_int_t)d->version, "bars", (json_int_t)d->bars, "first", first, "last", last, "updated_at",
                     updated);
}

void api_datasets(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    sf_dataset_info *list = calloc(SF_DATASET_LIST_MAX, sizeof *list);
    sf_db *db = NULL;
    sf_err err = {0};
    size_t n = 0;
    int more = 0;
    sf_status st = list ? api_db(app, &db, &err) : SF_ERR_NOMEM;
    if (st == SF_OK)
        st = sf_dataset_list(db, list, SF_DATASET_LIST_MAX, &n, &more, &err);
    if (st == SF_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, dataset_json(&list[i]));
        api_reply_json(app, req, 200, json_pack("{s:o, s:b}", "datasets", arr, "truncated", more));
    } else {
        api_fail(app, req, st, &err);
    }
    free(list);
}
