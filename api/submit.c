/*
 * sf-api: POST /v1/backtests, and the validation both submit routes share.
 *
 * A submission is one transaction: INSERT the job (pending) and NOTIFY
 * sf_jobs, which wakes the scheduler's relay. With an Idempotency-Key header
 * the insert is ON CONFLICT (user_id, idempotency_key) DO NOTHING; a retried
 * request with the same body finds the existing job and gets it back (200),
 * the same key with a different body is 409.
 */
#include "api.h"
#include "lists.h"
#include "stored.h"
#include "tiers.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/dataset.h"
#include "sf/engine.h"
#include "sf/logic.h"
#include "sf/time.h"

#define IDEMPOTENCY_KEY_MAX 200

static const char *const PRIORITIES[] = {"high", "normal", "low"};

static int bad_field(sf_httpd_req *req, const char *field, const char *message)
{
    char msg[SF_ERR_MSG_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", field, message);
    sf_httpd_reply_error(req, 400, "invalid_request", msg, field);
    return 0;
}

/* An optional ISO-8601 time field into *secs; *has = 0 when absent. */
static int parse_time_field(sf_httpd_req *req, json_t *body, const char *field, int *has, int64_t *secs)
{
    json_t *v = json_object_get(body, field);
    *has = 0;
    if (v == NULL || json_is_null(v))
        return 1;
    if (!json_is_string(v))
        return bad_field(req, field, "must be an ISO-8601 UTC time such as \"2024-01-01T00:00:00Z\"");
    sf_err err = {0};
    if (sf_time_parse_iso8601(json_string_value(v), json_string_length(v), secs, &err) != SF_OK)
        return bad_field(req, field, err.msg);
    *has = 1;
    return 1;
}

static int parse_name(sf_httpd_req *req, json_t *body, const char *field, const char **out)
{
    json_t *v = json_object_get(body, field);
    if (!json_is_string(v))
        return bad_field(req, field, "required (a string)");
    sf_err err = {0};
    sf_status st = strcmp(field, "symbol") == 0 ? sf_dataset_validate_symbol(json_string_value(v), &err)
                                                : sf_dataset_validate_timeframe(json_string_value(v), &err);
    if (st != SF_OK) {
        sf_httpd_reply_error(req, 400, "invalid_request", err.msg, field);
        return 0;
    }
    *out = json_string_value(v);
    return 1;
}

static int parse_priority(sf_httpd_req *req, json_t *body, int *out)
{
    json_t *v = json_object_get(body, "priority");
    *out = 1;
    if (v == NULL)
        return 1;
    for (int i = 0; json_is_string(v) && i < 3; i++)
        if (strcmp(json_string_value(v), PRIORITIES[i]) == 0) {
            *out = i;
            return 1;
        }
    return bad_field(req, "priority", "must be \"high\", \"normal\" or \"low\"");
}

/* 1 .. MAX_ATTEMPTS_CAP; 3 (or the cap when lower) when absent. */
static int parse_attempts(api_app *app, sf_httpd_req *req, json_t *body, int *out)
{
    json_t *v = json_object_get(body, "max_attempts");
    int64_t cap = app->cfg->max_attempts_cap;
    *out = cap < 3 ? (int)cap : 3;
    if (v == NULL)
        return 1;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > cap) {
        char msg[96];
        snprintf(msg, sizeof msg, "must be an integer from 1 to %lld (MAX_ATTEMPTS_CAP)", (long long)cap);
        return bad_field(req, "max_attempts", msg);
    }
    *out = (int)json_integer_value(v);
    return 1;
}

static int parse_idempotency_key(sf_httpd_req *req, const char **out)
{
    const char *k = sf_httpd_header(req, "Idempotency-Key");
    *out = NULL;
    if (k == NULL)
        return 1;
    size_t n = strlen(k);
    int ok = n >= 1 && n <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; i < n && ok; i++)
        ok = k[i] > 0x20 && k[i] < 0x7f;
    if (!ok) {
        sf_httpd_reply_error(req, 400, "invalid_request",
                             "Idempotency-Key: must be 1 to 200 printable ASCII characters", "Idempotency-Key");
        return 0;
    }
    *out = k;
    return 1;
}

static int check_dataset(api_app *app, sf_httpd_req *req, sf_db *db, api_submit_common *c)
{
    sf_err err = {0};
    sf_status st = sf_dataset_version(db, c->symbol, c->timeframe, &c->dataset_version, &err);
    if (st == SF_ERR_NOTFOUND) {
        char msg[160];
        snprintf(msg, sizeof msg, "symbol: no data set %s %s (import it with sfctl data import)", c->symbol,
                 c->timeframe);
        sf_httpd_reply_error(req, 404, "dataset_not_found", msg, "symbol");
        return 0;
    }
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    return 1;
}

/* 400 when the requested range holds no bar of the data set (the worker
 * would fail the job with "no bars in the requested range"). */
static int check_range(api_app *app, sf_httpd_req *req, sf_db *db, const api_submit_common *c, int64_t from, int64_t to)
{
    int has = 0;
    sf_err err = {0};
    sf_status st = sf_dataset_has_bars(db, c->symbol, c->timeframe, from, to, &has, &err);
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    if (has)
        return 1;
    sf_dataset_info info;
    char f[32] = "the start", t[32] = "the end", first[32] = "?", last[32] = "?", msg[320];
    if (from != INT64_MIN)
        sf_time_format_iso8601(from, f, sizeof f);
    if (to != INT64_MAX)
        sf_time_format_iso8601(to, t, sizeof t);
    if (sf_dataset_get(db, c->symbol, c->timeframe, &info, &err) == SF_OK) {
        sf_time_format_iso8601(info.first_ts, first, sizeof first);
        sf_time_format_iso8601(info.last_ts, last, sizeof last);
    }
    snprintf(msg, sizeof msg, "%s: data set %s %s has no bars from %s to %s (its bars span %s to %s)",
             from != INT64_MIN ? "from" : "to", c->symbol, c->timeframe, f, t, first, last);
    sf_httpd_reply_error(req, 400, "no_bars_in_range", msg, from != INT64_MIN ? "from" : "to");
    return 0;
}

/* c->bars: the bars of from..to, estimated from the data set's count and
 * span as if evenly spread (rounded up; every bar when the range covers the
 * span). The worker checks the exact count. */
static int range_bars(api_app *app, sf_httpd_req *req, sf_db *db, api_submit_common *c, int64_t from, int64_t to)
{
    sf_dataset_info info;
    sf_err err = {0};
    sf_status st = sf_dataset_get(db, c->symbol, c->timeframe, &info, &err);
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    c->bars = info.bars;
    int64_t lo = from > info.first_ts ? from : info.first_ts, hi = to < info.last_ts ? to : info.last_ts;
    if (info.last_ts > info.first_ts && (lo > info.first_ts || hi < info.last_ts) && hi >= lo) {
        double share = ((double)hi - (double)lo) / ((double)info.last_ts - (double)info.first_ts);
        c->bars = (int64_t)ceil(share * (double)info.bars) + 1;
        c->bars = c->bars < info.bars ? c->bars : info.bars;
    }
    return 1;
}

/* Text of an optional time for SQL (to_timestamp($n::bigint)); NULL when absent. */
static const char *time_param(int has, int64_t secs, char *buf, size_t size)
{
    if (!has)
        return NULL;
    snprintf(buf, size, "%lld", (long long)secs);
    return buf;
}

int api_submit_common_parse(api_app *app, sf_httpd_req *req, sf_db *db, json_t *body, api_submit_common *c)
{
    int has_from = 0, has_to = 0;
    int64_t from = 0, to = 0;
    memset(c, 0, sizeof *c);
    if (!parse_name(req, body, "symbol", &c->symbol) || !parse_name(req, body, "timeframe", &c->timeframe) ||
        !parse_time_field(req, body, "from", &has_from, &from) || !parse_time_field(req, body, "to", &has_to, &to) ||
        !parse_priority(req, body, &c->priority) || !parse_attempts(app, req, body, &c->max_attempts) ||
        !parse_idempotency_key(req, &c->idempotency_key))
        return 0;
    if (has_from && has_to && from > to)
        return bad_field(req, "to", "must not be before from");
    c->from = time_param(has_from, from, c->from_buf, sizeof c->from_buf);
    c->to = time_param(has_to, to, c->to_buf, sizeof c->to_buf);
    if (!check_dataset(app, req, db, c))
        return 0;
    /* without a range the whole data set is asked for: an import has at least one bar */
    if ((has_from || has_to) && !check_range(app, req, db, c, has_from ? from : INT64_MIN, has_to ? to : INT64_MAX))
        return 0;
    return range_bars(app, req, db, c, has_from ? from : INT64_MIN, has_to ? to : INT64_MAX);
}

int api_check_run_size(sf_httpd_req *req, const api_config *cfg, const sf_logic *logic, const api_submit_common *c,
                       int keep_equity)
{
    size_t need = sf_engine_working_set(logic, (size_t)c->bars, keep_equity);
    if (need <= ((size_t)cfg->run_max_mb << 20))
        return 1;
    char msg[256];
    snprintf(msg, sizeof msg,
             "logic: a run over the %lld bars of %s %s in the range needs about %zu MiB, more than "
             "SF_RUN_MAX_MB (%lld MiB): use fewer indicators or a shorter range",
             (long long)c->bars, c->symbol, c->timeframe, (need >> 20) + 1, (long long)cfg->run_max_mb);
    sf_httpd_reply_error(req, 400, "run_too_big", msg, "logic");
    return 0;
}

/* ---- POST /v1/backtests ------------------------------------------------------ */

static const char *const BACKTEST_KEYS[] = {"logic", "logic_id", "logic_version", "symbol",       "timeframe",
                                            "from",  "to",       "priority",      "max_attempts", NULL};

/* The logic text from "logic" (an object) or "logic_id" (a stored logic of
 * this user, at "logic_version" or its current version: ref gets which).
 * Returns a malloc'd string, or NULL after answering. */
static char *logic_text(api_app *app, sf_httpd_req *req, sf_db *db, json_t *body, const sf_auth_user *user,
                        api_logic_ref *ref)
{
    json_t *logic = json_object_get(body, "logic");
    json_t *id = json_object_get(body, "logic_id");
    if ((logic == NULL) == (id == NULL)) {
        bad_field(req, "logic", "give exactly one of logic (an object) and logic_id");
        return NULL;
    }
    if (logic != NULL && json_object_get(body, "logic_version") != NULL) {
        bad_field(req, "logic_version", "only with logic_id");
        return NULL;
    }
    if (logic != NULL) {
        if (!json_is_object(logic)) {
            bad_field(req, "logic", "must be a JSON object");
            return NULL;
        }
        char *t = json_dumps(logic, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (t == NULL)
            api_fail(app, req, SF_ERR_NOMEM, NULL);
        return t;
    }
    if (!api_logic_ref_resolve(app, req, db, user, body, ref))
        return NULL;
    char *t = ref->text;
    ref->text = NULL;
    return t;
}

typedef struct submitted {
    char id[SF_AUTH_ID_MAX];
    char status[16];
    int replay;      /* the idempotency key matched an earlier identical request */
    int conflict;    /* the key matched a different request */
    api_quota quota; /* quota.refused: over a quota, nothing inserted (tiers.h) */
} submitted;

static sf_status insert_job(sf_db *db, const sf_auth_user *user, const api_submit_common *c, const char *logic,
                            const api_origin *origin, submitted *out, sf_err *err)
{
    char prio[4], attempts[8], version[24], lversion[24];
    snprintf(prio, sizeof prio, "%d", c->priority);
    snprintf(attempts, sizeof attempts, "%d", c->max_attempts);
    snprintf(version, sizeof version, "%lld", (long long)c->dataset_version);
    snprintf(lversion, sizeof lversion, "%lld", (long long)origin->logic_version);
    const char *p[] = {user->id,
                       prio,
                       logic,
                       c->symbol,
                       c->timeframe,
                       c->from,
                       c->to,
                       attempts,
                       c->idempotency_key,
                       origin->logic_id,
                       version,
                       origin->rerun_of,
                       origin->logic_id && origin->logic_version > 0 ? lversion : NULL};
    sf_db_res *res = NULL;
    /* on every submission's path to a worker: prepared once per connection */
    sf_status st = sf_db_query_prepared(
        db,
        "INSERT INTO jobs (user_id, priority, logic, symbol, timeframe, from_ts, to_ts, max_attempts, "
        "idempotency_key, logic_hash, logic_id, dataset_version, rerun_of, logic_version) VALUES ($1::uuid, "
        "$2::smallint, $3::jsonb, $4, $5, to_timestamp($6::bigint), to_timestamp($7::bigint), $8::integer, $9, "
        "encode(sha256(convert_to($3::jsonb::text, 'UTF8')), 'hex'), $10::uuid, $11::integer, $12::uuid, "
        "$13::integer) "
        "ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
        "RETURNING id, status",
        13, p, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0) {
        sf_db_res_free(res);
        st = sf_db_query(db,
                         "SELECT id, status, (logic = $3::jsonb AND symbol = $4 AND timeframe = $5 AND "
                         "from_ts IS NOT DISTINCT FROM to_timestamp($6::bigint) AND "
                         "to_ts IS NOT DISTINCT FROM to_timestamp($7::bigint) AND priority = $2::smallint AND "
                         "max_attempts = $8::integer) FROM jobs WHERE user_id = $1::uuid AND idempotency_key = $9",
                         9, p, &res, err);
        if (st == SF_OK && sf_db_nrows(res) == 1) {
            out->replay = strcmp(sf_db_get(res, 0, 2), "t") == 0;
            out->conflict = !out->replay;
        }
    }
    if (st == SF_OK && sf_db_nrows(res) == 1) {
        snprintf(out->id, sizeof out->id, "%s", sf_db_get(res, 0, 0));
        snprintf(out->status, sizeof out->status, "%s", sf_db_get(res, 0, 1));
    } else if (st == SF_OK) {
        st = sf_err_set(err, SF_ERR_INTERNAL, "job insert returned no row");
    }
    sf_db_res_free(res);
    return st;
}

/* One transaction: the quota check (tiers.h), insert + NOTIFY; over a
 * quota (and not a replay) it rolls back with out->quota.refused set. */
static sf_status submit_job(api_app *app, sf_db *db, const sf_auth_user *user, const api_submit_common *c,
                            const char *logic, const api_origin *origin, submitted *out, sf_err *err)
{
    sf_status st = sf_db_begin(db, err);
    if (st != SF_OK)
        return st;
    st = api_quota_check(app, db, user, 1, &out->quota, err);
    if (st == SF_OK)
        st = insert_job(db, user, c, logic, origin, out, err);
    out->quota.refused &= st == SF_OK && !out->replay && !out->conflict;
    if (out->quota.refused) {
        sf_db_rollback(db);
        return SF_OK;
    }
    if (st == SF_OK && !out->replay && !out->conflict)
        st = sf_db_exec(db, "NOTIFY sf_jobs", err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK)
        sf_db_rollback(db);
    return st;
}

static void reply_submitted(api_app *app, sf_httpd_req *req, const submitted *s)
{
    if (s->quota.refused) {
        api_quota_reply(app, req, &s->quota);
        return;
    }
    if (s->conflict) {
        sf_httpd_reply_error(req, 409, "idempotency_conflict", "Idempotency-Key: already used for a different request",
                             "Idempotency-Key");
        return;
    }
    char self[96], result[112];
    snprintf(self, sizeof self, "/v1/jobs/%s", s->id);
    snprintf(result, sizeof result, "/v1/jobs/%s/result", s->id);
    sf_httpd_set_header(req, "Location", self, NULL);
    api_reply_json(app, req, s->replay ? 200 : 202,
                   json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", s->id, "status", s->status, "links", "self", self,
                             "result", result));
}

int api_dataset_pinned(sf_httpd_req *req, const api_submit_common *c, const api_origin *origin)
{
    if (origin->dataset_version <= 0 || origin->dataset_version == c->dataset_version)
        return 1;
    char msg[320];
    snprintf(msg, sizeof msg,
             "data set %s %s is at version %lld; the original ran on version %lld, whose bars an import "
             "replaced: ask for \"latest\": true to run on version %lld",
             c->symbol, c->timeframe, (long long)c->dataset_version, (long long)origin->dataset_version,
             (long long)c->dataset_version);
    sf_httpd_reply_error(req, 409, "dataset_changed", msg, "latest");
    return 0;
}

void api_backtest_submit_body(api_app *app, sf_httpd_req *req, const sf_auth_user *user, json_t *body,
                              const api_origin *origin)
{
    api_origin none = {0};
    if (origin == NULL)
        origin = &none;
    api_origin o = *origin;
    api_logic_ref ref = {0};
    sf_db *db = NULL;
    sf_err err = {0};
    sf_status st = api_db(app, &db, &err);
    char *logic = st == SF_OK ? logic_text(app, req, db, body, user, &ref) : NULL;
    if (ref.version > 0) { /* submitted by a stored logic: it and its version are recorded */
        o.logic_id = ref.id;
        o.logic_version = ref.version;
    }
    api_submit_common c;
    submitted s = {0};
    sf_logic *parsed = NULL;
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    else if (logic != NULL && api_logic_valid(app, req, "logic", logic, &parsed) &&
             api_submit_common_parse(app, req, db, body, &c) && api_tier_priority_ok(req, user, c.priority) &&
             api_dataset_pinned(req, &c, &o) && api_check_run_size(req, app->cfg, parsed, &c, 1)) {
        st = submit_job(app, db, user, &c, logic, &o, &s, &err);
        if (st == SF_OK)
            reply_submitted(app, req, &s);
        else
            api_fail(app, req, st, &err);
    }
    sf_logic_free(parsed);
    free(logic);
}

void api_backtest_submit(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    json_t *body = api_body_object(req);
    if (body != NULL && api_only_keys(req, body, BACKTEST_KEYS))
        api_backtest_submit_body(app, req, &user, body, NULL);
    json_decref(body);
}
