/*
 * sf-api: POST /v1/jobs/{id}/rerun, POST /v1/batches/{id}/rerun, POST
 * /v1/reruns.
 *
 * A job or batch rerun builds the body of the original submission from what
 * the job (batch) stored (the logic's exact jsonb, symbol, timeframe, range,
 * priority, attempts; a sweep's grid, rank_by, detail_top, blocks,
 * effective_trials and stored logic (logic_id, logic_version)) and hands it to
 * the submit route's own function (lists.h), with rerun_of set and the data
 * set's version pinned: an import replaces the bars, so a rerun on the same
 * version is refused (409 dataset_changed) once the data set moved on,
 * unless "latest": true, which also takes the current body of a stored
 * logic the job was submitted by (logic_id). A batch rerun creates one new
 * batch (rerun_of = the old one) whose members are the old members in the
 * statuses asked for (failed, dead and cancelled by default), each with its
 * combo_index and rerun_of.
 *
 * POST /v1/reruns re-runs every single backtest a filter matches (status,
 * kind, logic, symbol, since, until; or batch, which is a batch rerun). It
 * counts first, reading at most RERUN_MAX + 1 index entries: more is 400
 * rerun_too_large, and "dry_run": true answers the count only. Then the
 * matched jobs' distinct logics are compiled by the same validator, their
 * data sets checked (exist; same version unless latest), and the copies
 * are inserted as pending with one INSERT ... SELECT and NOTIFY in one
 * transaction, the submit routes' outbox, from which the relay takes them.
 */
#include "lists.h"
#include "tiers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/joblist.h"

static const char *const DEFAULT_STATUSES[] = {"failed", "dead", "cancelled"};

static int bad(sf_httpd_req *req, int http, const char *code, const char *field, const char *msg)
{
    sf_httpd_reply_error(req, http, code, msg, field);
    return 0;
}

/* The body as an object; an empty body is {}. NULL after answering 400. */
static json_t *optional_body(sf_httpd_req *req)
{
    size_t len = 0;
    sf_httpd_body(req, &len);
    return len == 0 ? json_object() : api_body_object(req);
}

/* "status": a name or a list of names (none: failed, dead, cancelled when
 * dflt); answers 400 and returns 0 when bad. */
static int json_statuses(sf_httpd_req *req, json_t *body, int dflt, api_filter_in *in)
{
    json_t *v = json_object_get(body, "status");
    in->n_status = 0;
    if (v == NULL && dflt) {
        for (size_t i = 0; i < 3; i++)
            in->status[in->n_status++] = DEFAULT_STATUSES[i];
        return 1;
    }
    if (json_is_string(v)) {
        in->status[in->n_status++] = json_string_value(v);
        return 1;
    }
    size_t i;
    json_t *s;
    if (v != NULL && (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > SF_JOBLIST_STATUSES))
        return bad(req, 400, "invalid_request", "status",
                   "status: a status or a list of 1 to 7 of " SF_JOBLIST_STATUS_LIST);
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s))
            return bad(req, 400, "invalid_request", "status", "status: every entry must be a string");
        in->status[in->n_status++] = json_string_value(s);
    }
    return 1;
}

static int json_flag(sf_httpd_req *req, json_t *body, const char *key, int *out)
{
    json_t *v = json_object_get(body, key);
    *out = json_is_true(v);
    if (v == NULL || json_is_boolean(v))
        return 1;
    char msg[64];
    snprintf(msg, sizeof msg, "%s: must be true or false", key);
    return bad(req, 400, "invalid_request", key, msg);
}

/* Run a query with params; answers 5xx and returns NULL on failure. */
static sf_db_res *query(api_app *app, sf_httpd_req *req, const char *sql, int n, const char *const *p)
{
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, sql, n, p, &res, &err);
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    return st == SF_OK ? res : NULL;
}

/* 409 dataset_version_unknown for an original from before migration 0012. */
static int version_known(sf_httpd_req *req, const char *version, int latest)
{
    if (version != NULL || latest)
        return 1;
    return bad(req, 409, "dataset_version_unknown", "latest",
               "the original was submitted before data-set versions were recorded: ask for \"latest\": true "
               "to run on the data set as it is now");
}

/* The submission's common fields from an original's row (cols from..). */
static void common_fields(json_t *body, const sf_db_res *res, int col)
{
    json_object_set_new(body, "symbol", json_string(sf_db_get(res, 0, col)));
    json_object_set_new(body, "timeframe", json_string(sf_db_get(res, 0, col + 1)));
    if (!sf_db_is_null(res, 0, col + 2))
        json_object_set_new(body, "from", json_string(sf_db_get(res, 0, col + 2)));
    if (!sf_db_is_null(res, 0, col + 3))
        json_object_set_new(body, "to", json_string(sf_db_get(res, 0, col + 3)));
    json_object_set_new(body, "priority", json_string(sf_db_get(res, 0, col + 4)));
    json_object_set_new(body, "max_attempts", json_integer(strtoll(sf_db_get(res, 0, col + 5), NULL, 10)));
}

#define ISO(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define PRIO(c) "CASE " c " WHEN 0 THEN 'high' WHEN 1 THEN 'normal' ELSE 'low' END"

/* ---- POST /v1/jobs/{id}/rerun -------------------------------------------------------- */

static const char JOB_SQL[] =
    "SELECT kind::text, batch_id::text, logic::text, logic_id::text, dataset_version, "
    "symbol, timeframe, " ISO("from_ts") ", " ISO("to_ts") ", " PRIO(
        "priority") ", "
                    "max_attempts, logic_version FROM jobs WHERE id = $1::uuid AND user_id = $2::uuid";

/* The submission body of the job in res; NULL after answering. */
static json_t *job_body(sf_httpd_req *req, const sf_db_res *res, int latest)
{
    const char *kind = sf_db_get(res, 0, 0), *batch = sf_db_get(res, 0, 1), *logic_id = sf_db_get(res, 0, 3);
    char msg[200];
    if (strcmp(kind, "backtest") != 0) {
        bad(req, 409, "not_rerunnable", NULL, "a logic execution is fired by its schedule; it is not re-run");
        return NULL;
    }
    if (batch != NULL) {
        snprintf(msg, sizeof msg, "the job is a member of batch %s: re-run it with POST /v1/batches/%s/rerun", batch,
                 batch);
        bad(req, 409, "not_rerunnable", NULL, msg);
        return NULL;
    }
    if (!version_known(req, sf_db_get(res, 0, 4), latest))
        return NULL;
    json_t *body = json_object();
    if (latest && logic_id != NULL)
        json_object_set_new(body, "logic_id", json_string(logic_id));
    else
        json_object_set_new(body, "logic", json_loads(sf_db_get(res, 0, 2), 0, NULL));
    common_fields(body, res, 5);
    return body;
}

void api_job_rerun(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id = sf_httpd_param(req, "id");
    static const char *const KEYS[] = {"latest", NULL};
    if (!api_authenticate(app, req, &user))
        return;
    if (!api_is_uuid(id)) {
        bad(req, 404, "not_found", NULL, "no such job");
        return;
    }
    json_t *in = optional_body(req), *body = NULL;
    int latest = 0;
    const char *p[] = {id, user.id};
    sf_db_res *res = NULL;
    if (in != NULL && api_only_keys(req, in, KEYS) && json_flag(req, in, "latest", &latest) &&
        (res = query(app, req, JOB_SQL, 2, p)) != NULL) {
        if (sf_db_nrows(res) == 0)
            bad(req, 404, "not_found", NULL, "no such job");
        else if ((body = job_body(req, res, latest)) != NULL) {
            api_origin o = {.rerun_of = id, .logic_id = sf_db_get(res, 0, 3)};
            o.logic_version = sf_db_is_null(res, 0, 11) ? 0 : strtoll(sf_db_get(res, 0, 11), NULL, 10);
            o.dataset_version = latest ? 0 : strtoll(sf_db_get(res, 0, 4), NULL, 10);
            api_backtest_submit_body(app, req, &user, body, &o);
        }
    }
    json_decref(body);
    json_decref(in);
    sf_db_res_free(res);
}

/* ---- POST /v1/batches/{id}/rerun ------------------------------------------------------- */

static const char BATCH_SQL[] =
    "SELECT b.logic::text, b.grid::text, b.rank_by, b.detail_top, b.dataset_version, b.symbol, b.timeframe, " ISO(
        "m.from_ts") ", " ISO("m.to_ts") ", " PRIO("m.priority") ", m.max_attempts, "
                                                                 "(SELECT count(*) FROM jobs c WHERE c.batch_id = b.id "
                                                                 "AND c.status = ANY($3::job_status[])), "
                                                                 "b.blocks, b.effective_trials, b.logic_id::text, "
                                                                 "b.logic_version "
                                                                 "FROM batches b CROSS JOIN LATERAL (SELECT * FROM "
                                                                 "jobs j WHERE j.batch_id = b.id LIMIT 1) m "
                                                                 "WHERE b.id = $1::uuid AND b.user_id = $2::uuid";

/* "{failed,dead}" from checked names. */
static void status_array(const api_filter_in *in, char *out, size_t size)
{
    snprintf(out, size, "{");
    for (size_t i = 0; i < in->n_status; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "", in->status[i]);
    snprintf(out + strlen(out), size - strlen(out), "}");
}

static int statuses_valid(sf_httpd_req *req, const api_filter_in *in)
{
    for (size_t i = 0; i < in->n_status; i++)
        if (!sf_joblist_status_valid(in->status[i])) {
            char msg[200];
            snprintf(msg, sizeof msg, "status: unknown status \"%.40s\" (one of " SF_JOBLIST_STATUS_LIST ")",
                     in->status[i]);
            return bad(req, 400, "invalid_request", "status", msg);
        }
    return 1;
}

/* The sweep's submission: its grid, ranking, details and overfitting
 * settings (blocks, effective_trials) as submitted; the logic it ran, or
 * with latest the current body of the stored logic it came from. */
static json_t *batch_body(const sf_db_res *res, int latest)
{
    json_t *body = json_pack("{s:o, s:s, s:I}", "grid", json_loads(sf_db_get(res, 0, 1), 0, NULL), "rank_by",
                             sf_db_get(res, 0, 2), "detail_top", (json_int_t)strtoll(sf_db_get(res, 0, 3), NULL, 10));
    if (latest && !sf_db_is_null(res, 0, 14))
        json_object_set_new(body, "logic_id", json_string(sf_db_get(res, 0, 14)));
    else
        json_object_set_new(body, "logic", json_loads(sf_db_get(res, 0, 0), 0, NULL));
    if (!sf_db_is_null(res, 0, 12))
        json_object_set_new(body, "blocks", json_integer(strtoll(sf_db_get(res, 0, 12), NULL, 10)));
    if (!sf_db_is_null(res, 0, 13))
        json_object_set_new(body, "effective_trials", json_integer(strtoll(sf_db_get(res, 0, 13), NULL, 10)));
    common_fields(body, res, 5);
    return body;
}

static void batch_rerun(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const char *id,
                        const api_filter_in *in, int latest, int dry_run)
{
    char statuses[128];
    status_array(in, statuses, sizeof statuses);
    const char *p[] = {id, user->id, statuses};
    sf_db_res *res = query(app, req, BATCH_SQL, 3, p);
    if (res == NULL)
        return;
    long long n = sf_db_nrows(res) ? strtoll(sf_db_get(res, 0, 11), NULL, 10) : 0;
    if (sf_db_nrows(res) == 0) {
        bad(req, 404, "not_found", NULL, "no such batch");
    } else if (dry_run) {
        api_reply_json(app, req, 200,
                       json_pack("{s:b, s:I, s:s, s:s}", "dry_run", 1, "matched", (json_int_t)n, "batch_id", id,
                                 "status", statuses));
    } else if (n == 0) {
        bad(req, 409, "nothing_to_rerun", "status", "no member of the batch is in the statuses asked for");
    } else if (version_known(req, sf_db_get(res, 0, 4), latest)) {
        json_t *body = batch_body(res, latest);
        api_origin o = {.rerun_of = id, .members_of = id, .statuses = statuses, .total = n};
        o.logic_id = sf_db_get(res, 0, 14); /* with latest, the body's logic_id sets both anew */
        o.logic_version = sf_db_is_null(res, 0, 15) ? 0 : strtoll(sf_db_get(res, 0, 15), NULL, 10);
        o.dataset_version = latest ? 0 : strtoll(sf_db_get(res, 0, 4), NULL, 10);
        api_sweep_submit_body(app, req, user, body, &o);
        json_decref(body);
    }
    sf_db_res_free(res);
}

void api_batch_rerun(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id = sf_httpd_param(req, "id");
    static const char *const KEYS[] = {"status", "latest", "dry_run", NULL};
    if (!api_authenticate(app, req, &user))
        return;
    if (!api_is_uuid(id)) {
        bad(req, 404, "not_found", NULL, "no such batch");
        return;
    }
    json_t *in = optional_body(req);
    api_filter_in f = {0};
    int latest = 0, dry_run = 0;
    if (in != NULL && api_only_keys(req, in, KEYS) && json_statuses(req, in, 1, &f) && statuses_valid(req, &f) &&
        json_flag(req, in, "latest", &latest) && json_flag(req, in, "dry_run", &dry_run))
        batch_rerun(app, req, &user, id, &f, latest, dry_run);
    json_decref(in);
}

/* ---- POST /v1/reruns ------------------------------------------------------------------- */

/* The logic a matched job j re-runs: with latest ($L), a stored logic's
 * current body (l) when it was submitted by one that is not deleted (a
 * deleted one's jobs re-run the version they ran); its version likewise. */
#define RERUN_LOGIC "(CASE WHEN $%1$d::boolean AND l.body IS NOT NULL THEN l.body ELSE j.logic END)"
#define RERUN_VERSION "(CASE WHEN $%1$d::boolean AND l.body IS NOT NULL THEN l.version ELSE j.logic_version END)"
#define RERUN_FROM                                                                                                     \
    " FROM jobs j LEFT JOIN logics l ON l.id = j.logic_id AND l.user_id = j.user_id AND l.deleted_at IS NULL "         \
    "LEFT JOIN datasets d ON d.symbol = j.symbol AND d.timeframe = j.timeframe WHERE j.id IN (%2$s)"

/* The statement fmt (a format whose %1$d is latest's parameter number, as
 * in RERUN_LOGIC, and %2$s the filter's id list, as in RERUN_FROM) over the
 * filter's ids, with latest as the last parameter. */
static sf_db_res *over_matched(api_app *app, sf_httpd_req *req, const sf_joblist_query *ids, const char *fmt,
                               int latest)
{
    char sql[sizeof ids->sql + 2048];
    const char *p[SF_JOBLIST_PARAMS_MAX + 2];
    int n = ids->nparams;
    memcpy(p, ids->params, sizeof(p[0]) * (size_t)n);
    p[n] = latest ? "true" : "false";
    snprintf(sql, sizeof sql, fmt, n + 1, ids->sql);
    return query(app, req, sql, n + 1, p);
}

/* Every distinct logic compiles (the submit routes' validator); answers. */
static int matched_logics_valid(api_app *app, sf_httpd_req *req, const sf_joblist_query *ids, int latest)
{
    sf_db_res *res = over_matched(app, req, ids,
                                  "SELECT DISTINCT ON (x.h) x.t FROM (SELECT md5(" RERUN_LOGIC
                                  "::text) AS h, " RERUN_LOGIC "::text AS t" RERUN_FROM ") x",
                                  latest);
    if (res == NULL)
        return 0;
    int ok = 1;
    for (int r = 0; ok && r < sf_db_nrows(res); r++) {
        const char *text = sf_db_get(res, r, 0);
        sf_logic *logic = NULL;
        sf_err err = {0};
        ok = sf_logic_parse(text, strlen(text), &logic, NULL, &err) == SF_OK;
        sf_logic_free(logic);
        if (!ok) {
            char msg[SF_ERR_MSG_MAX + 64];
            snprintf(msg, sizeof msg, "a matched job's logic does not compile: %s", err.msg);
            bad(req, 400, "invalid_logic", "logic", msg);
        }
    }
    sf_db_res_free(res);
    return ok;
}

/* Every matched job's data set exists, at the version it ran on unless latest. */
static int matched_datasets_valid(api_app *app, sf_httpd_req *req, const sf_joblist_query *ids, int latest)
{
    sf_db_res *res = over_matched(app, req, ids,
                                  "SELECT j.symbol, j.timeframe, count(*) FILTER (WHERE d.version IS NULL), "
                                  "count(*) FILTER (WHERE NOT $%1$d::boolean AND j.dataset_version IS DISTINCT FROM "
                                  "d.version)" RERUN_FROM " GROUP BY 1, 2",
                                  latest);
    if (res == NULL)
        return 0;
    int ok = 1;
    for (int r = 0; ok && r < sf_db_nrows(res); r++) {
        char msg[320];
        long long gone = strtoll(sf_db_get(res, r, 2), NULL, 10), moved = strtoll(sf_db_get(res, r, 3), NULL, 10);
        if (gone > 0) {
            snprintf(msg, sizeof msg, "symbol: no data set %s %s any more", sf_db_get(res, r, 0), sf_db_get(res, r, 1));
            ok = bad(req, 404, "dataset_not_found", "symbol", msg);
        } else if (moved > 0) {
            snprintf(msg, sizeof msg,
                     "%lld matched jobs ran on a version of data set %s %s that an import replaced (or on an "
                     "unrecorded one): ask for \"latest\": true to run them on the data set as it is now",
                     moved, sf_db_get(res, r, 0), sf_db_get(res, r, 1));
            ok = bad(req, 409, "dataset_changed", "latest", msg);
        }
    }
    sf_db_res_free(res);
    return ok;
}

/* No matched job is high priority when the user's tier may not ask for it
 * (tiers.h: the submit routes' rule); answers 400 and returns 0 then. */
static int matched_priority_ok(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const sf_joblist_query *ids)
{
    if (strcmp(user->tier, "free") != 0)
        return 1;
    sf_db_res *res = over_matched(
        app, req, ids, "SELECT count(*) FILTER (WHERE j.priority = 0 AND $%1$d::boolean IS NOT NULL)" RERUN_FROM, 0);
    long long high = res ? strtoll(sf_db_get(res, 0, 0), NULL, 10) : -1;
    sf_db_res_free(res);
    if (high == 0)
        return 1;
    if (high > 0)
        api_tier_priority_ok(req, user, 0); /* answers 400 priority_not_allowed */
    return 0;
}

/* One transaction: the quota check for n jobs (tiers.h; q->refused: rolled
 * back, nothing inserted), the INSERT ... SELECT and NOTIFY. */
static sf_status insert_reruns(api_app *app, sf_db *db, const sf_auth_user *user, const sf_joblist_query *ids,
                               int latest, int64_t n_jobs, api_quota *q, int64_t *created, sf_err *err)
{
    int64_t cap = app->cfg->max_attempts_cap;
    char sql[sizeof ids->sql + 2048], capt[24];
    const char *p[SF_JOBLIST_PARAMS_MAX + 2];
    int n = ids->nparams;
    memcpy(p, ids->params, sizeof(p[0]) * (size_t)n);
    p[n] = latest ? "true" : "false";
    snprintf(capt, sizeof capt, "%lld", (long long)cap);
    p[n + 1] = capt;
    snprintf(
        sql, sizeof sql,
        "INSERT INTO jobs (user_id, priority, logic, symbol, timeframe, from_ts, to_ts, max_attempts, "
        "logic_hash, logic_id, dataset_version, rerun_of, logic_version) SELECT j.user_id, j.priority, " RERUN_LOGIC
        ", "
        "j.symbol, j.timeframe, j.from_ts, j.to_ts, least(j.max_attempts, $%3$d::integer), "
        "encode(sha256(convert_to(" RERUN_LOGIC
        "::text, 'UTF8')), 'hex'), j.logic_id, d.version, j.id, " RERUN_VERSION RERUN_FROM
        " ORDER BY j.created_at, j.id",
        n + 1, ids->sql, n + 2);
    sf_db_res *res = NULL;
    sf_status st = sf_db_begin(db, err);
    if (st == SF_OK)
        st = api_quota_check(app, db, user, n_jobs, q, err);
    if (st == SF_OK && q->refused) {
        sf_db_rollback(db);
        return SF_OK;
    }
    if (st == SF_OK)
        st = sf_db_query(db, sql, n + 2, p, &res, err);
    if (st == SF_OK)
        *created = sf_db_affected(res);
    if (st == SF_OK)
        st = sf_db_exec(db, "NOTIFY sf_jobs", err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK)
        sf_db_rollback(db);
    sf_db_res_free(res);
    return st;
}

/* The bounded count; answers 400 rerun_too_large (returns -1) above max. */
static int64_t matched_count(api_app *app, sf_httpd_req *req, const sf_joblist_filter *f)
{
    sf_joblist_query q;
    sf_err err = {0};
    int64_t max = app->cfg->rerun_max;
    if (sf_joblist_count(f, max, &q, &err) != SF_OK) {
        bad(req, 400, "invalid_request", NULL, err.msg);
        return -1;
    }
    sf_db_res *res = query(app, req, q.sql, q.nparams, q.params);
    int64_t n = res ? strtoll(sf_db_get(res, 0, 0), NULL, 10) : -1;
    sf_db_res_free(res);
    if (n > max) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "the filter matches more than %lld jobs (RERUN_MAX): narrow it (status, logic, symbol, since, until)",
                 (long long)max);
        bad(req, 400, "rerun_too_large", NULL, msg);
        return -1;
    }
    return n;
}

static void filter_rerun(api_app *app, sf_httpd_req *req, const sf_auth_user *user, api_filter *a, int latest,
                         int dry_run)
{
    int64_t n = matched_count(app, req, &a->f), created = 0;
    api_quota quota = {0};
    sf_joblist_query ids;
    sf_err err = {0};
    sf_db *db = NULL;
    if (n < 0)
        return;
    if (dry_run) {
        api_reply_json(app, req, 200,
                       json_pack("{s:b, s:I, s:I}", "dry_run", 1, "matched", (json_int_t)n, "max",
                                 (json_int_t)app->cfg->rerun_max));
        return;
    }
    if (n == 0) {
        bad(req, 409, "nothing_to_rerun", NULL, "the filter matches no job");
        return;
    }
    sf_status st = sf_joblist_ids(&a->f, &ids, &err);
    if (st != SF_OK || !matched_logics_valid(app, req, &ids, latest) ||
        !matched_datasets_valid(app, req, &ids, latest) || !matched_priority_ok(app, req, user, &ids)) {
        if (st != SF_OK)
            api_fail(app, req, st, &err);
        return;
    }
    st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = insert_reruns(app, db, user, &ids, latest, n, &quota, &created, &err);
    if (st == SF_OK && quota.refused)
        api_quota_reply(app, req, &quota);
    else if (st == SF_OK)
        api_reply_json(app, req, 202,
                       json_pack("{s:I, s:I}", "matched", (json_int_t)n, "created", (json_int_t)created));
    else
        api_fail(app, req, st, &err);
}

static const char *jtext(json_t *body, const char *key)
{
    return json_string_value(json_object_get(body, key));
}

/* Every filter field present is a string (status may be a list). */
static int filter_strings(sf_httpd_req *req, json_t *body)
{
    static const char *const F[] = {"kind", "logic", "symbol", "batch", "since", "until"};
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        json_t *v = json_object_get(body, F[i]);
        char msg[64];
        snprintf(msg, sizeof msg, "%s: must be a string", F[i]);
        if (v != NULL && !json_is_string(v))
            return bad(req, 400, "invalid_request", F[i], msg);
    }
    return 1;
}

void api_reruns(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    static const char *const KEYS[] = {"status", "kind",  "logic",  "symbol",  "batch",
                                       "since",  "until", "latest", "dry_run", NULL};
    if (!api_authenticate(app, req, &user))
        return;
    json_t *body = api_body_object(req);
    api_filter_in in = {0};
    api_filter a;
    int latest = 0, dry_run = 0;
    if (body == NULL || !api_only_keys(req, body, KEYS) || !filter_strings(req, body) ||
        !json_statuses(req, body, 0, &in) || !json_flag(req, body, "latest", &latest) ||
        !json_flag(req, body, "dry_run", &dry_run)) {
        json_decref(body);
        return;
    }
    in.kind = jtext(body, "kind");
    in.logic = jtext(body, "logic");
    in.symbol = jtext(body, "symbol");
    in.since = jtext(body, "since");
    in.until = jtext(body, "until");
    in.batch = jtext(body, "batch");
    if (in.batch && (in.kind || in.logic || in.symbol || in.since || in.until))
        bad(req, 400, "invalid_request", "batch", "batch: with a batch, only status, latest and dry_run apply");
    else if (!in.batch && !in.n_status && !in.kind && !in.logic && !in.symbol && !in.since && !in.until)
        bad(req, 400, "invalid_request", NULL,
            "give at least one filter: status, kind, logic, symbol, batch, since or until");
    else if (in.kind && strcmp(in.kind, "logic_execution") == 0)
        bad(req, 400, "invalid_request", "kind", "kind: logic executions are fired by their schedules, not re-run");
    else if (api_filter_parse(app, req, &user, &in, &a)) {
        if (in.batch) {
            for (size_t i = 0; in.n_status == 0 && i < 3; i++)
                in.status[i] = DEFAULT_STATUSES[i]; /* the default: failed, dead, cancelled */
            in.n_status = in.n_status ? in.n_status : 3;
            batch_rerun(app, req, &user, in.batch, &in, latest, dry_run);
        } else {
            a.f.kind = "backtest";
            filter_rerun(app, req, &user, &a, latest, dry_run);
        }
    }
    json_decref(body);
}
