/*
 * Fair share across tenants (docs/architecture.md, invariant 5), end to end: tenant A
 * submits a 2,000-member sweep; once it is running, tenant B submits one
 * backtest. Once B's job is in the dispatch queue, it must start before A
 * has had more than (worker threads in the farm) further jobs started. The
 * test watches whether B's id is ready in Redis and takes the time (Redis's
 * clock, the host's, which PostgreSQL reads too) of the last look that did
 * not find it yet: every A job started after that counts (strict: it
 * includes the moment before B arrived). The time from
 * submission to the queue, the relay's latency, is logged here and measured
 * by scripts/bench-farm. Run with the relay's default window
 * and with a small one (RELAY_MAX_READY=50), where B's job must also get past
 * A's backlog waiting in PostgreSQL.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "../support/farm.h"

#define WORKERS 2
#define THREADS 2
#define SWEEP 2000

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_fair, .init = setup, .fini = teardown, .timeout = 120);

/* One look at Redis in one round trip: the server's clock (epoch seconds,
 * microseconds) and whether job is ready (sf:{backtest}:ids) or already
 * claimed (sf:{backtest}:leases), as "<seconds> <0|1>". Redis and
 * PostgreSQL read the same host clock, so the time compares with
 * started_at. */
static const char LOOK_LUA[] = "local t = redis.call('TIME')\n"
                               "local here = redis.call('ZSCORE', KEYS[1], ARGV[1]) or "
                               "redis.call('ZSCORE', KEYS[2], ARGV[1])\n"
                               "return t[1] .. '.' .. string.format('%06d', tonumber(t[2])) .. (here and ' 1' or ' 0')";

/* One look: its time into when (epoch seconds, text); 1 when job is there. */
static int look(sf_redis *r, const char *job, char *when, size_t size)
{
    const char *argv[] = {"EVAL", LOOK_LUA, "2", "sf:{backtest}:ids", "sf:{backtest}:leases", job};
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_cmd(r, 6, argv, NULL, &rep, &err), SF_OK, "redis EVAL: %s", err.msg);
    const char *text = sf_redis_reply_str(rep, NULL);
    const char *sp = text ? strchr(text, ' ') : NULL;
    cr_assert(sp != NULL, "unexpected answer to the look: %s", text ? text : "(not a string)");
    snprintf(when, size, "%.*s", (int)(sp - text), text);
    int there = sp[1] == '1';
    sf_redis_reply_free(rep);
    return there;
}

/* Submit B's job; return it, and in *after the time (epoch seconds, text) of
 * the last look at Redis that did not yet find it there (the first look is
 * taken before the submission). Every A job started after that time counts
 * against the farm, those started in the moment between that look and B's
 * arrival too: the looks go in one round trip on one connection, so that
 * moment stays short on a loaded machine (a look was three round trips and
 * a new connection, and a slow one let a fifth A job in). */
static char *submit_b(const char *user, char **after)
{
    sf_redis *r = farm_redis_open();
    cr_assert(r != NULL, "private redis at %s is down", F.redis_url);
    char last[64], now[64];
    cr_assert(!look(r, "none", last, sizeof last), "a job named none in Redis");
    char *job = farm_job(user, FARM_LOGIC_SMA, "MED", "1m", 1, 3);
    for (int i = 0; i < 30000; i++) {
        int there = look(r, job, now, sizeof now);
        /* claimed and finished between two looks: in neither key. Found
         * this way, the count starts at the look before this check, a little
         * after B's arrival (less strict, never more). */
        if (!there && i % 20 == 19)
            there = farm_int1("SELECT count(*) FROM jobs WHERE id = $1 AND started_at IS NOT NULL", job) > 0;
        if (there) {
            sf_redis_close(r);
            *after = strdup(last);
            return job;
        }
        memcpy(last, now, sizeof last);
    }
    sf_redis_close(r);
    cr_assert_fail("B's job never reached the dispatch queue: %s", farm_job_state(job));
    return NULL;
}

static void one_sweep_does_not_hold_back_another_tenant(const char *const *sched_env)
{
    /* 100,000 bars and the heavy logic: a member takes several milliseconds,
     * longer than the time from submission to claimable (the relay's latency,
     * measured by bench-farm), as for real backtests; with members much
     * shorter than that latency, any queue keeps serving the work it already
     * has while a newcomer is relayed. It also keeps the count honest: A jobs
     * that start between the test's last look and B's arrival count against
     * the farm, and with 1 ms members (the SMA logic) a few milliseconds of
     * polling were already four of them. */
    farm_dataset("MED", "1m", 100000, 51);
    char *a = farm_user("tenant-a");
    char *b = farm_user("tenant-b");
    farm_scheduler("sched", sched_env);
    farm_worker("w1", THREADS, 2, NULL);
    farm_worker("w2", THREADS, 2, NULL);
    const char *grid = "{\"indicators.a.period\": {\"from\": 2, \"to\": 2001, \"step\": 1}}";
    /* The second half of the sweep is held back (never released): A's
     * backlog cannot run out before B arrives, whatever the machine's speed. */
    char *batch = farm_sweep_held(a, FARM_LOGIC_HEAVY, grid, "MED", "1m", SWEEP, SWEEP / 2);
    FARM_ASSERT(
        farm_wait_sql("SELECT count(*) >= 20 FROM jobs WHERE batch_id = $1 AND started_at IS NOT NULL", batch, 30000),
        "the sweep does not run");

    char *before = NULL;
    char *job = submit_b(b, &before);
    FARM_ASSERT(farm_wait_sql("SELECT started_at IS NOT NULL FROM jobs WHERE id = $1", job, 30000),
                "B's job never started: %s", farm_job_state(job));
    const char *p[] = {job, batch, before};
    char *ahead = farm_query1("SELECT count(*) FROM jobs a, jobs b WHERE b.id = $1 AND a.batch_id = $2"
                              " AND a.started_at > to_timestamp($3::float8) AND a.started_at < b.started_at",
                              3, p);
    free(before);
    char *lat = farm_text1("SELECT round(extract(epoch FROM started_at - created_at) * 1000) || ' ms (relay '"
                           " || round(extract(epoch FROM queued_at - created_at) * 1000) || ' ms, then claim '"
                           " || round(extract(epoch FROM started_at - queued_at) * 1000) || ' ms)'"
                           " FROM jobs WHERE id = $1",
                           job);
    long long started = farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1 AND started_at IS NOT NULL", batch);
    cr_log_info("B started %s after submission; A jobs started in between: %s (A started so far: %lld)", lat, ahead,
                started);
    cr_assert_lt(started, SWEEP / 2, "the whole released half ran before B: the test proves nothing");
    cr_assert(strtoll(ahead, NULL, 10) <= WORKERS * THREADS, "%s of A's jobs started before B's (limit %d)", ahead,
              WORKERS * THREADS);
    free(lat);
    free(ahead);
    free(job);
    free(batch);
    free(b);
    free(a);
}

Test(farm_fair, a_big_sweep_holds_another_tenant_back_by_at_most_one_job_per_thread)
{
    one_sweep_does_not_hold_back_another_tenant(NULL);
}

Test(farm_fair, the_same_with_a_small_relay_window_and_the_backlog_in_postgresql)
{
    const char *env[] = {"RELAY_MAX_READY=50", NULL};
    one_sweep_does_not_hold_back_another_tenant(env);
}
