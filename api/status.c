/*
 * sf-api: GET /v1/status (the figures of the status page), GET / (the status
 * page itself) and GET /openapi.json (the API's OpenAPI 3.1 document). The
 * page and the document are files of the repository (api/status.html,
 * api/openapi.json) compiled into the program as C strings (assets.h), so
 * the binary is the one artefact that serves them.
 *
 * GET /v1/status answers two parts. "fleet" is the farm's, the same for
 * every user and holding nothing of anyone's jobs but counts: the ready ids
 * in Redis by priority (sf_queue_get_depth, one read-only script), the live
 * workers of the registry sf:{QUEUE}:workers (deadline after Redis TIME)
 * with how many jobs each runs, the pending, queued and running counts
 * (each read through its partial index), and the jobs finished in each of
 * the last 15 minutes by outcome (a range of the jobs_finished index).
 * "mine" is the caller's: their running jobs, their five newest batches
 * with counts by status, and their ten latest dead jobs with errors (single
 * backtests through jobs_user_status, members of those five batches through
 * jobs_batch). One statement computes every PostgreSQL figure; no count
 * runs over the whole jobs table.
 */
#include "api.h"
#include "assets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS_MAX "500" /* live workers listed */

static const char STATUS_SQL[] =
    "WITH rb AS MATERIALIZED (SELECT id, symbol, timeframe, total, created_at FROM batches "
    "  WHERE user_id = $1::uuid ORDER BY created_at DESC, id DESC LIMIT 5), "
    "m AS (SELECT generate_series(date_trunc('minute', now()) - interval '14 minutes', "
    "  date_trunc('minute', now()), interval '1 minute') AS minute), "
    "f AS (SELECT date_trunc('minute', finished_at) AS minute, "
    "  count(*) FILTER (WHERE status = 'succeeded') AS succeeded, count(*) FILTER (WHERE status = 'failed') AS failed, "
    "  count(*) FILTER (WHERE status = 'dead') AS dead, count(*) FILTER (WHERE status = 'cancelled') AS cancelled "
    "  FROM jobs WHERE finished_at >= date_trunc('minute', now()) - interval '14 minutes' GROUP BY 1), "
    "d AS ((SELECT id, batch_id, symbol, timeframe, attempt, error, error_class, finished_at, created_at FROM jobs "
    "  WHERE user_id = $1::uuid AND status = 'dead' AND batch_id IS NULL ORDER BY created_at DESC, id DESC LIMIT 10) "
    "  UNION ALL (SELECT j.id, j.batch_id, j.symbol, j.timeframe, j.attempt, j.error, j.error_class, j.finished_at, "
    "  j.created_at FROM rb CROSS JOIN LATERAL (SELECT * FROM jobs WHERE batch_id = rb.id AND status = 'dead' "
    "  ORDER BY created_at DESC, id DESC LIMIT 10) j)) "
    "SELECT json_build_object('generated_at', now(), 'fleet', json_build_object("
    "  'jobs', json_build_object('pending', (SELECT count(*) FROM jobs WHERE status = 'pending'), "
    "  'queued', (SELECT count(*) FROM jobs WHERE status = 'queued'), "
    "  'running', (SELECT count(*) FROM jobs WHERE status = 'running')), "
    "  'finished', (SELECT json_agg(json_build_object('minute', m.minute, 'succeeded', coalesce(f.succeeded, 0), "
    "  'failed', coalesce(f.failed, 0), 'dead', coalesce(f.dead, 0), 'cancelled', coalesce(f.cancelled, 0)) "
    "  ORDER BY m.minute) FROM m LEFT JOIN f ON f.minute = m.minute)), "
    "'mine', json_build_object("
    "  'running_total', (SELECT count(*) FROM jobs WHERE status = 'running' AND user_id = $1::uuid), "
    "  'running', coalesce((SELECT json_agg(r ORDER BY r.started_at) FROM (SELECT id, kind, batch_id, symbol, "
    "  timeframe, worker, attempt, started_at FROM jobs WHERE status = 'running' AND user_id = $1::uuid "
    "  ORDER BY started_at LIMIT 50) r), '[]'), "
    "  'batches', coalesce((SELECT json_agg(json_build_object('id', rb.id, 'symbol', rb.symbol, 'timeframe', "
    "  rb.timeframe, 'total', rb.total, 'created_at', rb.created_at, 'counts', coalesce(c.counts, '{}'), "
    "  'finished', coalesce(c.finished, 0)) ORDER BY rb.created_at DESC, rb.id DESC) FROM rb CROSS JOIN LATERAL "
    "  (SELECT json_object_agg(status, n) AS counts, sum(n) FILTER (WHERE status IN ('succeeded', 'failed', "
    "  'dead', 'cancelled')) AS finished FROM (SELECT status, count(*) AS n FROM jobs WHERE batch_id = rb.id "
    "  GROUP BY status) s) c), '[]'), "
    "  'dead', coalesce((SELECT json_agg(json_build_object('id', id, 'batch_id', batch_id, 'symbol', symbol, "
    "  'timeframe', timeframe, 'attempt', attempt, 'error', error, 'error_class', error_class, 'finished_at', "
    "  finished_at) ORDER BY finished_at DESC NULLS LAST, id) FROM (SELECT * FROM d "
    "  ORDER BY finished_at DESC NULLS LAST, id LIMIT 10) d), '[]')))::text, "
    "(SELECT coalesce(json_object_agg(worker, n), '{}') FROM (SELECT worker, count(*) AS n FROM jobs "
    "  WHERE status = 'running' AND worker IS NOT NULL GROUP BY worker) w)::text";

/* The live workers' names (deadline after Redis TIME), as a JSON array of
 * {"name", "running"} with running from by_worker ({"name": n}). */
static sf_status live_workers(sf_queue *q, sf_redis *r, json_t *by_worker, json_t **out, sf_err *err)
{
    char key[256], now[32];
    sf_redis_reply *t = NULL, *rep = NULL;
    const char *time_argv[] = {"TIME"};
    snprintf(key, sizeof key, "%sworkers", sf_queue_prefix(q));
    sf_status st = sf_redis_cmd(r, 1, time_argv, NULL, &t, err);
    if (st == SF_OK && (sf_redis_reply_type(t) != SF_REDIS_ARRAY || sf_redis_reply_len(t) != 2))
        st = sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply to TIME");
    if (st == SF_OK) {
        long long s = strtoll(sf_redis_reply_str(sf_redis_reply_at(t, 0), NULL), NULL, 10);
        long long us = strtoll(sf_redis_reply_str(sf_redis_reply_at(t, 1), NULL), NULL, 10);
        snprintf(now, sizeof now, "%lld", s * 1000 + us / 1000);
        const char *argv[] = {"ZRANGEBYSCORE", key, now, "+inf", "LIMIT", "0", WORKERS_MAX};
        st = sf_redis_cmd(r, 7, argv, NULL, &rep, err);
    }
    if (st == SF_OK && sf_redis_reply_type(rep) != SF_REDIS_ARRAY)
        st = sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply to ZRANGEBYSCORE");
    json_t *list = json_array();
    for (size_t i = 0; st == SF_OK && i < sf_redis_reply_len(rep); i++) {
        const char *name = sf_redis_reply_str(sf_redis_reply_at(rep, i), NULL);
        json_t *n = json_object_get(by_worker, name ? name : "");
        json_array_append_new(list, json_pack("{s:s, s:I}", "name", name ? name : "", "running",
                                              (json_int_t)(json_is_integer(n) ? json_integer_value(n) : 0)));
    }
    sf_redis_reply_free(t);
    sf_redis_reply_free(rep);
    *out = list;
    return st;
}

/* The Redis half of "fleet": queue depth and live workers. */
static sf_status fleet_redis(api_app *app, json_t *fleet, json_t *by_worker, sf_err *err)
{
    sf_queue *q = NULL;
    sf_redis *r = NULL;
    sf_queue_depth dp;
    json_t *workers = NULL;
    sf_status st = api_queue(app, &q, &r, err);
    if (st == SF_OK)
        st = sf_queue_get_depth(q, &dp, err);
    if (st == SF_OK)
        st = live_workers(q, r, by_worker, &workers, err);
    if (st != SF_OK) {
        json_decref(workers);
        return st;
    }
    json_object_set_new(fleet, "queue",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "high", (json_int_t)dp.ready[0], "normal",
                                  (json_int_t)dp.ready[1], "low", (json_int_t)dp.ready[2], "total",
                                  (json_int_t)dp.ready_total, "leased", (json_int_t)dp.leased));
    json_object_set_new(fleet, "workers_live", json_integer((json_int_t)json_array_size(workers)));
    json_object_set_new(fleet, "workers", workers);
    return SF_OK;
}

void api_status(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *params[] = {user.id};
    json_t *out = NULL, *by_worker = NULL;
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query_prepared(db, STATUS_SQL, 1, params, &res, &err);
    if (st == SF_OK) {
        out = api_json_from_db(sf_db_get(res, 0, 0));
        by_worker = api_json_from_db(sf_db_get(res, 0, 1));
        if (out == NULL || by_worker == NULL)
            st = sf_err_set(&err, SF_ERR_INTERNAL, "could not read the status figures");
    }
    sf_db_res_free(res);
    if (st == SF_OK)
        st = fleet_redis(app, json_object_get(out, "fleet"), by_worker, &err);
    json_decref(by_worker);
    if (st == SF_OK) {
        api_reply_json(app, req, 200, out);
    } else {
        json_decref(out);
        api_fail(app, req, st, &err);
    }
}

/* The page and the document need no key: they hold no data (the page asks
 * /v1/status with the key the user types). The page may run only its own
 * inline script and talk only to this origin. */
void api_page(sf_httpd_req *req, void *appv)
{
    sf_err err = {0};
    sf_httpd_set_header(req, "Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                        "frame-ancestors 'none'",
                        NULL);
    sf_httpd_set_header(req, "Referrer-Policy", "no-referrer", NULL);
    sf_status st = sf_httpd_reply(req, 200, "text/html; charset=utf-8", api_status_html, api_status_html_len, &err);
    if (st != SF_OK)
        api_fail(appv, req, st, &err);
}

void api_openapi(sf_httpd_req *req, void *appv)
{
    sf_err err = {0};
    sf_status st = sf_httpd_reply(req, 200, "application/json", api_openapi_json, api_openapi_json_len, &err);
    if (st != SF_OK)
        api_fail(appv, req, st, &err);
}
