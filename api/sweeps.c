/*
 * sf-api: POST /v1/sweeps, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel.
 *
 * A sweep is checked before anything is stored, cheap checks first: the
 * fields, the grid and its size against SWEEP_MAX_COMBINATIONS (counted
 * before its values are built), the data set and the range
 * (api_submit_common_parse), then the logic and its members through one
 * cursor within a work budget and SWEEP_CHECK_MS of the request's start
 * (sf_grid_check: the whole grid when it fits, else every value of every
 * path and an even spread). So compiling holds no API thread for long,
 * whatever the grid; a member left unchecked is compiled by the worker that
 * runs it, which fails it (permanently, with its error) when it does not
 * compile. The 202 answer says how many members were checked ("checked").
 * The compile and the INSERT (seconds for 100,000 members) run in one of
 * SWEEP_CONCURRENCY slots, 503 busy when none is free, so that sweeps never
 * hold every API thread. Then one transaction inserts the batch, its N member
 * jobs (combo_index 0..N-1, logic NULL) with one INSERT ... SELECT
 * generate_series, and NOTIFY sf_jobs. Member ids are ordered: one
 * time-ordered base per batch with the combo_index in its last four bytes
 * (sf_member_id, migration 0016), so the insert, the relay and the
 * completions write neighbouring index pages instead of random ones.
 * batches.grid is json (not jsonb), so
 * the grid keeps its key order and members are numbered as the submitter's
 * grid text says (the same numbering as the local sfctl sweep). Members
 * store compact results; detail_top (default 10, 0 to 100) is how many of
 * the best, by rank_by, get their trades and curves when the sweep finishes
 * (sf/detail.h).
 */
#include "api.h"
#include "lists.h"
#include "stored.h"
#include "tiers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/batchfit.h"
#include "sf/detail.h"
#include "sf/grid.h"
#include "sf/job.h"
#include "sf/overfit.h"
#include "sf/rank.h"
#include "sf/time.h"

#define CANCEL_PUBLISH_MAX 1000

static const char *const SWEEP_KEYS[] = {"logic",      "grid",          "symbol",
                                         "timeframe",  "from",          "to",
                                         "rank_by",    "priority",      "max_attempts",
                                         "detail_top", "blocks",        "effective_trials",
                                         "logic_id",   "logic_version", NULL};

typedef struct sweep_req {
    char *logic; /* compact JSON text */
    char *grid_text;
    sf_grid *grid;
    const char *rank_by;
    char detail_top[24];        /* best members whose trades and curves are kept (sf/detail.h) */
    char blocks[8];             /* S of the overfitting statistics (sf/overfit.h) */
    char trials[24];            /* the DSR's effective trials; "" = the members */
    sf_grid_check_report check; /* members the API compiled */
} sweep_req;

static void sweep_req_free(sweep_req *s)
{
    free(s->logic);
    free(s->grid_text);
    sf_grid_free(s->grid);
}

static int bad(sf_httpd_req *req, const char *code, const char *field, const char *msg)
{
    sf_httpd_reply_error(req, 400, code, msg, field);
    return 0;
}

static void reply_grid_errors(api_app *app, sf_httpd_req *req, size_t bad_index, const sf_logic_errors *errs,
                              const sf_err *err)
{
    json_t *list = json_array();
    for (int i = 0; i < errs->count; i++)
        json_array_append_new(list, json_pack("{s:s, s:s}", "field", errs->path[i], "message", errs->message[i]));
    json_t *e =
        json_pack("{s:s, s:s, s:s, s:o}", "code", "invalid_grid", "message", err->msg, "field", "grid", "errors", list);
    if (bad_index != (size_t)-1)
        json_object_set_new(e, "combination", json_integer((json_int_t)bad_index));
    api_reply_json(app, req, 400, json_pack("{s:o}", "error", e));
}

/* detail_top: 0 to SF_DETAIL_TOP_MAX, SF_DETAIL_TOP_DEFAULT when absent;
 * answers 400 and returns 0 when bad. */
static int detail_top_arg(sf_httpd_req *req, json_t *body, sweep_req *s)
{
    json_t *k = json_object_get(body, "detail_top");
    json_int_t n = k ? json_integer_value(k) : SF_DETAIL_TOP_DEFAULT;
    if (k != NULL && (!json_is_integer(k) || n < 0 || n > SF_DETAIL_TOP_MAX))
        return bad(req, "invalid_request", "detail_top", "detail_top: must be an integer from 0 to 100");
    snprintf(s->detail_top, sizeof s->detail_top, "%lld", (long long)n);
    return 1;
}

/* blocks (even, 2 to 32, default 16) and effective_trials (1 or more;
 * absent: the number of members), for PBO and DSR (sf/overfit.h); answers
 * 400 and returns 0 when bad. */
static int overfit_args(sf_httpd_req *req, json_t *body, sweep_req *s)
{
    json_t *k = json_object_get(body, "blocks"), *t = json_object_get(body, "effective_trials");
    json_int_t n = k ? json_integer_value(k) : SF_OVERFIT_BLOCKS_DEFAULT;
    sf_err err = {0};
    if (k != NULL && (!json_is_integer(k) || sf_overfit_blocks_check(n, &err) != SF_OK))
        return bad(req, "invalid_request", "blocks", "blocks: must be an even integer from 2 to 32");
    if (t != NULL && !json_is_null(t) && (!json_is_integer(t) || json_integer_value(t) < 1))
        return bad(req, "invalid_request", "effective_trials", "effective_trials: must be an integer of 1 or more");
    snprintf(s->blocks, sizeof s->blocks, "%lld", (long long)n);
    if (t != NULL && !json_is_null(t))
        snprintf(s->trials, sizeof s->trials, "%lld", (long long)json_integer_value(t));
    return 1;
}

/* The fields that cost nothing to check: logic and grid are objects, rank_by,
 * detail_top, blocks and effective_trials; answers 400 and returns 0 when bad. */
static int sweep_fields(sf_httpd_req *req, json_t *body, sweep_req *s)
{
    json_t *rank = json_object_get(body, "rank_by");
    if (!json_is_object(json_object_get(body, "logic")))
        return bad(req, "invalid_request", "logic", "logic: required (a JSON object)");
    if (!json_is_object(json_object_get(body, "grid")))
        return bad(req, "invalid_request", "grid", "grid: required (a JSON object of path: values)");
    s->rank_by = rank ? json_string_value(rank) : SF_RANK_DEFAULT;
    if (sf_rank_find(s->rank_by) == NULL)
        return bad(req, "invalid_request", "rank_by", "rank_by: must be a metric: " SF_RANK_LIST);
    return detail_top_arg(req, body, s) && overfit_args(req, body, s);
}

/* The texts, and the grid parsed with its size limit (nothing compiled:
 * its values are counted before any is built); answers on failure. */
static int sweep_grid(api_app *app, sf_httpd_req *req, json_t *body, sweep_req *s)
{
    s->logic = json_dumps(json_object_get(body, "logic"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    s->grid_text = json_dumps(json_object_get(body, "grid"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    sf_err err = {0};
    if (s->logic == NULL || s->grid_text == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return 0;
    }
    sf_status st = sf_grid_parse(s->grid_text, strlen(s->grid_text), (size_t)app->cfg->sweep_max, &s->grid, &err);
    if (st == SF_ERR_LIMIT)
        return bad(req, "sweep_too_large", "grid", err.msg);
    if (st != SF_OK) {
        char msg[SF_ERR_MSG_MAX + 8];
        snprintf(msg, sizeof msg, "grid: %s", err.msg);
        return bad(req, "invalid_grid", "grid", msg);
    }
    return 1;
}

/* The logic, then as many members as sf_grid_check's work budget and the
 * request's deadline allow (the workers compile every member anyway and fail
 * one that does not compile); answers 400 and returns 0 when one fails. */
static int sweep_compile(api_app *app, sf_httpd_req *req, int64_t deadline_ms, const api_submit_common *c, sweep_req *s)
{
    sf_logic_errors *errs = calloc(1, sizeof *errs);
    if (errs == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return 0;
    }
    size_t bad_index = 0;
    sf_logic *parsed = NULL;
    sf_err err = {0};
    sf_status st = sf_logic_parse(s->logic, strlen(s->logic), &parsed, errs, &err);
    /* members keep no curve; a member's other values change only scratch, which the workers check */
    int fits = st != SF_OK || api_check_run_size(req, app->cfg, parsed, c, 0);
    sf_logic_free(parsed);
    if (!fits) {
        free(errs);
        return 0;
    }
    sf_grid_check_opts o = {.work = SF_GRID_CHECK_WORK_DEFAULT, .deadline_ms = deadline_ms};
    if (st != SF_OK && errs->count > 0)
        api_reply_logic_errors(app, req, "logic", errs);
    else if (st != SF_OK)
        bad(req, "invalid_logic", "logic", err.msg);
    else if ((st = sf_grid_check(s->grid, s->logic, strlen(s->logic), &o, &s->check, &bad_index, errs, &err)) != SF_OK)
        reply_grid_errors(app, req, bad_index, errs, &err);
    free(errs);
    return st == SF_OK;
}

typedef struct batch_out {
    char id[SF_AUTH_ID_MAX];
    long long total;
    int replay, conflict;
    api_quota quota; /* quota.refused: over a quota, nothing inserted (tiers.h) */
} batch_out;

static sf_status insert_batch(sf_db *db, const sf_auth_user *user, const api_submit_common *c, const sweep_req *s,
                              const api_origin *origin, batch_out *out, sf_err *err)
{
    char total[24], version[24], lversion[24];
    snprintf(total, sizeof total, "%zu", origin->members_of ? (size_t)origin->total : sf_grid_size(s->grid));
    snprintf(lversion, sizeof lversion, "%lld", (long long)origin->logic_version);
    snprintf(version, sizeof version, "%lld", (long long)c->dataset_version);
    const char *p[] = {user->id,
                       s->logic,
                       s->grid_text,
                       c->symbol,
                       c->timeframe,
                       total,
                       s->rank_by,
                       c->idempotency_key,
                       s->detail_top,
                       version,
                       origin->rerun_of,
                       s->blocks,
                       s->trials[0] ? s->trials : NULL,
                       origin->logic_id,
                       origin->logic_version > 0 ? lversion : NULL};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total, rank_by, "
                               "idempotency_key, detail_top, logic_hash, dataset_version, rerun_of, blocks, "
                               "effective_trials, logic_id, logic_version) VALUES "
                               "($1::uuid, $2::jsonb, $3::json, $4, $5, $6::integer, $7, $8, $9::integer, "
                               "encode(sha256(convert_to($2::jsonb::text, 'UTF8')), 'hex'), $10::integer, $11::uuid, "
                               "$12::smallint, $13::bigint, $14::uuid, $15::integer) "
                               "ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id, total",
                               15, p, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0) {
        sf_db_res_free(res);
        st = sf_db_query(db,
                         "SELECT id, total, (logic = $2::jsonb AND grid::text = $3 AND symbol = $4 AND "
                         "timeframe = $5 AND total = $6::integer AND rank_by = $7 AND "
                         "detail_top = $9::integer) FROM batches "
                         "WHERE user_id = $1::uuid AND idempotency_key = $8",
                         9, p, &res, err);
        if (st == SF_OK && sf_db_nrows(res) == 1) {
            out->replay = strcmp(sf_db_get(res, 0, 2), "t") == 0;
            out->conflict = !out->replay;
        }
    }
    if (st == SF_OK && sf_db_nrows(res) != 1)
        st = sf_err_set(err, SF_ERR_INTERNAL, "batch insert returned no row");
    if (st == SF_OK) {
        snprintf(out->id, sizeof out->id, "%s", sf_db_get(res, 0, 0));
        out->total = strtoll(sf_db_get(res, 0, 1), NULL, 10);
    }
    sf_db_res_free(res);
    return st;
}

/* The members: combo_index 0..total-1; for a batch rerun, the combo_index
 * of each old member in the statuses asked for (rerun_of = that member),
 * and the batch's total set to how many there were at the insert. */
static sf_status insert_members(sf_db *db, const sf_auth_user *user, const api_submit_common *c, const batch_out *b,
                                const api_origin *origin, sf_err *err)
{
    char prio[4], attempts[8], total[24], version[24];
    snprintf(prio, sizeof prio, "%d", c->priority);
    snprintf(attempts, sizeof attempts, "%d", c->max_attempts);
    snprintf(total, sizeof total, "%lld", b->total);
    snprintf(version, sizeof version, "%lld", (long long)c->dataset_version);
    const char *p[] = {user->id, prio,     b->id, c->symbol, c->timeframe,       c->from,
                       c->to,    attempts, total, version,   origin->members_of, origin->statuses};
    if (origin->members_of == NULL)
        return sf_db_query(db,
                           "INSERT INTO jobs (id, user_id, priority, batch_id, combo_index, symbol, timeframe, "
                           "from_ts, to_ts, max_attempts, dataset_version, logic_hash) SELECT sf_member_id(k.base, g), "
                           "$1::uuid, $2::smallint, $3::uuid, g, $4, $5, to_timestamp($6::bigint), "
                           "to_timestamp($7::bigint), $8::integer, $10::integer, "
                           "(SELECT logic_hash FROM batches WHERE id = $3::uuid) "
                           "FROM (SELECT sf_uuid7() AS base) k, generate_series(0, $9::integer - 1) AS g",
                           10, p, NULL, err);
    return sf_db_query(db,
                       "WITH m AS (INSERT INTO jobs (id, user_id, priority, batch_id, combo_index, symbol, "
                       "timeframe, from_ts, to_ts, max_attempts, dataset_version, logic_hash, rerun_of) "
                       "SELECT sf_member_id(k.base, o.combo_index), $1::uuid, $2::smallint, $3::uuid, "
                       "o.combo_index, $4, $5, to_timestamp($6::bigint), to_timestamp($7::bigint), $8::integer, "
                       "$10::integer, (SELECT logic_hash FROM batches WHERE id = $3::uuid), o.id "
                       "FROM (SELECT sf_uuid7() AS base) k, jobs o WHERE o.batch_id = $11::uuid "
                       "AND o.status = ANY($12::job_status[]) AND $9::integer >= 0 ORDER BY o.combo_index "
                       "RETURNING 1) UPDATE batches SET total = (SELECT count(*) FROM m) WHERE id = $3::uuid",
                       12, p, NULL, err);
}

/* The members a submission adds: the grid's, or a batch rerun's count. */
static int64_t sweep_members(const sweep_req *s, const api_origin *origin)
{
    return origin->members_of ? origin->total : (int64_t)sf_grid_size(s->grid);
}

/* One transaction: the quota check (tiers.h), the batch, its members and
 * NOTIFY; over a quota (and not a replay) it rolls back before any member
 * is inserted, with out->quota.refused set. */
static sf_status submit_sweep(api_app *app, sf_db *db, const sf_auth_user *user, const api_submit_common *c,
                              const sweep_req *s, const api_origin *origin, batch_out *out, sf_err *err)
{
    sf_status st = sf_db_begin(db, err);
    if (st != SF_OK)
        return st;
    st = api_quota_check(app, db, user, sweep_members(s, origin), &out->quota, err);
    if (st == SF_OK)
        st = insert_batch(db, user, c, s, origin, out, err);
    out->quota.refused &= st == SF_OK && !out->replay && !out->conflict;
    if (out->quota.refused) {
        sf_db_rollback(db);
        return SF_OK;
    }
    if (st == SF_OK && !out->replay && !out->conflict) {
        st = insert_members(db, user, c, out, origin, err);
        if (st == SF_OK)
            st = sf_db_exec(db, "NOTIFY sf_jobs", err);
    }
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK)
        sf_db_rollback(db);
    return st;
}

/* One of SWEEP_CONCURRENCY slots for the costly part of a submission (the
 * compile and the member INSERT, seconds for 100,000 members), so sweeps
 * never hold every API thread; answers 503 busy (Retry-After: 1) and
 * returns 0 when none is free. sweep_slot_give returns it. */
static int sweep_slot_take(api_app *app, sf_httpd_req *req)
{
    if (atomic_fetch_add(&app->sweeps_busy, 1) < app->cfg->sweep_concurrency)
        return 1;
    atomic_fetch_sub(&app->sweeps_busy, 1);
    sf_httpd_set_header(req, "Retry-After", "1", NULL);
    sf_httpd_reply_error(req, 503, "busy", "the API is storing as many sweeps as it may at once; retry in a second",
                         NULL);
    return 0;
}

static void sweep_slot_give(api_app *app)
{
    atomic_fetch_sub(&app->sweeps_busy, 1);
}

static void reply_submitted(api_app *app, sf_httpd_req *req, const sweep_req *s, const batch_out *b)
{
    char self[96];
    snprintf(self, sizeof self, "/v1/batches/%s", b->id);
    if (b->quota.refused)
        api_quota_reply(app, req, &b->quota);
    else if (b->conflict)
        sf_httpd_reply_error(req, 409, "idempotency_conflict", "Idempotency-Key: already used for a different request",
                             "Idempotency-Key");
    else
        api_reply_json(app, req, b->replay ? 200 : 202,
                       json_pack("{s:s, s:I, s:I, s:s, s:{s:s}}", "id", b->id, "total", (json_int_t)b->total, "checked",
                                 (json_int_t)s->check.checked, "status", "pending", "links", "self", self));
}

/* "logic_id" (and "logic_version"): the stored logic's version becomes the
 * body's "logic" and the batch records both (o); answers and returns 0 when
 * it cannot be used. Without logic_id, *o is *origin. */
static int sweep_stored_logic(api_app *app, sf_httpd_req *req, const sf_auth_user *user, json_t *body,
                              const api_origin *origin, api_origin *o, api_logic_ref *ref)
{
    *o = *origin;
    if (json_object_get(body, "logic_id") == NULL)
        return json_object_get(body, "logic_version") == NULL ||
               bad(req, "invalid_request", "logic_version", "logic_version: only with logic_id");
    if (json_object_get(body, "logic") != NULL)
        return bad(req, "invalid_request", "logic", "logic: give exactly one of logic (an object) and logic_id");
    sf_db *db = NULL;
    sf_err err = {0};
    sf_status st = api_db(app, &db, &err);
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    if (!api_logic_ref_resolve(app, req, db, user, body, ref))
        return 0;
    json_t *logic = json_loads(ref->text, 0, NULL);
    if (logic == NULL) {
        api_fail(app, req, SF_ERR_INTERNAL, NULL);
        return 0;
    }
    json_object_set_new(body, "logic", logic);
    o->logic_id = ref->id;
    o->logic_version = ref->version;
    return 1;
}

/* Cheap checks first (fields, the grid's size, then the data set and the
 * range), then, in one of SWEEP_CONCURRENCY slots, the bounded compile
 * (sweep_compile) and the INSERT: a request for a data set that does not
 * exist costs a few queries, whatever its grid, and costly ones leave
 * API_THREADS - SWEEP_CONCURRENCY threads to everything else. */
void api_sweep_submit_body(api_app *app, sf_httpd_req *req, const sf_auth_user *user, json_t *body,
                           const api_origin *origin)
{
    int64_t deadline_ms = sf_time_mono_ms() + app->cfg->sweep_check_ms;
    api_origin none = {0};
    api_origin stored;
    api_logic_ref ref = {0};
    if (!sweep_stored_logic(app, req, user, body, origin ? origin : &none, &stored, &ref)) {
        api_logic_ref_free(&ref);
        return;
    }
    origin = &stored;
    sweep_req s = {0};
    sf_db *db = NULL;
    sf_err err = {0};
    api_submit_common c;
    batch_out b = {0};
    sf_status st = SF_OK;
    if (sweep_fields(req, body, &s) && sweep_grid(app, req, body, &s) && (st = api_db(app, &db, &err)) == SF_OK &&
        api_submit_common_parse(app, req, db, body, &c) && api_tier_priority_ok(req, user, c.priority) &&
        api_tier_members_ok(app, req, user, sweep_members(&s, origin)) && api_dataset_pinned(req, &c, origin) &&
        sweep_slot_take(app, req)) {
        if (sweep_compile(app, req, deadline_ms, &c, &s) &&
            (st = submit_sweep(app, db, user, &c, &s, origin, &b, &err)) == SF_OK)
            reply_submitted(app, req, &s, &b);
        sweep_slot_give(app);
    }
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    sweep_req_free(&s);
    api_logic_ref_free(&ref);
}

void api_sweep_submit(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    json_t *body = api_body_object(req);
    if (body != NULL && api_only_keys(req, body, SWEEP_KEYS))
        api_sweep_submit_body(app, req, &user, body, NULL);
    json_decref(body);
}

/* ---- GET /v1/batches/{id} -------------------------------------------------------- */

static const char *batch_id(sf_httpd_req *req)
{
    const char *id = sf_httpd_param(req, "id");
    if (!api_is_uuid(id)) {
        sf_httpd_reply_error(req, 404, "not_found", "no such batch", NULL);
        return NULL;
    }
    return id;
}

static const char BATCH_SQL[] =
    "SELECT b.id, b.symbol, b.timeframe, b.total, b.rank_by, b.cancel_requested, "
    "to_json(b.created_at)#>>'{}', b.grid::text, "
    "count(*) FILTER (WHERE j.status = 'pending'), count(*) FILTER (WHERE j.status = 'queued'), "
    "count(*) FILTER (WHERE j.status = 'running'), count(*) FILTER (WHERE j.status = 'succeeded'), "
    "count(*) FILTER (WHERE j.status = 'failed'), count(*) FILTER (WHERE j.status = 'dead'), "
    "count(*) FILTER (WHERE j.status = 'cancelled') "
    "FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id "
    "WHERE b.id = $1::uuid AND b.user_id = $2::uuid GROUP BY b.id";

static const char *const STATUSES[] = {"pending", "queued", "running", "succeeded", "failed", "dead", "cancelled"};

static json_t *batch_summary(const sf_db_res *res)
{
    json_t *counts = json_object();
    long long done = 0, total = strtoll(sf_db_get(res, 0, 3), NULL, 10);
    for (int i = 0; i < 7; i++) {
        long long n = strtoll(sf_db_get(res, 0, 8 + i), NULL, 10);
        json_object_set_new(counts, STATUSES[i], json_integer(n));
        done += i >= 3 ? n : 0;
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:s, s:o, s:I, s:f, s:s}", "id", sf_db_get(res, 0, 0), "symbol",
                     sf_db_get(res, 0, 1), "timeframe", sf_db_get(res, 0, 2), "total", (json_int_t)total, "rank_by",
                     sf_db_get(res, 0, 4), "cancel_requested", strcmp(sf_db_get(res, 0, 5), "t") == 0, "created_at",
                     sf_db_get(res, 0, 6), "counts", counts, "done", (json_int_t)done, "progress",
                     total > 0 ? (double)done / (double)total : 1.0, "status",
                     done >= total ? "finished" : "in_progress");
}

/* The best members by metrics->$2 in the metric's direction (sf/rank.h),
 * null (a non-finite value) last, ties by index: the local sweep's order. */
#define TOP_SQL(dir)                                                                                                   \
    "SELECT j.id, j.combo_index, r.metrics::text FROM jobs j JOIN results r ON r.job_id = j.id "                       \
    "WHERE j.batch_id = $1::uuid AND j.status = 'succeeded' "                                                          \
    "ORDER BY CASE WHEN jsonb_typeof(r.metrics -> $2) = 'number' THEN (r.metrics ->> $2)::float8 END " dir             \
    " NULLS LAST, j.combo_index LIMIT $3::integer"
static const char TOP_DESC_SQL[] = TOP_SQL("DESC");
static const char TOP_ASC_SQL[] = TOP_SQL("ASC");

/* One leaderboard member: rank, job id, index, params (from the grid), metrics. */
static json_t *member_json(const sf_db_res *res, int row, const sf_grid *grid)
{
    long long index = strtoll(sf_db_get(res, row, 1), NULL, 10);
    json_t *params = NULL, *metrics = api_json_from_db(sf_db_get(res, row, 2));
    sf_buf pb;
    sf_buf_init(&pb, 64 * 1024);
    if (grid && index >= 0 && sf_grid_params_json(grid, (size_t)index, &pb, NULL) == SF_OK)
        params = json_loads(sf_buf_str(&pb), 0, NULL);
    sf_buf_destroy(&pb);
    return json_pack("{s:i, s:s, s:I, s:o, s:o}", "rank", row + 1, "job_id", sf_db_get(res, row, 0), "index",
                     (json_int_t)index, "params", params ? params : json_null(), "metrics",
                     metrics ? metrics : json_null());
}

/* ?by= and ?top= (sf/rank.h); answers 400 and returns 0 when bad. */
static int leaderboard_args(sf_httpd_req *req, const char *dflt, const sf_rank_metric **by, char *top, size_t size)
{
    *by = sf_rank_find(sf_httpd_query(req, "by") ? sf_httpd_query(req, "by") : dflt);
    if (*by == NULL)
        return bad(req, "invalid_request", "by", "by: not a metric that can rank (one of " SF_RANK_LIST ")");
    size_t k = 0;
    sf_err err = {0};
    if (sf_rank_top_parse(sf_httpd_query(req, "top"), &k, &err) != SF_OK)
        return bad(req, "invalid_request", "top", err.msg);
    snprintf(top, size, "%zu", k);
    return 1;
}

static sf_status add_leaderboard(sf_db *db, const char *id, const sf_rank_metric *by, const char *top,
                                 const char *grid_text, json_t *out, sf_err *err)
{
    const char *p[] = {id, by->name, top};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, by->dir == SF_RANK_LOWER ? TOP_ASC_SQL : TOP_DESC_SQL, 3, p, &res, err);
    if (st != SF_OK)
        return st;
    sf_grid *grid = NULL;
    sf_grid_parse(grid_text, strlen(grid_text), 0, &grid, NULL);
    json_t *best = json_array();
    for (int r = 0; r < sf_db_nrows(res); r++)
        json_array_append_new(best, member_json(res, r, grid));
    sf_grid_free(grid);
    sf_db_res_free(res);
    json_object_set_new(out, "by", json_string(by->name));
    json_object_set_new(out, "best", best);
    return SF_OK;
}

/* ?overfit=1: the report of a sweep still running, computed now; answers
 * 400 and returns 0 when bad. */
static int overfit_arg(sf_httpd_req *req, int *want)
{
    const char *v = sf_httpd_query(req, "overfit");
    if (v != NULL && strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return bad(req, "invalid_request", "overfit", "overfit: 0 or 1");
    *want = v != NULL && strcmp(v, "1") == 0;
    return 1;
}

/* "overfit": the sweep's PBO, DSR and verdict (sf/batchfit.h): kept once it
 * has finished; for a sweep still running, computed on demand (?overfit=1)
 * over the members finished so far, else null. */
static sf_status add_overfit(sf_db *db, const char *id, int want, json_t *out, sf_err *err)
{
    int finished = strcmp(json_string_value(json_object_get(out, "status")), "finished") == 0;
    if (!finished && !want) {
        json_object_set_new(out, "overfit", json_null());
        return SF_OK;
    }
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    sf_status st = sf_batchfit_report(db, id, finished, &b, err);
    json_t *report = st == SF_OK ? json_loads(sf_buf_str(&b), 0, NULL) : NULL;
    sf_buf_destroy(&b);
    if (st == SF_OK && report == NULL)
        st = sf_err_set(err, SF_ERR_INTERNAL, "could not read the overfitting report");
    if (st == SF_OK)
        json_object_set_new(out, "overfit", report);
    return st;
}

void api_batch_get(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    const sf_rank_metric *by = NULL;
    if (!api_authenticate(app, req, &user) || (id = batch_id(req)) == NULL)
        return;
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *p[] = {id, user.id};
    char top[16];
    int want_overfit = 0;
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, BATCH_SQL, 2, p, &res, &err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        sf_httpd_reply_error(req, 404, "not_found", "no such batch", NULL);
    else if (st == SF_OK && leaderboard_args(req, sf_db_get(res, 0, 4), &by, top, sizeof top) &&
             overfit_arg(req, &want_overfit)) {
        json_t *out = batch_summary(res);
        st = add_leaderboard(db, id, by, top, sf_db_get(res, 0, 7), out, &err);
        if (st == SF_OK)
            st = add_overfit(db, id, want_overfit, out, &err);
        if (st == SF_OK)
            api_reply_json(app, req, 200, out);
        else
            json_decref(out);
    }
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    sf_db_res_free(res);
}

/* ---- POST /v1/batches/{id}/cancel -------------------------------------------------- */

/* Tell running members' workers at once (they would learn it by heartbeat anyway). */
static void publish_running(api_app *app, sf_db *db, const char *id)
{
    const char *p[] = {id};
    sf_db_res *res = NULL;
    sf_queue *q = NULL;
    sf_err err = {0};
    sf_status st = sf_db_query(db,
                               "SELECT id FROM jobs WHERE batch_id = $1::uuid AND status = 'running' "
                               "AND cancel_requested LIMIT 1000",
                               1, p, &res, &err);
    int n = st == SF_OK ? sf_db_nrows(res) : 0;
    const char *ids[CANCEL_PUBLISH_MAX];
    for (int i = 0; i < n && i < CANCEL_PUBLISH_MAX; i++)
        ids[i] = sf_db_get(res, i, 0);
    if (n > 0 && (st = api_queue(app, &q, NULL, &err)) == SF_OK)
        st = sf_queue_publish_cancel(q, ids, (size_t)n, &err);
    if (st != SF_OK) {
        sf_log_field f[] = {SF_LF_STR("batch_id", id), SF_LF_STR("error", err.msg), {SF_LF_END_, NULL, {0}}};
        sf_log_emit(app->log, SF_LOG_WARN, "batch cancel: not published (workers learn it by heartbeat)", f);
    }
    sf_db_res_free(res);
}

void api_batch_cancel(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = batch_id(req)) == NULL)
        return;
    sf_db *db = NULL;
    sf_err err = {0};
    int found = 0;
    int64_t cancelled = 0, requested = 0;
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_job_cancel_batch(db, id, user.id, &found, &cancelled, &requested, &err);
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return;
    }
    if (!found) {
        sf_httpd_reply_error(req, 404, "not_found", "no such batch", NULL);
        return;
    }
    if (cancelled > 0 || requested > 0)
        api_jobcache_clear(app->jobs); /* its members' next GETs read them */
    if (requested > 0)
        publish_running(app, db, id);
    api_reply_json(app, req, 200,
                   json_pack("{s:s, s:I, s:I}", "id", id, "cancelled", (json_int_t)cancelled, "cancel_requested",
                             (json_int_t)requested));
}
