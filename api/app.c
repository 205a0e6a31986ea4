/* sf-api: application state, per-thread connections, answer helpers; see api.h. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/jsonnum.h"
#include "tiers.h"

static const double DURATION_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const sf_metric_def METRICS[API_METRIC_COUNT] = {
    [API_METRIC_HTTP_DURATION] = {"http_request_duration_seconds",
                                  SF_METRIC_HISTOGRAM,
                                  "Duration of HTTP requests in seconds.",
                                  {"method", "route", "status_code", NULL},
                                  DURATION_BUCKETS,
                                  sizeof DURATION_BUCKETS / sizeof DURATION_BUCKETS[0]},
};

#define API_MAX_SERIES 1000

static void conn_free(void *p)
{
    api_conn *c = p;
    if (c == NULL)
        return;
    sf_queue_free(c->queue);
    sf_redis_close(c->redis);
    sf_db_close(c->db);
    free(c);
}

sf_status api_app_init(api_app *app, const api_config *cfg, sf_log *log, sf_err *err)
{
    memset(app, 0, sizeof *app);
    app->cfg = cfg;
    app->log = log;
    sf_status st = SF_OK;
    if (cfg->metrics_token != NULL && cfg->metrics_token[0] != '\0') {
        app->metrics_locked = 1;
        st = sf_auth_hash(cfg->metrics_token, strlen(cfg->metrics_token), app->metrics_hash, err);
    }
    if (st == SF_OK)
        st = sf_netpolicy_parse(cfg->webhook_allow_cidrs, &app->webhook_policy, err);
    if (st == SF_OK)
        st = sf_metrics_new(METRICS, API_METRIC_COUNT, API_MAX_SERIES, &app->metrics, err);
    if (st == SF_OK && (st = api_keycache_new(cfg->key_cache_s, &app->keys, err)) == SF_OK)
        st = api_keycache_listen(app->keys, cfg->redis_url, cfg->queue, log, err);
    if (st == SF_OK)
        st = api_jobcache_new(cfg->job_cache_s * 1000, cfg->job_cache_s > 0 ? cfg->job_cache_active_ms : 0, &app->jobs,
                              err);
    if (st == SF_OK && pthread_key_create(&app->conn_key, conn_free) != 0)
        st = sf_err_set(err, SF_ERR_NOMEM, "could not create thread-local storage");
    if (st != SF_OK) {
        api_jobcache_free(app->jobs);
        api_keycache_free(app->keys);
        sf_metrics_free(app->metrics);
    }
    return st;
}

void api_app_destroy(api_app *app)
{
    conn_free(pthread_getspecific(app->conn_key)); /* the main thread's, if any */
    pthread_setspecific(app->conn_key, NULL);
    pthread_key_delete(app->conn_key);
    api_jobcache_free(app->jobs);
    api_keycache_free(app->keys);
    sf_metrics_free(app->metrics);
}

static api_conn *thread_conn(api_app *app, sf_err *err)
{
    api_conn *c = pthread_getspecific(app->conn_key);
    if (c != NULL)
        return c;
    c = calloc(1, sizeof *c);
    if (c == NULL || pthread_setspecific(app->conn_key, c) != 0) {
        free(c);
        sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return c;
}

static sf_status open_db(api_app *app, api_conn *c, sf_err *err)
{
    sf_db_opts o = {.connect_timeout_s = 2,
                    .connect_attempts = 1,
                    .statement_timeout_ms = (int)app->cfg->db_statement_timeout_ms,
                    .application_name = "sf-api"};
    sf_status st = sf_db_open(app->cfg->database_url, &o, &c->db, err);
    if (st == SF_OK && (st = sf_db_exec(c->db, "SET TIME ZONE 'UTC'", err)) != SF_OK) {
        sf_db_close(c->db);
        c->db = NULL;
    }
    return st;
}

sf_status api_db(api_app *app, sf_db **out, sf_err *err)
{
    api_conn *c = thread_conn(app, err);
    if (c == NULL)
        return SF_ERR_NOMEM;
    if (c->db != NULL && !sf_db_is_ok(c->db)) {
        sf_db_close(c->db); /* reopen: SET TIME ZONE must run again */
        c->db = NULL;
    }
    if (c->db == NULL) {
        sf_status st = open_db(app, c, err);
        if (st != SF_OK)
            return st;
    }
    *out = c->db;
    return SF_OK;
}

sf_status api_queue(api_app *app, sf_queue **out, sf_redis **redis, sf_err *err)
{
    api_conn *c = thread_conn(app, err);
    if (c == NULL)
        return SF_ERR_NOMEM;
    if (c->redis != NULL && !sf_redis_is_ok(c->redis) && sf_redis_reconnect(c->redis, err) != SF_OK)
        return SF_ERR_UNAVAILABLE;
    if (c->redis == NULL) {
        sf_redis_opts o = {
            .connect_timeout_ms = 2000, .command_timeout_ms = 2000, .connect_attempts = 1, .client_name = "sf-api"};
        sf_status st = sf_redis_open(app->cfg->redis_url, &o, &c->redis, err);
        if (st != SF_OK)
            return st;
    }
    if (c->queue == NULL) {
        sf_status st = sf_queue_new(app->cfg->queue, c->redis, &c->queue, err);
        if (st != SF_OK)
            return st;
    }
    *out = c->queue;
    if (redis)
        *redis = c->redis;
    return SF_OK;
}

void api_fail(api_app *app, sf_httpd_req *req, sf_status st, const sf_err *err)
{
    int outage = st == SF_ERR_UNAVAILABLE || st == SF_ERR_TIMEOUT;
    sf_log_field f[] = {SF_LF_STR("request_id", sf_httpd_request_id(req)),
                        SF_LF_STR("route", sf_httpd_route_pattern(req)),
                        SF_LF_STR("error", err ? err->msg : sf_status_str(st)),
                        SF_LF_STR("code", sf_status_name(st)),
                        {SF_LF_END_, NULL, {0}}};
    sf_log_emit(app->log, outage ? SF_LOG_WARN : SF_LOG_ERROR, "request failed", f);
    if (outage)
        sf_httpd_reply_error(req, 503, "unavailable", "a dependency is unavailable; retry later", NULL);
    else
        sf_httpd_reply_error(req, 500, "internal", "internal error", NULL);
}

void api_reply_text(api_app *app, sf_httpd_req *req, int status, const char *json)
{
    sf_err err = {0};
    sf_status st = sf_httpd_reply(req, status, "application/json", json, strlen(json), &err);
    if (st != SF_OK)
        api_fail(app, req, st, &err);
}

void api_reply_json(api_app *app, sf_httpd_req *req, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (text == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return;
    }
    api_reply_text(app, req, status, text);
    free(text);
}

/* The user of a presented key: from the cache of keys, else from PostgreSQL
 * (and then cached; keycache.h). SF_ERR_AUTH for a key that is not valid. */
static sf_status lookup_key(api_app *app, const char *key, size_t len, sf_auth_user *user, sf_err *err)
{
    unsigned char hash[SF_AUTH_HASH_BYTES];
    if (!sf_auth_key_well_formed(key, len))
        return sf_err_set(err, SF_ERR_AUTH, "invalid API key");
    sf_status st = sf_auth_hash(key, len, hash, err);
    if (st != SF_OK || api_keycache_get(app->keys, hash, user))
        return st;
    uint64_t gen = api_keycache_generation(app->keys); /* before the database reads */
    sf_db *db = NULL;
    st = api_db(app, &db, err);
    if (st == SF_OK)
        st = sf_auth_lookup_hash(db, hash, user, err);
    if (st == SF_OK)
        api_keycache_put(app->keys, hash, user, gen);
    return st;
}

/* Look the key up; 1 with user filled, or 0 after answering. */
static int authenticate_now(api_app *app, sf_httpd_req *req, sf_auth_user *user)
{
    size_t len = 0;
    const char *key = sf_auth_bearer(sf_httpd_header(req, "Authorization"), &len);
    if (key == NULL) {
        sf_httpd_set_header(req, "WWW-Authenticate", "Bearer", NULL);
        sf_httpd_reply_error(req, 401, "unauthorized", "missing API key: send Authorization: Bearer <key>", NULL);
        return 0;
    }
    sf_err err = {0};
    sf_status st = lookup_key(app, key, len, user, &err);
    if (st == SF_ERR_AUTH) {
        sf_httpd_set_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"", NULL);
        sf_httpd_reply_error(req, 401, "unauthorized", "invalid API key", NULL);
        return 0;
    }
    if (st != SF_OK) {
        api_fail(app, req, st, &err);
        return 0;
    }
    return 1;
}

int api_authenticate(api_app *app, sf_httpd_req *req, sf_auth_user *user)
{
    const sf_auth_user *known = sf_httpd_ctx(req);
    if (known != NULL) { /* found by api_on_headers */
        *user = *known;
        return 1;
    }
    return authenticate_now(app, req, user);
}

void api_on_headers(sf_httpd_req *req, void *appv)
{
    if (strncmp(sf_httpd_path(req), "/v1/", 4) != 0)
        return;
    sf_auth_user *user = malloc(sizeof *user);
    if (user == NULL)
        return; /* the handler authenticates (and answers 500 if memory stays short) */
    if (!authenticate_now(appv, req, user)) {
        free(user);
        return;
    }
    sf_httpd_set_ctx(req, user, free);
    api_rate_limit(appv, req, user); /* may answer 429 (tiers.h) */
}

json_t *api_body_object(sf_httpd_req *req)
{
    size_t len = 0;
    const char *body = sf_httpd_body(req, &len);
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "request body is not valid JSON: line %d, column %d: %s", je.line, je.column,
                 je.text);
        sf_httpd_reply_error(req, 400, "invalid_json", msg, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        sf_httpd_reply_error(req, 400, "invalid_json", "request body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}

json_t *api_json_from_db(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (j != NULL || text == NULL)
        return j;
    size_t len = strlen(text), widened = 0;
    sf_buf b;
    sf_buf_init(&b, 2 * len + 64); /* ".0" after integers of 20 digits or more */
    if (sf_jsonnum_widen(text, len, &b, &widened, NULL) == SF_OK && widened > 0)
        j = json_loadb(b.data, b.len, 0, NULL);
    sf_buf_destroy(&b);
    return j;
}

int api_only_keys(sf_httpd_req *req, json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char msg[200];
            snprintf(msg, sizeof msg, "%.100s: unknown field", key);
            sf_httpd_reply_error(req, 400, "invalid_request", msg, key);
            return 0;
        }
    }
    return 1;
}

int api_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

void api_reply_logic_errors(api_app *app, sf_httpd_req *req, const char *prefix, const sf_logic_errors *errs)
{
    json_t *list = json_array();
    char first_field[SF_LOGIC_ERROR_MAX + 32] = "", first_msg[2 * SF_LOGIC_ERROR_MAX + 64] = "";
    for (int i = 0; i < errs->count; i++) {
        char field[SF_LOGIC_ERROR_MAX + 32];
        snprintf(field, sizeof field, "%s%s%s", prefix, errs->path[i][0] ? "." : "", errs->path[i]);
        if (i == 0) {
            snprintf(first_field, sizeof first_field, "%s", field);
            snprintf(first_msg, sizeof first_msg, "%s: %s", field, errs->message[i]);
        }
        json_array_append_new(list, json_pack("{s:s, s:s}", "field", field, "message", errs->message[i]));
    }
    if (errs->count == 0)
        snprintf(first_msg, sizeof first_msg, "%s: invalid", prefix);
    json_t *e = json_pack("{s:s, s:s, s:s, s:o, s:i}", "code", "invalid_logic", "message", first_msg, "field",
                          errs->count ? first_field : prefix, "errors", list, "dropped", errs->dropped);
    api_reply_json(app, req, 400, json_pack("{s:o}", "error", e));
}
