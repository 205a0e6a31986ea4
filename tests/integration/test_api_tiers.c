/*
 * Integration tests of tiers, quotas and the per-key rate limit of sf-api
 * (api/tiers.h) over real HTTP, and of `sfctl me` and `sfctl admin` (users,
 * tiers, key list, rotate, revoke) against it. The server is started on a
 * scratch database (tests/support/apitest.h), with a third user g_key3
 * (enterprise) and small limits: free 1 running / 5 queued / sweeps of 4
 * members / 1 request a second in bursts of 15; premium 2 / 20 / 50;
 * enterprise unlimited.
 */
#include "../support/apitest.h"
#include "../support/rawhttp.h"

#define FREE_RUNNING 1
#define FREE_QUEUED 5
#define FREE_MEMBERS 4
#define FREE_BURST 15
#define PREMIUM_QUEUED 20
#define PREMIUM_MEMBERS 50
#define STR(x) #x
#define XSTR(x) STR(x)

static sf_auth_key g_key3;
static char g_user3[SF_AUTH_ID_MAX];

static const char LOGIC[] = APITEST_LOGIC;

static void setup(void)
{
    /* no cache of keys: sfctl here has no REDIS_URL, and these tests want a
     * change seen on the next request (test_api_keycache.c tests the cache) */
    static const char *const env[] = {
        "MAX_BODY_BYTES=8192",
        "SWEEP_MAX_COMBINATIONS=100",
        "METRICS_TOKEN=scrape-secret",
        "SF_RUN_MAX_MB=1",
        "MAX_ATTEMPTS_CAP=7",
        "RERUN_MAX=10",
        "TIER_FREE_RUNNING=" XSTR(FREE_RUNNING),
        "TIER_FREE_QUEUED=" XSTR(FREE_QUEUED),
        "TIER_FREE_SWEEP_MEMBERS=" XSTR(FREE_MEMBERS),
        "RATE_LIMIT_FREE_PER_SECOND=1",
        "RATE_LIMIT_FREE_BURST=" XSTR(FREE_BURST),
        "TIER_PREMIUM_RUNNING=2",
        "TIER_PREMIUM_QUEUED=" XSTR(PREMIUM_QUEUED),
        "TIER_PREMIUM_SWEEP_MEMBERS=" XSTR(PREMIUM_MEMBERS),
        "API_KEY_CACHE_SECONDS=0",
        NULL,
    };
    apitest_open("t_tiers_", "premium", NULL);
    sf_err err = {0};
    cr_assert_eq(sf_auth_user_add(g_db, "three@example.com", "Three", "enterprise", g_user3, &g_key3, &err), SF_OK,
                 "%s", err.msg);
    apitest_import_dataset();
    apitest_start_api(env);
}

TestSuite(tiers, .init = setup, .fini = apitest_teardown, .timeout = 120);

/* ---- helpers of this file ------------------------------------------------------------ */

static long long user_jobs(const char *user)
{
    return apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", user, NULL);
}

static long long user_batches(const char *user)
{
    return apitest_q_int("SELECT count(*) FROM batches WHERE user_id = '%s'%s", user, NULL);
}

static long long err_int(const reply *r, const char *k)
{
    return (long long)json_integer_value(json_object_get(json_object_get(r->json, "error"), k));
}

static const char *err_str(const reply *r, const char *k)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), k));
}

/* A backtest by key with priority prio (NULL = none): the answer in r. */
static void submit(reply *r, const sf_auth_key *key, const char *prio)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"%s%s%s}", LOGIC,
             prio ? ",\"priority\":\"" : "", prio ? prio : "", prio ? "\"" : "");
    call(r, "POST", "/v1/backtests", key, body, NULL);
}

/* A sweep of fast x slow members (fast periods 2.., slow 10..). */
static void sweep(reply *r, const sf_auth_key *key, int fast, int slow)
{
    char body[4096], f[256] = "", s[256] = "";
    for (int i = 0; i < fast; i++)
        snprintf(f + strlen(f), sizeof f - strlen(f), "%s%d", i ? "," : "", 2 + i);
    for (int i = 0; i < slow; i++)
        snprintf(s + strlen(s), sizeof s - strlen(s), "%s%d", i ? "," : "", 10 + i);
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[%s],\"indicators.slow.period\":[%s]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             LOGIC, f, s);
    call(r, "POST", "/v1/sweeps", key, body, NULL);
}

/* One raw request (to see the headers); the response text in resp. */
static void raw(const char *method, const char *path, const sf_auth_key *key, const char *body, char *resp, size_t size)
{
    char req[4096];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             method, path, key->text, body ? strlen(body) : 0, body ? body : "");
    cr_assert_geq(rawhttp_timed("127.0.0.1", g_port, req, resp, size, 5000), 0, "%s %s: no answer", method, path);
}

/* The value of header name in a raw response, as an integer; -1 when absent. */
static long long header_int(const char *resp, const char *name)
{
    char needle[96];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *h = strcasestr(resp, needle);
    return h ? strtoll(h + strlen(needle), NULL, 10) : -1;
}

/* ---- quotas ---------------------------------------------------------------------------- */

Test(tiers, the_queued_quota_is_429_with_retry_after_and_inserts_nothing)
{
    reply r;
    for (int i = 0; i < FREE_QUEUED; i++) {
        submit(&r, &g_key2, NULL);
        cr_assert_eq(r.status, 202, "submission %d: %ld %s", i, r.status, r.text);
        json_decref(r.json);
    }
    char body[2048], resp[16384];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", LOGIC);
    raw("POST", "/v1/backtests", &g_key2, body, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0, "%s", resp);
    cr_assert_geq(header_int(resp, "Retry-After"), 1, "%s", resp);
    cr_assert(strstr(resp, "\"quota\":\"queued\"") && strstr(resp, "\"limit\":5") && strstr(resp, "\"usage\":5"), "%s",
              resp);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED);

    /* one starts running: a waiting place is free again, and running + queued (6) holds one more */
    apitest_sql("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE user_id = '%s' LIMIT 1)",
                g_user2);
    submit(&r, &g_key2, NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    /* a second one running: waiting is 4 again, but running + waiting + 1 = 7 > 1 + 5 */
    apitest_sql("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE user_id = '%s' "
                "AND status = 'pending' LIMIT 1)",
                g_user2);
    submit(&r, &g_key2, NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "quota_exceeded");
    cr_assert_str_eq(err_str(&r, "quota"), "running+queued");
    cr_assert_eq(err_int(&r, "limit"), FREE_RUNNING + FREE_QUEUED);
    cr_assert_eq(err_int(&r, "usage"), 6);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED + 1);
    /* another user's quota is their own */
    submit(&r, &g_key1, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
}

Test(tiers, an_idempotent_replay_is_answered_even_when_the_quota_is_full)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", LOGIC);
    reply r;
    call(&r, "POST", "/v1/backtests", &g_key2, body, "again");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    for (int i = 1; i < FREE_QUEUED; i++) {
        submit(&r, &g_key2, NULL);
        json_decref(r.json);
    }
    call(&r, "POST", "/v1/backtests", &g_key2, body, "again");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/backtests", &g_key2, body, "new");
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), FREE_QUEUED);
}

Test(tiers, a_sweep_over_the_member_cap_is_413_and_one_over_the_queue_is_429_with_nothing_inserted)
{
    reply r;
    sweep(&r, &g_key2, 3, 2); /* 6 > 4 members */
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "quota_exceeded");
    cr_assert_str_eq(err_str(&r, "quota"), "sweep_members");
    cr_assert_eq(err_int(&r, "limit"), FREE_MEMBERS);
    cr_assert_eq(err_int(&r, "requested"), 6);
    json_decref(r.json);
    cr_assert_eq(user_batches(g_user2), 0);
    cr_assert_eq(user_jobs(g_user2), 0);
    sweep(&r, &g_key2, 2, 2);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    sweep(&r, &g_key2, 2, 1); /* 4 waiting + 2 > 5 */
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_str_eq(err_str(&r, "quota"), "queued");
    cr_assert_eq(err_int(&r, "usage"), 4);
    cr_assert_eq(err_int(&r, "requested"), 2);
    json_decref(r.json);
    cr_assert_eq(user_batches(g_user2), 1);
    cr_assert_eq(user_jobs(g_user2), 4);
    /* premium: 60 members are over its cap of 50; enterprise: no cap, no queue limit */
    sweep(&r, &g_key1, 6, 10);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.text);
    json_decref(r.json);
    sweep(&r, &g_key3, 6, 10);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    for (int i = 0; i < PREMIUM_QUEUED + 5; i++) {
        submit(&r, &g_key3, "high");
        cr_assert_eq(r.status, 202, "enterprise submission %d: %ld %s", i, r.status, r.text);
        json_decref(r.json);
    }
    cr_assert_eq(user_jobs(g_user3), 60 + PREMIUM_QUEUED + 5);
}

Test(tiers, high_priority_is_refused_to_free_users_and_allowed_to_paying_ones)
{
    reply r;
    submit(&r, &g_key2, "high");
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    cr_assert_str_eq(error_field(&r), "priority");
    cr_assert(strstr(r.text, "premium") != NULL, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 0);
    submit(&r, &g_key2, "low");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    submit(&r, &g_key1, "high");
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s' AND priority = 0%s", g_user1, NULL), 1);
}

Test(tiers, reruns_count_against_the_quota_and_keep_the_priority_rule)
{
    char ids[FREE_QUEUED][64], path[256];
    for (int i = 0; i < FREE_QUEUED; i++)
        apitest_submit_ok(&g_key2, ids[i], sizeof ids[i]);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE user_id = '%s'", g_user2);
    reply r;
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.text);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
    snprintf(path, sizeof path, "/v1/jobs/%s/rerun", ids[0]);
    call(&r, "POST", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.text);
    cr_assert_eq(err_int(&r, "requested"), FREE_QUEUED);
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
    /* a high-priority original (from when the user paid) is not re-run at high for free */
    apitest_sql("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE user_id = '%s' AND status = 'pending'",
                g_user2);
    apitest_sql("UPDATE jobs SET priority = 0 WHERE id = '%s'", ids[0]);
    call(&r, "POST", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"failed\"}", NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.text);
    cr_assert_str_eq(error_code(&r), "priority_not_allowed");
    json_decref(r.json);
    cr_assert_eq(user_jobs(g_user2), 2 * FREE_QUEUED);
}

/* ---- GET /v1/me -------------------------------------------------------------------------- */

Test(tiers, me_shows_the_tier_the_quotas_and_the_usage)
{
    reply r;
    for (int i = 0; i < 3; i++) {
        submit(&r, &g_key1, NULL);
        json_decref(r.json);
    }
    sweep(&r, &g_key1, 2, 2);
    json_decref(r.json);
    apitest_sql("UPDATE jobs SET status = 'running' WHERE id IN (SELECT id FROM jobs WHERE user_id = '%s' LIMIT 2)",
                g_user1);
    call(&r, "GET", "/v1/me", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "user_id"), g_user1);
    cr_assert_str_eq(jstr(r.json, "tier"), "premium");
    cr_assert_eq(json_integer_value(json_object_get(r.json, "key_id")), g_key1.id);
    json_t *q = json_object_get(r.json, "quotas"), *u = json_object_get(r.json, "usage");
    cr_assert_eq(json_integer_value(json_object_get(q, "running")), 2, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(q, "queued")), PREMIUM_QUEUED, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(q, "sweep_members")), PREMIUM_MEMBERS, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "running")), 2, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "queued")), 5, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(u, "unfinished")), 7, "%s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/me", &g_key3, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    q = json_object_get(r.json, "quotas");
    cr_assert(json_is_null(json_object_get(q, "queued")) && json_is_null(json_object_get(q, "rate_per_second")),
              "enterprise is unlimited: %s", r.text);
    json_decref(r.json);
}

/* ---- rate limit -------------------------------------------------------------------------- */

Test(tiers, the_rate_limit_answers_429_after_the_burst_and_recovers)
{
    char resp[16384];
    int ok = 0;
    int64_t t0 = rawhttp_now_ms();
    for (int i = 0; i < 200; i++) {
        raw("GET", "/v1/me", &g_key2, NULL, resp, sizeof resp);
        if (strncmp(resp, "HTTP/1.1 429", 12) == 0)
            break;
        cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "%s", resp);
        cr_assert_eq(header_int(resp, "X-RateLimit-Limit"), FREE_BURST, "%s", resp);
        ok++;
    }
    int64_t elapsed_s = (rawhttp_now_ms() - t0) / 1000 + 1;
    /* the burst, plus at most one token a second while the loop ran */
    cr_assert_geq(ok, FREE_BURST);
    cr_assert_leq(ok, FREE_BURST + elapsed_s, "%d allowed in %lld s", ok, (long long)elapsed_s);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0, "never limited: %s", resp);
    long long after = header_int(resp, "Retry-After");
    cr_assert(after >= 1 && after <= 2, "%s", resp);
    cr_assert_eq(header_int(resp, "X-RateLimit-Remaining"), 0, "%s", resp);
    cr_assert_geq(header_int(resp, "X-RateLimit-Reset"), 1, "%s", resp);
    cr_assert(strstr(resp, "\"code\":\"rate_limited\"") != NULL, "%s", resp);
    /* another key has its own bucket; an enterprise key has none */
    raw("GET", "/v1/me", &g_key1, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "%s", resp);
    raw("GET", "/v1/me", &g_key3, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0 && header_int(resp, "X-RateLimit-Limit") == -1, "%s", resp);
    /* a limited request's body is never read: nothing was submitted */
    raw("POST", "/v1/backtests", &g_key2, "{}", resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 429", 12) == 0 || strncmp(resp, "HTTP/1.1 400", 12) == 0, "%s", resp);
    struct timespec ts = {after + 1, 0};
    nanosleep(&ts, NULL);
    raw("GET", "/v1/me", &g_key2, NULL, resp, sizeof resp);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "after Retry-After: %s", resp);
    cr_assert_eq(user_jobs(g_user2), 0);
}

/* ---- sfctl me and sfctl admin ---------------------------------------------------------------- */

/* Run sfctl with args (NULL-terminated) and key (NULL = none) as SF_API_KEY;
 * stdout in out; returns the exit status. */
static int sfctl(const char *const *args, const char *key, char *out, size_t size)
{
    char api[128], k[128], db[1100];
    snprintf(api, sizeof api, "SF_API_URL=http://127.0.0.1:%d", g_port);
    snprintf(k, sizeof k, "SF_API_KEY=%s", key ? key : "");
    snprintf(db, sizeof db, "DATABASE_URL=%s", g_url);
    char *envp[] = {api, k, db, NULL};
    return apitest_sfctl(args, envp, out, size);
}

Test(tiers, sfctl_me_and_admin_list_rotate_and_revoke)
{
    char out[16384];
    reply r;
    submit(&r, &g_key2, NULL);
    json_decref(r.json);
    const char *me[] = {"me", NULL};
    cr_assert_eq(sfctl(me, g_key2.text, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "free") && strstr(out, g_user2) && strstr(out, "1 of 5"), "%s", out);
    const char *me_json[] = {"me", "--json", NULL};
    cr_assert_eq(sfctl(me_json, g_key3.text, out, sizeof out), 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_str_eq(jstr(j, "tier"), "enterprise", "%s", out);
    json_decref(j);

    const char *users[] = {"admin", "user", "list", NULL};
    cr_assert_eq(sfctl(users, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "one@example.com\tOne\tpremium\t1") && strstr(out, "two@example.com\tTwo\tfree\t1"), "%s",
              out);
    const char *tier[] = {"admin", "user", "tier", "--email", "two@example.com", "--tier", "premium", NULL};
    cr_assert_eq(sfctl(tier, NULL, out, sizeof out), 0, "%s", out);
    call(&r, "GET", "/v1/me", &g_key2, NULL, NULL);
    cr_assert_str_eq(jstr(r.json, "tier"), "premium", "%s", r.text);
    json_decref(r.json);

    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)g_key2.id);
    const char *rotate[] = {"admin", "key", "rotate", "--id", id, "--key-only", NULL};
    cr_assert_eq(sfctl(rotate, NULL, out, sizeof out), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(sf_auth_key_well_formed(out, strlen(out)), "not a key: %s", out);
    sf_auth_key fresh = {0};
    memcpy(fresh.text, out, SF_AUTH_KEY_LEN); /* well formed: exactly SF_AUTH_KEY_LEN characters */
    fresh.text[SF_AUTH_KEY_LEN] = '\0';
    call(&r, "GET", "/v1/me", &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 401, "the old key still works: %s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/me", &fresh, NULL, NULL);
    cr_assert_eq(r.status, 200, "the new key: %s", r.text);
    cr_assert_str_eq(jstr(r.json, "user_id"), g_user2);
    long long new_id = (long long)json_integer_value(json_object_get(r.json, "key_id"));
    json_decref(r.json);
    cr_assert_eq(sfctl(rotate, NULL, out, sizeof out), 5, "rotating a revoked key: %s", out);

    const char *keys[] = {"admin", "key", "list", "--email", "two@example.com", "--json", NULL};
    cr_assert_eq(sfctl(keys, NULL, out, sizeof out), 0, "%s", out);
    j = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(j), 2, "%s", out);
    cr_assert(json_is_string(json_object_get(json_array_get(j, 0), "revoked_at")), "%s", out);
    cr_assert(json_is_null(json_object_get(json_array_get(j, 1), "revoked_at")), "%s", out);
    json_decref(j);

    snprintf(id, sizeof id, "%lld", new_id);
    const char *revoke[] = {"admin", "key", "revoke", "--id", id, NULL};
    cr_assert_eq(sfctl(revoke, NULL, out, sizeof out), 0, "%s", out);
    call(&r, "GET", "/v1/me", &fresh, NULL, NULL);
    cr_assert_eq(r.status, 401, "a revoked key: %s", r.text);
    json_decref(r.json);
    cr_assert_eq(sfctl(me, fresh.text, out, sizeof out), 4, "sfctl me with a revoked key: %s", out);
}
