/*
 * sf-api: schedules of live logic executions: POST/GET /v1/schedules,
 * GET/DELETE /v1/schedules/{id}, GET /v1/schedules/{id}/signals; see
 * stored.h.
 *
 * A schedule row is what sf-scheduler's cronfire fires (migration 0002:
 * cron, logic, symbol, timeframe, catch_up, next_fire; 0003: webhook_url,
 * webhook_secret): the API validates each field with the module that will
 * use it (sf_cron_parse, sf_logic_parse, the data-set name checks, the
 * workers' address policy through sf_http_url_check) and sets next_fire to
 * the first cron time after now, so the first firing is the next one due.
 * The webhook secret is the HMAC key the workers sign with, so it is stored
 * as it is; it is shown in the creation's answer only.
 */
#include "stored.h"
#include "lists.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sf/cron.h"
#include "sf/dataset.h"
#include "sf/http.h"
#include "sf/joblist.h"
#include "sf/time.h"

#define NAME_MAX_CHARS 200
#define URL_MAX_CHARS 2048
#define SECRET_MIN 16
#define SECRET_MAX 256
#define SECRET_BYTES 32

static int bad(sf_httpd_req *req, int http, const char *code, const char *field, const char *msg)
{
    sf_httpd_reply_error(req, http, code, msg, field);
    return 0;
}

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

/* The {id} capture when it is a schedule number; else answers 404. */
static const char *schedule_id(sf_httpd_req *req)
{
    const char *id = sf_httpd_param(req, "id");
    size_t n = id ? strlen(id) : 0;
    int ok = n >= 1 && n <= 18;
    for (size_t i = 0; ok && i < n; i++)
        ok = id[i] >= '0' && id[i] <= '9';
    if (!ok)
        bad(req, 404, "not_found", NULL, "no such schedule");
    return ok ? id : NULL;
}

/* "next_fires": the next API_NEXT_FIRES times of cron after now (ISO-8601). */
static json_t *next_fires(const char *cron)
{
    json_t *a = json_array();
    sf_cron c;
    int64_t t = sf_time_now_ms() / 1000;
    if (sf_cron_parse(cron, &c, NULL) != SF_OK)
        return a;
    for (int i = 0; i < API_NEXT_FIRES && sf_cron_next(&c, t, &t, NULL) == SF_OK; i++) {
        char iso[32];
        sf_time_format_iso8601(t, iso, sizeof iso);
        json_array_append_new(a, json_string(iso));
    }
    return a;
}

/* ---- POST /v1/schedules ------------------------------------------------------------- */

static const char *const KEYS[] = {"name",          "cron",           "logic",     "logic_id",
                                   "logic_version", "symbol",         "timeframe", "catch_up",
                                   "webhook_url",   "webhook_secret", NULL};

typedef struct sched_in {
    const char *name, *cron, *symbol, *timeframe, *catch_up, *url, *secret;
    char next_fire[24];                   /* Unix seconds */
    char generated[2 * SECRET_BYTES + 1]; /* a secret made here */
    api_logic_ref ref;                    /* a stored logic's version; its text is the logic */
    char *logic;                          /* inline: compact JSON (malloc'd) */
} sched_in;

/* A string field: present and a string of 1 to max characters (NUL-free). */
static int text_field(sf_httpd_req *req, json_t *body, const char *key, size_t max, int required, const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL && !required)
        return 1;
    char msg[128];
    snprintf(msg, sizeof msg, "%s: must be a string of 1 to %zu characters", key, max);
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return bad(req, 400, "invalid_request", key, msg);
    *out = json_string_value(v);
    return 1;
}

/* cron parses; next_fire is its first time after now. */
static int cron_field(sf_httpd_req *req, sched_in *in)
{
    sf_cron c;
    sf_err err = {0};
    int64_t next = 0;
    if (sf_cron_parse(in->cron, &c, &err) != SF_OK || sf_cron_next(&c, sf_time_now_ms() / 1000, &next, &err) != SF_OK) {
        char msg[SF_ERR_MSG_MAX + 16];
        snprintf(msg, sizeof msg, "cron: %s", err.msg);
        return bad(req, 400, "invalid_cron", "cron", msg);
    }
    snprintf(in->next_fire, sizeof in->next_fire, "%lld", (long long)next);
    return 1;
}

/* symbol and timeframe valid, and the data set exists (404 otherwise). */
static int dataset_fields(api_app *app, sf_httpd_req *req, sf_db *db, sched_in *in)
{
    sf_err err = {0};
    int64_t version = 0;
    if (sf_dataset_validate_symbol(in->symbol, &err) != SF_OK)
        return bad(req, 400, "invalid_request", "symbol", err.msg);
    if (sf_dataset_validate_timeframe(in->timeframe, &err) != SF_OK)
        return bad(req, 400, "invalid_request", "timeframe", err.msg);
    sf_status st = sf_dataset_version(db, in->symbol, in->timeframe, &version, &err);
    if (st == SF_ERR_NOTFOUND)
        return bad(req, 404, "dataset_not_found", "symbol",
                   "symbol: no such data set (import it with sfctl data import)");
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    return 1;
}

/* webhook_url passes the workers' address policy; the secret is given (16
 * to 256 printable characters) or generated. */
static int webhook_fields(api_app *app, sf_httpd_req *req, sched_in *in)
{
    sf_err err = {0};
    if (in->url == NULL)
        return in->secret == NULL ||
               bad(req, 400, "invalid_request", "webhook_secret", "webhook_secret: only with a webhook_url");
    if (sf_http_url_check(in->url, &app->webhook_policy, &err) != SF_OK) {
        char msg[SF_ERR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "webhook_url: %s", err.msg);
        return bad(req, 400, "invalid_webhook_url", "webhook_url", msg);
    }
    for (size_t i = 0; in->secret && in->secret[i]; i++)
        if (in->secret[i] < 0x21 || in->secret[i] > 0x7e)
            return bad(req, 400, "invalid_request", "webhook_secret",
                       "webhook_secret: printable ASCII characters only");
    if (in->secret != NULL && strlen(in->secret) < SECRET_MIN)
        return bad(req, 400, "invalid_request", "webhook_secret", "webhook_secret: at least 16 characters");
    if (in->secret != NULL)
        return 1;
    unsigned char raw[SECRET_BYTES];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        api_fail(app, req, SF_ERR_IO, NULL);
        return 0;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(in->generated + 2 * i, 3, "%02x", raw[i]);
    in->secret = in->generated;
    return 1;
}

/* The logic: inline (validated) or a stored logic's version. */
static int logic_field(api_app *app, sf_httpd_req *req, sf_db *db, const sf_auth_user *user, json_t *body, sched_in *in)
{
    json_t *logic = json_object_get(body, "logic");
    if ((logic == NULL) == (json_object_get(body, "logic_id") == NULL))
        return bad(req, 400, "invalid_request", "logic", "logic: give exactly one of logic (an object) and logic_id");
    if (logic == NULL)
        return api_logic_ref_resolve(app, req, db, user, body, &in->ref);
    if (json_object_get(body, "logic_version") != NULL)
        return bad(req, 400, "invalid_request", "logic_version", "logic_version: only with logic_id");
    if (!json_is_object(logic))
        return bad(req, 400, "invalid_request", "logic", "logic: must be a JSON object");
    if ((in->logic = json_dumps(logic, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return 0;
    }
    return api_logic_valid(app, req, "logic", in->logic, NULL);
}

static int schedule_body(api_app *app, sf_httpd_req *req, sf_db *db, const sf_auth_user *user, json_t *body,
                         sched_in *in)
{
    if (!api_only_keys(req, body, KEYS) || !text_field(req, body, "name", NAME_MAX_CHARS, 1, &in->name) ||
        !text_field(req, body, "cron", SF_CRON_EXPR_MAX - 1, 1, &in->cron) ||
        !text_field(req, body, "symbol", 64, 1, &in->symbol) ||
        !text_field(req, body, "timeframe", 16, 1, &in->timeframe) ||
        !text_field(req, body, "catch_up", 8, 0, &in->catch_up) ||
        !text_field(req, body, "webhook_url", URL_MAX_CHARS, 0, &in->url) ||
        !text_field(req, body, "webhook_secret", SECRET_MAX, 0, &in->secret))
        return 0;
    in->catch_up = in->catch_up ? in->catch_up : "latest";
    if (strcmp(in->catch_up, "none") != 0 && strcmp(in->catch_up, "latest") != 0 && strcmp(in->catch_up, "all") != 0)
        return bad(req, 400, "invalid_request", "catch_up", "catch_up: one of none, latest, all");
    return cron_field(req, in) && dataset_fields(app, req, db, in) && webhook_fields(app, req, in) &&
           logic_field(app, req, db, user, body, in);
}

static const char INSERT_SQL[] =
    "INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, catch_up, next_fire, webhook_url, "
    "webhook_secret, logic_id, logic_version) VALUES ($1::uuid, $2, $3, $4::jsonb, $5, $6, $7, "
    "to_timestamp($8::bigint), $9, $10, $11::uuid, $12::integer) RETURNING " SF_JOBLIST_SCHEDULE_JSON "::text, id";

static void insert_schedule(api_app *app, sf_httpd_req *req, const sf_auth_user *user, sched_in *in)
{
    char version[24], self[64];
    snprintf(version, sizeof version, "%lld", (long long)in->ref.version);
    const char *p[] = {user->id,
                       in->name,
                       in->cron,
                       in->logic ? in->logic : in->ref.text,
                       in->symbol,
                       in->timeframe,
                       in->catch_up,
                       in->next_fire,
                       in->url,
                       in->secret,
                       in->logic ? NULL : in->ref.id,
                       in->logic ? NULL : version};
    sf_db_res *res = query(app, req, INSERT_SQL, 12, p);
    if (res == NULL)
        return;
    json_t *out = api_json_from_db(sf_db_get(res, 0, 0));
    json_object_set_new(out, "next_fires", next_fires(in->cron));
    if (in->secret != NULL) /* shown this once */
        json_object_set_new(out, "webhook_secret", json_string(in->secret));
    snprintf(self, sizeof self, "/v1/schedules/%s", sf_db_get(res, 0, 1));
    sf_httpd_set_header(req, "Location", self, NULL);
    api_reply_json(app, req, 201, out);
    sf_db_res_free(res);
}

void api_schedule_create(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    json_t *body = api_body_object(req);
    sched_in in;
    memset(&in, 0, sizeof in);
    sf_db *db = NULL;
    sf_err err = {0};
    sf_status st = body ? api_db(app, &db, &err) : SF_OK;
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    else if (body != NULL && schedule_body(app, req, db, &user, body, &in))
        insert_schedule(app, req, &user, &in);
    explicit_bzero(in.generated, sizeof in.generated);
    api_logic_ref_free(&in.ref);
    free(in.logic);
    json_decref(body);
}

/* ---- GET /v1/schedules, GET/DELETE /v1/schedules/{id}, signals ---------------------------- */

void api_schedules_list(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    sf_joblist_filter f = {.user_id = user.id, .limit = SF_JOBLIST_LIMIT_DEFAULT};
    sf_joblist_query q;
    sf_err err = {0};
    if (!api_page_args(req, &f))
        return;
    sf_status st = sf_joblist_schedules(&f, &q, &err);
    if (st == SF_ERR_INVALID)
        bad(req, 400, "invalid_request", "cursor", err.msg);
    else if (st != SF_OK)
        api_fail(app, req, st, &err);
    else
        api_reply_page(app, req, &f, &q);
}

/* The user's schedule {id}: its JSON (column 0) and cron (1); answers 404. */
static sf_db_res *owned(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const char **id)
{
    if ((*id = schedule_id(req)) == NULL)
        return NULL;
    const char *p[] = {*id, user->id};
    sf_db_res *res = query(app, req,
                           "SELECT " SF_JOBLIST_SCHEDULE_JSON "::text, cron FROM schedules "
                           "WHERE id = $1::bigint AND user_id = $2::uuid",
                           2, p);
    if (res != NULL && sf_db_nrows(res) == 0) {
        bad(req, 404, "not_found", NULL, "no such schedule");
        sf_db_res_free(res);
        return NULL;
    }
    return res;
}

void api_schedule_get(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id = NULL;
    sf_db_res *res;
    if (!api_authenticate(app, req, &user) || (res = owned(app, req, &user, &id)) == NULL)
        return;
    json_t *out = api_json_from_db(sf_db_get(res, 0, 0));
    json_object_set_new(out, "next_fires", next_fires(sf_db_get(res, 0, 1)));
    api_reply_json(app, req, 200, out);
    sf_db_res_free(res);
}

void api_schedule_delete(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = schedule_id(req)) == NULL)
        return;
    const char *p[] = {id, user.id};
    /* its firings go with it; its executions' jobs and signals stay (signals.schedule_id becomes NULL) */
    sf_db_res *res = query(app, req,
                           "DELETE FROM schedules WHERE id = $1::bigint AND user_id = $2::uuid "
                           "RETURNING json_build_object('id', id, 'deleted', true)::text",
                           2, p);
    if (res != NULL && sf_db_nrows(res) == 1)
        api_reply_text(app, req, 200, sf_db_get(res, 0, 0));
    else if (res != NULL)
        bad(req, 404, "not_found", NULL, "no such schedule");
    sf_db_res_free(res);
}

void api_schedule_signals(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id = NULL;
    sf_db_res *res;
    if (!api_authenticate(app, req, &user) || (res = owned(app, req, &user, &id)) == NULL)
        return;
    sf_db_res_free(res);
    sf_joblist_filter f = {.user_id = user.id, .limit = SF_JOBLIST_LIMIT_DEFAULT};
    sf_joblist_query q;
    sf_err err = {0};
    if (!api_page_args(req, &f))
        return;
    sf_status st = sf_joblist_signals(&f, id, &q, &err);
    if (st == SF_ERR_INVALID)
        bad(req, 400, "invalid_request", "cursor", err.msg);
    else if (st != SF_OK)
        api_fail(app, req, st, &err);
    else
        api_reply_page(app, req, &f, &q);
}
