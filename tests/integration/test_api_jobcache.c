/*
 * Integration tests of sf-api's cache of jobs (api/jobcache.h) over real
 * HTTP, with the real PostgreSQL and Redis: a cancel through the API shows
 * at the next GET although the cache would keep the job far longer (a
 * single job's cancel and a batch's); a change made outside the API (SQL, as
 * a worker's or the retention's) is served stale for at most the bound and
 * then shows; another user's job stays 404 after its owner's GET cached it;
 * a 404 is not cached (a job that appears shows at once); with
 * API_JOB_CACHE_SECONDS=0 every GET reads PostgreSQL. The server is started
 * per test with the lifetimes the test wants (tests/support/apitest.h:
 * g_key1 premium, g_key2 free, the BTC-USD 1d data set).
 *
 * No test races the machine's speed: a stale answer is asserted only when
 * the GET that should see it was made within the bound (else the check is
 * skipped and logged), and a fresh one is waited for with a generous margin
 * past the bound.
 */
#include "../support/apitest.h"
#include "sf/time.h"

#define LONG_S 30      /* seconds: a change seen sooner was not waited for */
#define MARGIN_MS 3000 /* past a bound, the longest wait for a fresh answer */
#define ACTIVE_MS 1500 /* the unfinished bound of the bounded tests */
#define FINAL_S 2      /* the finished bound of the bounded tests */

/* A server whose finished jobs live final_s and others active_ms. */
static void start_api(int final_s, int active_ms)
{
    char f[64], a[64];
    snprintf(f, sizeof f, "API_JOB_CACHE_SECONDS=%d", final_s);
    snprintf(a, sizeof a, "API_JOB_CACHE_ACTIVE_MS=%d", active_ms);
    const char *const env[] = {f, a, "RATE_LIMIT_PREMIUM_PER_SECOND=0", "RATE_LIMIT_FREE_PER_SECOND=0", NULL};
    apitest_start_api(env);
}

static void setup(void)
{
    apitest_open("t_jobc_", "premium", NULL);
    apitest_import_dataset();
}

TestSuite(jobcache, .init = setup, .fini = apitest_teardown, .timeout = 120);

/* GET /v1/jobs/{id} with key: the status code, and the job's status in out
 * ("" unless 200). */
static long job_status(const char *id, const sf_auth_key *key, char *out, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    reply r;
    call(&r, "GET", path, key, NULL, NULL);
    const char *s = r.status == 200 ? jstr(r.json, "status") : NULL;
    snprintf(out, size, "%s", s ? s : "");
    json_decref(r.json);
    return r.status;
}

/* Poll GET until it answers code (and, for 200, status want) for at most
 * limit_ms; the ms it took, -1 when it never did. */
static int64_t wait_for(const char *id, long code, const char *want, int64_t limit_ms)
{
    int64_t start = sf_time_mono_ms();
    for (;;) {
        char s[32];
        if (job_status(id, &g_key1, s, sizeof s) == code && (want == NULL || strcmp(s, want) == 0))
            return sf_time_mono_ms() - start;
        if (sf_time_mono_ms() - start > limit_ms)
            return -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* GET answers want now, given the GET that cached the job ended at cached_ms
 * and the cache keeps it bound_ms: asserted only inside the bound. */
static void expect_stale(const char *id, const char *want, int64_t cached_ms, int64_t bound_ms)
{
    char s[32];
    long code = job_status(id, &g_key1, s, sizeof s);
    if (sf_time_mono_ms() - cached_ms >= bound_ms) {
        cr_log_warn("the stale read came %lld ms after the caching one, past the bound: not checked",
                    (long long)(sf_time_mono_ms() - cached_ms));
        return;
    }
    cr_assert_eq(code, 200);
    cr_assert_str_eq(s, want, "served from the cache within its bound");
}

/* ---- changes through this sf-api: at once --------------------------------------------------- */

Test(jobcache, cancel_through_the_api_shows_at_the_next_get)
{
    start_api(LONG_S, LONG_S * 1000);
    char id[64], s[32];
    apitest_submit_ok(&g_key1, id, sizeof id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "pending"); /* cached for 30 s from here */
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "pending");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    reply r;
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "cancelled", "the cancel must drop the cached pending job");
    /* the cancelled job is cached now, and still right */
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "cancelled");
}

Test(jobcache, batch_cancel_through_the_api_shows_at_the_next_get)
{
    start_api(LONG_S, LONG_S * 1000);
    char body[2048], batch[64], member[64], s[32];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[2,3]},\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             APITEST_LOGIC);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    snprintf(batch, sizeof batch, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM jobs WHERE batch_id = '%s' ORDER BY combo_index LIMIT 1", batch);
    char *m = sf_testenv_query_text(g_db, sql);
    snprintf(member, sizeof member, "%s", m);
    free(m);
    cr_assert_eq(job_status(member, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "pending");
    char path[128];
    snprintf(path, sizeof path, "/v1/batches/%s/cancel", batch);
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(job_status(member, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "cancelled", "the batch's cancel must drop its cached members");
}

/* ---- changes outside it: within the bound ------------------------------------------------------ */

Test(jobcache, a_job_finished_by_a_worker_shows_within_the_bound)
{
    start_api(LONG_S, ACTIVE_MS);
    char id[64], s[32];
    apitest_submit_ok(&g_key1, id, sizeof id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    int64_t cached = sf_time_mono_ms();
    /* what a worker's finish writes (sf/job.h), as SQL: sf-api hears nothing */
    apitest_sql("UPDATE jobs SET status = 'succeeded', attempt = 1, started_at = now(), finished_at = now(), "
                "worker = 'w-test' WHERE id = '%s'",
                id);
    int64_t changed = sf_time_mono_ms();
    expect_stale(id, "pending", cached, ACTIVE_MS);
    int64_t took = wait_for(id, 200, "succeeded", ACTIVE_MS + MARGIN_MS);
    cr_assert_geq(took, 0, "the finished job never showed");
    cr_assert_leq(sf_time_mono_ms() - changed, ACTIVE_MS + MARGIN_MS);
    cr_log_info("a worker's finish showed %lld ms after the change (bound %d ms)",
                (long long)(sf_time_mono_ms() - changed), ACTIVE_MS);
}

Test(jobcache, a_deleted_finished_job_disappears_within_the_bound)
{
    start_api(FINAL_S, ACTIVE_MS);
    char id[64], s[32];
    apitest_submit_ok(&g_key1, id, sizeof id);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now(), error = 'x' WHERE id = '%s'", id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "failed");
    int64_t cached = sf_time_mono_ms();
    apitest_sql("DELETE FROM jobs WHERE id = '%s'", id); /* as the retention does */
    expect_stale(id, "failed", cached, FINAL_S * 1000);
    cr_assert_geq(wait_for(id, 404, NULL, FINAL_S * 1000 + MARGIN_MS), 0, "the deleted job stayed");
}

/* ---- what is never served from it ---------------------------------------------------------------- */

Test(jobcache, another_users_job_stays_404_after_its_owner_cached_it)
{
    start_api(LONG_S, LONG_S * 1000);
    char id[64], s[32];
    apitest_submit_ok(&g_key1, id, sizeof id);
    apitest_sql("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = '%s'", id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_eq(job_status(id, &g_key2, s, sizeof s), 404);
    for (char *p = id; *p; p++) /* the same id in capitals: still the owner's only */
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    cr_assert_eq(job_status(id, &g_key2, s, sizeof s), 404);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "succeeded");
}

Test(jobcache, a_404_is_not_cached)
{
    start_api(LONG_S, LONG_S * 1000);
    const char *id = "6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f";
    char s[32];
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 404);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 404);
    /* the job appears (submitted through another sf-api, say) */
    apitest_sql("INSERT INTO jobs (id, user_id, kind, status, logic, symbol, timeframe) SELECT '%s', id, "
                "'backtest', 'queued', '{}'::jsonb, 'BTC-USD', '1d' FROM users WHERE email = 'one@example.com'",
                id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200, "a 404 was cached");
    cr_assert_str_eq(s, "queued");
}

Test(jobcache, off_reads_postgresql_every_time)
{
    start_api(0, LONG_S * 1000); /* 0 turns the whole cache off, unfinished jobs too */
    char id[64], s[32];
    apitest_submit_ok(&g_key1, id, sizeof id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "pending");
    apitest_sql("UPDATE jobs SET status = 'running', attempt = 1, started_at = now() WHERE id = '%s'", id);
    cr_assert_eq(job_status(id, &g_key1, s, sizeof s), 200);
    cr_assert_str_eq(s, "running");
}
