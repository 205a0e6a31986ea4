/* opsd: /metrics, /health and /ready; see sf/opsd.h. */
#include "sf/opsd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/db.h"
#include "sf/redis.h"

#define METRICS_BODY_MAX ((size_t)16 << 20)
#define REASON_MAX 256

struct sf_opsd {
    sf_opsd_opts opts;
    sf_opsd_token token;
    sf_httpd *httpd;
    pthread_mutex_t mu; /* guards db and redis (one pool thread, but cheap) */
    sf_db *db;
    sf_redis *redis;
};

sf_status sf_opsd_token_init(sf_opsd_token *t, const char *token, sf_err *err)
{
    memset(t, 0, sizeof *t);
    if (token == NULL || token[0] == '\0')
        return SF_OK;
    t->locked = 1;
    return sf_auth_hash(token, strlen(token), t->hash, err);
}

int sf_opsd_metrics_allowed(const sf_opsd_token *t, sf_httpd_req *req)
{
    if (!t->locked)
        return 1;
    size_t len = 0;
    const char *given = sf_auth_bearer(sf_httpd_header(req, "Authorization"), &len);
    unsigned char h[SF_AUTH_HASH_BYTES];
    return given != NULL && sf_auth_hash(given, len, h, NULL) == SF_OK && sf_auth_hash_equal(h, t->hash);
}

void sf_opsd_reply_metrics(sf_httpd_req *req, const sf_opsd_token *t, sf_metrics *m, double start_time)
{
    if (!sf_opsd_metrics_allowed(t, req)) {
        sf_httpd_set_header(req, "WWW-Authenticate", "Bearer", NULL);
        sf_httpd_reply_error(req, 401, "unauthorized",
                             "/metrics wants the METRICS_TOKEN: send Authorization: Bearer <token>", NULL);
        return;
    }
    sf_buf b;
    sf_err err = {0};
    sf_buf_init(&b, METRICS_BODY_MAX);
    sf_status st = m != NULL ? sf_metrics_render(m, &b, &err) : SF_OK;
    if (st == SF_OK)
        st = sf_metrics_render_process(start_time, &b, &err);
    if (st == SF_OK)
        st = sf_httpd_reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b, &err);
    if (st != SF_OK)
        sf_httpd_reply_error(req, 500, "internal", "could not render the metrics", NULL);
    sf_buf_destroy(&b);
}

/* ---- the listener -------------------------------------------------------- */

static void on_health(sf_httpd_req *req, void *appv)
{
    (void)appv;
    static const char body[] = "{\"status\":\"ok\"}\n";
    sf_httpd_reply(req, 200, "application/json", body, sizeof body - 1, NULL);
}

static void on_metrics(sf_httpd_req *req, void *appv)
{
    sf_opsd *o = appv;
    if (o->opts.refresh != NULL && sf_opsd_metrics_allowed(&o->token, req))
        o->opts.refresh(o->opts.app);
    sf_opsd_reply_metrics(req, &o->token, o->opts.metrics, o->opts.start_time);
}

/* SELECT 1 on the listener's own connection; dropped after a failure. Locked. */
static sf_status ping_db(sf_opsd *o, sf_err *err)
{
    sf_db_opts dbo = {
        .connect_timeout_s = 2, .connect_attempts = 1, .statement_timeout_ms = 2000, .application_name = "sf-ready"};
    sf_status st = o->db != NULL ? SF_OK : sf_db_open(o->opts.database_url, &dbo, &o->db, err);
    if (st == SF_OK)
        st = sf_db_exec(o->db, "SELECT 1", err);
    if (st != SF_OK) {
        sf_db_close(o->db);
        o->db = NULL;
    }
    return st;
}

/* PING on the listener's own connection; dropped after a failure. Locked. */
static sf_status ping_redis(sf_opsd *o, sf_err *err)
{
    sf_redis_opts ro = {
        .connect_timeout_ms = 1000, .command_timeout_ms = 1000, .connect_attempts = 1, .client_name = "sf-probe"};
    sf_status st = o->redis != NULL ? SF_OK : sf_redis_open(o->opts.redis_url, &ro, &o->redis, err);
    const char *argv[] = {"PING"};
    sf_redis_reply *rep = NULL;
    if (st == SF_OK)
        st = sf_redis_cmd(o->redis, 1, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    if (st != SF_OK) {
        sf_redis_close(o->redis);
        o->redis = NULL;
    }
    return st;
}

static void reply_not_ready(sf_httpd_req *req, const char *reason, int db_ok, int redis_ok)
{
    sf_buf b;
    sf_buf_init(&b, 4096);
    sf_status st = sf_buf_puts(&b, "{\"error\":{\"code\":\"not_ready\",\"message\":", NULL);
    if (st == SF_OK)
        st = sf_httpd_json_string(&b, reason, NULL);
    if (st == SF_OK)
        st = sf_buf_printf(&b, NULL, ",\"database\":\"%s\",\"redis\":\"%s\"}}\n", db_ok ? "ok" : "unavailable",
                           redis_ok ? "ok" : "unavailable");
    if (st == SF_OK)
        sf_httpd_reply_buf(req, 503, "application/json", &b, NULL);
    else
        sf_httpd_reply_error(req, 503, "not_ready", reason, NULL);
    sf_buf_destroy(&b);
}

static void on_ready(sf_httpd_req *req, void *appv)
{
    sf_opsd *o = appv;
    sf_err dberr = {0}, rerr = {0};
    pthread_mutex_lock(&o->mu);
    int db_ok = ping_db(o, &dberr) == SF_OK;
    int redis_ok = ping_redis(o, &rerr) == SF_OK;
    pthread_mutex_unlock(&o->mu);
    char reason[REASON_MAX] = "";
    int own_ok = o->opts.ready == NULL || o->opts.ready(o->opts.app, reason, sizeof reason);
    if (db_ok && redis_ok && own_ok) {
        static const char body[] = "{\"status\":\"ready\",\"database\":\"ok\",\"redis\":\"ok\"}\n";
        sf_httpd_reply(req, 200, "application/json", body, sizeof body - 1, NULL);
        return;
    }
    char msg[REASON_MAX * 2];
    if (!db_ok)
        snprintf(msg, sizeof msg, "database unavailable: %.200s", dberr.msg);
    else if (!redis_ok)
        snprintf(msg, sizeof msg, "redis unavailable: %.200s", rerr.msg);
    else
        snprintf(msg, sizeof msg, "%s", reason[0] ? reason : "not ready");
    reply_not_ready(req, msg, db_ok, redis_ok);
}

static const sf_httpd_route ROUTES[] = {
    {"GET", "/health", on_health},
    {"GET", "/ready", on_ready},
    {"GET", "/metrics", on_metrics},
};

sf_status sf_opsd_start(const sf_opsd_opts *opts, sf_opsd **out, sf_err *err)
{
    *out = NULL;
    sf_opsd *o = calloc(1, sizeof *o);
    if (o == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    o->opts = *opts;
    pthread_mutex_init(&o->mu, NULL);
    sf_status st = sf_opsd_token_init(&o->token, opts->metrics_token, err);
    sf_httpd_opts ho = {.bind_address = opts->bind_address && opts->bind_address[0] ? opts->bind_address : NULL,
                        .port = opts->port,
                        .threads = 1,
                        .max_body = 1024,
                        .connection_limit = 32,
                        .per_client_limit = 8,
                        .app = o};
    if (st == SF_OK)
        st = sf_httpd_start(ROUTES, sizeof ROUTES / sizeof ROUTES[0], &ho, &o->httpd, err);
    if (st != SF_OK) {
        sf_opsd_stop(o);
        return st;
    }
    *out = o;
    return SF_OK;
}

int sf_opsd_port(const sf_opsd *o)
{
    return sf_httpd_port(o->httpd);
}

void sf_opsd_stop(sf_opsd *o)
{
    if (o == NULL)
        return;
    sf_httpd_stop(o->httpd, 1000);
    sf_db_close(o->db);
    sf_redis_close(o->redis);
    pthread_mutex_destroy(&o->mu);
    free(o);
}
