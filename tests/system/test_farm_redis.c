/*
 * PostgreSQL is the truth, Redis a dispatch cache (DESIGN.md invariant 1):
 * 1,000 jobs run through real sf-scheduler and sf-worker processes while the
 * test flushes the (private) Redis with FLUSHALL, then kills it and starts a
 * new empty one on the same port (a restart without persistence). Every job
 * must still finish, each exactly once: status succeeded, one results row,
 * attempt 1 (no job ran twice), and the right result.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"

#define JOBS 1000

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_redis, .init = setup, .fini = teardown, .timeout = 180);

static long long done_count(void)
{
    return farm_int("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled')");
}

static int reached(void *ctx)
{
    return done_count() >= *(const long long *)ctx;
}

static void wait_done(long long n, int64_t timeout_ms)
{
    FARM_ASSERT(sf_proc_wait_until(reached, &n, timeout_ms, 20), "only %lld of %lld jobs finished", done_count(), n);
}

Test(farm_redis, flushall_and_a_restart_without_persistence_lose_no_job_and_run_none_twice)
{
    /* 20,000 bars and the heavy logic: jobs long enough that the flush and the
     * restart land in the middle of the run (with 2,000-bar SMA jobs the farm
     * ran the 1,000 jobs in the time the test took to poll twice, and one
     * completion batch can record hundreds at once). */
    farm_dataset("MED", "1m", 20000, 21);
    char *user = farm_user("flush");
    /* A small relay window: most jobs wait in PostgreSQL, not in Redis. */
    const char *senv[] = {"RELAY_MAX_READY=100", NULL};
    farm_scheduler("sched", senv);
    farm_worker("w1", 2, 2, NULL);
    farm_worker("w2", 2, 2, NULL);
    farm_jobs_bulk(user, FARM_LOGIC_HEAVY, "MED", "1m", JOBS);
    int64_t t0 = sf_proc_now_ms();

    wait_done(JOBS / 4, 60000);
    long long at_flush = done_count();
    const char *flush[] = {"FLUSHALL"};
    free(farm_redis(1, flush));
    cr_log_info("FLUSHALL after %lld jobs (%lld ms)", at_flush, (long long)(sf_proc_now_ms() - t0));

    wait_done(JOBS / 2 + 50, 60000);
    long long at_restart = done_count();
    sf_proc_kill(F.redis);
    sf_proc_sleep_ms(300);
    farm_redis_start();
    cr_log_info("redis restarted empty after %lld jobs (%lld ms)", at_restart, (long long)(sf_proc_now_ms() - t0));
    cr_assert_lt(at_restart, JOBS, "every job had finished before the restart: the test proves nothing");

    wait_done(JOBS, 90000);
    cr_log_info("all %d jobs done in %lld ms", JOBS, (long long)(sf_proc_now_ms() - t0));
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'"), JOBS);
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), JOBS);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM results r"
                          " WHERE r.job_id = j.id) <> 1"),
                 0);
    long long reruns = farm_int("SELECT count(*) FROM jobs WHERE attempt <> 1");
    cr_assert_eq(reruns, 0, "%lld jobs ran more than once", reruns);
    /* Every result is the same computation: one distinct final equity, the engine's. */
    cr_assert_eq(farm_int("SELECT count(DISTINCT metrics->>'final_equity') FROM results"), 1);
    double want = farm_expected_final_equity(FARM_LOGIC_HEAVY, "MED", "1m");
    char *any = farm_text1("SELECT id::text FROM jobs WHERE $1 <> '' LIMIT 1", "x");
    double got = farm_result_final_equity(any);
    cr_assert(memcmp(&want, &got, sizeof want) == 0, "final_equity %.17g, want %.17g", got, want);
    free(any);
    free(user);
}
