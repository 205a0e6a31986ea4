/* sf-api: tiers, quotas, the per-key rate limit and GET /v1/me; see tiers.h. */
#include "tiers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/ratelimit.h"

#define RATE_REST_MS 5000 /* after a Redis error, the limiter lets everything through this long */
#define RATE_LOG_MS 10000 /* and says so at most this often */
#define RETRY_MIN_S 2
#define RETRY_MAX_S 600

static const char *const TIERS[API_TIERS] = {"free", "premium", "enterprise"};

static int tier_index(const char *tier)
{
    for (int i = 0; i < API_TIERS; i++)
        if (strcmp(tier, TIERS[i]) == 0)
            return i;
    return API_TIER_FREE;
}

void api_tier_limits_of(const api_config *cfg, const char *tier, api_tier_limits *out)
{
    const int64_t *t = cfg->tier[tier_index(tier)];
    *out = (api_tier_limits){t[API_LIMIT_RUNNING], t[API_LIMIT_QUEUED], t[API_LIMIT_MEMBERS], t[API_LIMIT_RATE],
                             t[API_LIMIT_BURST]};
}

/* ---- quotas --------------------------------------------------------------------- */

/* The user's row, locked for this transaction (one user's submissions take
 * turns); *tier gets the tier as it is now. */
static sf_status lock_user(sf_db *db, const char *user_id, char *tier, size_t size, sf_err *err)
{
    const char *p[] = {user_id};
    sf_db_res *res = NULL;
    sf_status st =
        sf_db_query(db, "SELECT tier::text FROM users WHERE id = $1::uuid FOR NO KEY UPDATE", 1, p, &res, err);
    if (st == SF_OK && sf_db_nrows(res) != 1)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "could not lock the user: no user %s", user_id);
    if (st == SF_OK)
        snprintf(tier, size, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    return st;
}

/* Waiting (pending + queued) and running jobs of the user, reading at most
 * cap entries of jobs_user_active (0 = all); with_running 0 counts waiting
 * ones only. */
static sf_status count_active(sf_db *db, const char *user_id, int with_running, int64_t cap, int64_t *waiting,
                              int64_t *running, sf_err *err)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)cap);
    const char *p[] = {user_id, cap > 0 ? limit : NULL};
    sf_db_res *res = NULL;
    sf_status st =
        sf_db_query(db,
                    with_running ? "SELECT count(*) FILTER (WHERE status <> 'running'), count(*) FILTER (WHERE "
                                   "status = 'running') FROM (SELECT status FROM jobs WHERE user_id = $1::uuid AND "
                                   "status IN ('pending', 'queued', 'running') LIMIT $2::bigint) a"
                                 : "SELECT count(*), 0 FROM (SELECT 1 FROM jobs WHERE user_id = $1::uuid AND "
                                   "status IN ('pending', 'queued') LIMIT $2::bigint) a",
                    2, p, &res, err);
    if (st == SF_OK) {
        *waiting = strtoll(sf_db_get(res, 0, 0), NULL, 10);
        *running = strtoll(sf_db_get(res, 0, 1), NULL, 10);
    }
    sf_db_res_free(res);
    return st;
}

/* Seconds until the jobs over the quota (excess) would have finished if the
 * user's running quota of them ran at about one a second each. */
static int64_t retry_after(int64_t excess, int64_t running_quota)
{
    int64_t per_s = running_quota > 0 ? running_quota : 1;
    int64_t s = (excess + per_s - 1) / per_s;
    return s < RETRY_MIN_S ? RETRY_MIN_S : s > RETRY_MAX_S ? RETRY_MAX_S : s;
}

static void refuse(api_quota *q, const char *quota, int64_t limit, int64_t usage, int64_t n, int64_t running_quota)
{
    *q = (api_quota){1, quota, limit, usage, n, retry_after(usage + n - limit, running_quota)};
}

sf_status api_quota_check(api_app *app, sf_db *db, const sf_auth_user *user, int64_t n, api_quota *q, sf_err *err)
{
    char tier[SF_AUTH_TIER_MAX];
    api_tier_limits l;
    memset(q, 0, sizeof *q);
    sf_status st = lock_user(db, user->id, tier, sizeof tier, err);
    if (st != SF_OK)
        return st;
    api_tier_limits_of(app->cfg, tier, &l);
    if (l.queued == 0)
        return SF_OK; /* unlimited (the running quota counts only with a queued one) */
    int both = l.running > 0;
    int64_t waiting = 0, running = 0, cap = (both ? l.running : 0) + l.queued + 1;
    st = count_active(db, user->id, both, cap, &waiting, &running, err);
    if (st != SF_OK)
        return st;
    if (waiting + n > l.queued)
        refuse(q, "queued", l.queued, waiting, n, l.running);
    else if (both && waiting + running + n > l.running + l.queued)
        refuse(q, "running+queued", l.running + l.queued, waiting + running, n, l.running);
    return SF_OK;
}

void api_quota_reply(api_app *app, sf_httpd_req *req, const api_quota *q)
{
    char msg[400], after[24];
    snprintf(msg, sizeof msg,
             "quota %s exceeded: you have %lld unfinished job%s counted by it, the limit is %lld, and this "
             "submission adds %lld; retry when some have finished (about %lld s), or ask for a higher tier",
             q->quota, (long long)q->usage, q->usage == 1 ? "" : "s", (long long)q->limit, (long long)q->requested,
             (long long)q->retry_after_s);
    snprintf(after, sizeof after, "%lld", (long long)q->retry_after_s);
    sf_httpd_set_header(req, "Retry-After", after, NULL);
    api_reply_json(app, req, 429,
                   json_pack("{s:{s:s, s:s, s:s, s:I, s:I, s:I}}", "error", "code", "quota_exceeded", "message", msg,
                             "quota", q->quota, "limit", (json_int_t)q->limit, "usage", (json_int_t)q->usage,
                             "requested", (json_int_t)q->requested));
}

int api_tier_members_ok(api_app *app, sf_httpd_req *req, const sf_auth_user *user, int64_t members)
{
    api_tier_limits l;
    api_tier_limits_of(app->cfg, user->tier, &l);
    if (l.members == 0 || members <= l.members)
        return 1;
    char msg[300];
    snprintf(msg, sizeof msg,
             "grid: a sweep of %lld members is more than the %s tier allows (quota sweep_members, limit %lld)",
             (long long)members, user->tier, (long long)l.members);
    api_reply_json(app, req, 413,
                   json_pack("{s:{s:s, s:s, s:s, s:s, s:I, s:I, s:I}}", "error", "code", "quota_exceeded", "message",
                             msg, "field", "grid", "quota", "sweep_members", "limit", (json_int_t)l.members, "usage",
                             (json_int_t)members, "requested", (json_int_t)members));
    return 0;
}

int api_tier_priority_ok(sf_httpd_req *req, const sf_auth_user *user, int priority)
{
    if (priority != 0 || tier_index(user->tier) != API_TIER_FREE)
        return 1;
    sf_httpd_reply_error(req, 400, "priority_not_allowed",
                         "priority: \"high\" is for the premium and enterprise tiers; your tier is free "
                         "(use \"normal\" or \"low\")",
                         "priority");
    return 0;
}

/* ---- rate limit ----------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A Redis failure: let requests through and rest for RATE_REST_MS. */
static void fail_open(api_app *app, const sf_err *err)
{
    int64_t now = mono_ms();
    app->rate_rest_until_ms = now + RATE_REST_MS;
    if (now - app->rate_logged_ms < RATE_LOG_MS)
        return;
    app->rate_logged_ms = now;
    sf_log_field f[] = {SF_LF_STR("error", err->msg), {SF_LF_END_, NULL, {0}}};
    sf_log_emit(app->log, SF_LOG_WARN, "rate limit: Redis failed; requests pass unlimited for 5 s", f);
}

static void set_int_header(sf_httpd_req *req, const char *name, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)v);
    sf_httpd_set_header(req, name, s, NULL);
}

static void reply_limited(api_app *app, sf_httpd_req *req, const api_tier_limits *l, const sf_ratelimit_result *r)
{
    int64_t after = (r->retry_ms + 999) / 1000;
    char msg[256];
    set_int_header(req, "Retry-After", after > 0 ? after : 1);
    snprintf(msg, sizeof msg,
             "rate limit: this API key may make %lld requests a second (bursts of %lld); retry in %lld ms",
             (long long)l->rate, (long long)l->burst, (long long)r->retry_ms);
    api_reply_json(app, req, 429,
                   json_pack("{s:{s:s, s:s, s:I, s:I}}", "error", "code", "rate_limited", "message", msg,
                             "rate_per_second", (json_int_t)l->rate, "burst", (json_int_t)l->burst));
}

int api_rate_limit(api_app *app, sf_httpd_req *req, const sf_auth_user *user)
{
    api_tier_limits l;
    api_tier_limits_of(app->cfg, user->tier, &l);
    if (l.rate == 0 || l.burst == 0 || mono_ms() < app->rate_rest_until_ms)
        return 1;
    sf_queue *q = NULL;
    sf_redis *r = NULL;
    sf_err err = {0};
    sf_ratelimit_result res = {0};
    sf_status st = api_queue(app, &q, &r, &err);
    if (st == SF_OK) {
        api_conn *c = pthread_getspecific(app->conn_key); /* there: api_queue made it */
        if (c->rate_script.source == NULL)
            c->rate_script.source = SF_RATELIMIT_LUA;
        st = sf_ratelimit_take(r, &c->rate_script, app->cfg->queue, user->key_id, l.rate, l.burst, &res, &err);
    }
    if (st != SF_OK) {
        fail_open(app, &err);
        return 1;
    }
    set_int_header(req, "X-RateLimit-Limit", l.burst);
    set_int_header(req, "X-RateLimit-Remaining", res.remaining);
    set_int_header(req, "X-RateLimit-Reset", (res.full_ms + 999) / 1000);
    if (res.allowed)
        return 1;
    reply_limited(app, req, &l, &res);
    return 0;
}

/* ---- GET /v1/me ------------------------------------------------------------------ */

static json_t *limit_json(int64_t v)
{
    return v > 0 ? json_integer((json_int_t)v) : json_null();
}

static json_t *me_json(const api_app *app, const sf_auth_user *user, int64_t waiting, int64_t running)
{
    api_tier_limits l;
    api_tier_limits_of(app->cfg, user->tier, &l);
    json_t *quotas = json_pack("{s:o, s:o, s:o, s:o, s:o}", "running", limit_json(l.running), "queued",
                               limit_json(l.queued), "sweep_members", limit_json(l.members), "rate_per_second",
                               limit_json(l.burst ? l.rate : 0), "rate_burst", limit_json(l.rate ? l.burst : 0));
    json_t *usage = json_pack("{s:I, s:I, s:I}", "running", (json_int_t)running, "queued", (json_int_t)waiting,
                              "unfinished", (json_int_t)(running + waiting));
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "user_id", user->id, "email", user->email, "tier", user->tier,
                     "key_id", (json_int_t)user->key_id, "quotas", quotas, "usage", usage);
}

void api_me(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    sf_db *db = NULL;
    sf_err err = {0};
    int64_t waiting = 0, running = 0;
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = count_active(db, user.id, 1, 0, &waiting, &running, &err);
    if (st == SF_OK)
        api_reply_json(app, req, 200, me_json(app, &user, waiting, running));
    else
        api_fail(app, req, st, &err);
}
