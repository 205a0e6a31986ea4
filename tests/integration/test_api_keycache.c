/*
 * Integration tests of sf-api's cache of API keys (api/keycache.h) over real
 * HTTP, with the real PostgreSQL and Redis: a revocation, a rotation and a
 * tier change made by `sfctl admin` reach sf-api through the Redis channel
 * sf:{QUEUE}:auth well before the cache's lifetime (30 s here, waits of 2 s
 * at most); a change made in SQL alone is served stale until a message or
 * the lifetime; an invalid key is never cached; API_KEY_CACHE_SECONDS=0 asks
 * PostgreSQL every time. The server is started on a scratch database
 * (tests/support/apitest.h; g_key1 free, g_key2 premium, no data set), once
 * per test with the lifetime the test wants.
 */
#include "../support/apitest.h"
#include "sf/queue.h"
#include "sf/redis.h"
#include "sf/time.h"

#define LONG_TTL 30  /* seconds: a test that sees a change within WAIT_MS did not wait for it */
#define WAIT_MS 2000 /* longest wait for a published change to take effect */

/* Start sf-api with a cache of keys of ttl_s seconds (0 = off) and no rate
 * limit for free users; when the cache is on, wait until it listens. */
static void start_api(int ttl_s)
{
    char ttl[64];
    snprintf(ttl, sizeof ttl, "API_KEY_CACHE_SECONDS=%d", ttl_s);
    const char *const env[] = {ttl, "RATE_LIMIT_FREE_PER_SECOND=0", NULL};
    apitest_start_api_until(env, ttl_s > 0 ? "API key cache listening" : NULL);
}

static void setup(void)
{
    apitest_open("t_keyc_", NULL, "premium");
}

TestSuite(keycache, .init = setup, .fini = apitest_teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------------------------ */

/* GET /v1/me with key; the status, and the tier in tier (when 200). */
static long me(const char *key, char *tier, size_t size)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/me", g_port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err err = {0};
    cr_assert_eq(sf_http_request(g_http, "GET", url, h, NULL, 0, &resp, &err), SF_OK, "%s", err.msg);
    long status = resp.status;
    if (tier) {
        json_t *j = json_loads(sf_buf_str(&resp.body), 0, NULL);
        const char *t = json_string_value(json_object_get(j, "tier"));
        snprintf(tier, size, "%s", t ? t : "");
        json_decref(j);
    }
    sf_http_response_destroy(&resp);
    return status;
}

/* Poll GET /v1/me with key until it answers want (and, when want_tier is
 * set, that tier), for WAIT_MS at most; returns the ms it took, -1 if never. */
static int64_t wait_for(const char *key, long want, const char *want_tier)
{
    int64_t start = sf_time_mono_ms();
    for (;;) {
        char tier[32] = "";
        long status = me(key, want_tier ? tier : NULL, sizeof tier);
        if (status == want && (want_tier == NULL || strcmp(tier, want_tier) == 0))
            return sf_time_mono_ms() - start;
        if (sf_time_mono_ms() - start > WAIT_MS)
            return -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Run sfctl with args (NULL-terminated) against this stack (DATABASE_URL,
 * REDIS_URL, QUEUE); stdout in out; returns the exit status. */
static int sfctl(const char *const *args, char *out, size_t size)
{
    char db[1100], redis[600], queue[100];
    snprintf(db, sizeof db, "DATABASE_URL=%s", g_url);
    snprintf(redis, sizeof redis, "REDIS_URL=%s", g_redis);
    snprintf(queue, sizeof queue, "QUEUE=%s", g_queue);
    char *envp[] = {db, redis, queue, NULL};
    return apitest_sfctl(args, envp, out, size);
}

/* PUBLISH on the auth channel as sfctl does. */
static void publish(const char *what)
{
    sf_redis *r = NULL;
    sf_queue *q = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_open(g_redis, NULL, &r, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_new(g_queue, r, &q, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_publish_auth(q, what, &err), SF_OK, "%s", err.msg);
    sf_queue_free(q);
    sf_redis_close(r);
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(keycache, a_key_revoked_with_sfctl_is_refused_well_before_the_lifetime)
{
    start_api(LONG_TTL);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200); /* now cached */
    char out[4096], id[24];
    snprintf(id, sizeof id, "%lld", (long long)g_key1.id);
    const char *revoke[] = {"admin", "key", "revoke", "--id", id, NULL};
    cr_assert_eq(sfctl(revoke, out, sizeof out), 0, "%s", out);
    int64_t took = wait_for(g_key1.text, 401, NULL);
    cr_assert(took >= 0, "the revoked key was still accepted %d ms after sfctl returned", WAIT_MS);
    cr_log_info("revoked key refused %lld ms after sfctl returned", (long long)took);
    cr_assert_eq(me(g_key1.text, NULL, 0), 401, "refused for good");
    cr_assert_eq(me(g_key2.text, NULL, 0), 200, "another key still works");
}

Test(keycache, a_rotated_key_stops_working_and_its_successor_works)
{
    start_api(LONG_TTL);
    cr_assert_eq(me(g_key2.text, NULL, 0), 200);
    char out[4096], id[24];
    snprintf(id, sizeof id, "%lld", (long long)g_key2.id);
    const char *rotate[] = {"admin", "key", "rotate", "--id", id, "--key-only", NULL};
    cr_assert_eq(sfctl(rotate, out, sizeof out), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(sf_auth_key_well_formed(out, strlen(out)), "not a key: %s", out);
    cr_assert(wait_for(g_key2.text, 401, NULL) >= 0, "the old key still works %d ms after the rotation", WAIT_MS);
    char tier[32];
    cr_assert_eq(me(out, tier, sizeof tier), 200, "the new key");
    cr_assert_str_eq(tier, "premium");
}

Test(keycache, a_tier_changed_with_sfctl_shows_without_waiting_for_the_lifetime)
{
    start_api(LONG_TTL);
    char tier[32], out[4096];
    cr_assert_eq(me(g_key1.text, tier, sizeof tier), 200);
    cr_assert_str_eq(tier, "free");
    const char *set[] = {"admin", "user", "tier", "--email", "one@example.com", "--tier", "enterprise", NULL};
    cr_assert_eq(sfctl(set, out, sizeof out), 0, "%s", out);
    cr_assert(wait_for(g_key1.text, 200, "enterprise") >= 0, "still the old tier %d ms after the change", WAIT_MS);
}

Test(keycache, a_change_in_sql_alone_is_served_stale_until_a_message)
{
    start_api(LONG_TTL);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200);
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_revoke(g_db, g_key1.id, NULL, &err), SF_OK, "%s", err.msg);
    /* nothing published: the cache (30 s) still has the key; this is the documented window */
    cr_assert_eq(me(g_key1.text, NULL, 0), 200, "the cache is not in use");
    publish("key by hand");
    cr_assert(wait_for(g_key1.text, 401, NULL) >= 0, "the message did not clear the cache");
}

Test(keycache, an_entry_expires_after_the_lifetime)
{
    start_api(1);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200);
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_revoke(g_db, g_key1.id, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert(wait_for(g_key1.text, 401, NULL) >= 0, "still accepted %d ms after a revocation (lifetime 1 s)", WAIT_MS);
}

Test(keycache, an_invalid_key_is_not_cached)
{
    start_api(LONG_TTL);
    sf_auth_key fresh;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&fresh, &err), SF_OK);
    cr_assert_eq(me(fresh.text, NULL, 0), 401, "a key not stored yet");
    cr_assert_eq(sf_auth_key_create(g_db, g_user1, &fresh, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(me(fresh.text, NULL, 0), 200, "the refusal was cached");
}

Test(keycache, with_a_lifetime_of_0_every_request_asks_postgresql)
{
    start_api(0);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200);
    cr_assert_eq(me(g_key1.text, NULL, 0), 200);
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_revoke(g_db, g_key1.id, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(me(g_key1.text, NULL, 0), 401, "a revocation in SQL is refused on the next request");
    char tier[32];
    cr_assert_eq(me(g_key2.text, tier, sizeof tier), 200);
    cr_assert_str_eq(tier, "premium");
    cr_assert_eq(sf_auth_user_set_tier(g_db, "two@example.com", "enterprise", &err), SF_OK, "%s", err.msg);
    cr_assert_eq(me(g_key2.text, tier, sizeof tier), 200);
    cr_assert_str_eq(tier, "enterprise", "a tier changed in SQL shows on the next request");
}
