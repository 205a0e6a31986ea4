/*
 * PostgreSQL is the truth, Redis a dispatch cache (docs/architecture.md,
 * invariant 1): 1,000 jobs run through real sf-scheduler and sf-worker
 * processes while the test flushes the (private) Redis with FLUSHALL, then
 * kills it and starts a new empty one on the same port (a restart without
 * persistence). Every job must still finish, each exactly once: status
 * succeeded, one results row, attempt 1 (no job ran twice), and the right
 * result.
 *
 * Each fault lands at a known point of the work, whatever the machine's
 * speed: the jobs come in three parts; before each fault both workers are
 * frozen (SIGSTOP) with what they hold, the next part is submitted and
 * relayed into Redis, and the fault wipes those ids from Redis before any
 * of them can run. The workers resume only after the fault.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"

#define JOBS 1000
#define FIRST 400 /* then two parts of 300, one before each fault */
#define PART 300
#define LEASE_S 5 /* the workers are frozen for a fraction of a second */

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

/* Freeze both workers, submit n more jobs and wait until Redis holds ids of
 * jobs that have not run: the fault that follows wipes work still to do. */
static void hold_back(sf_proc *const *w, const char *user, int n)
{
    sf_proc_signal(w[0], SIGSTOP);
    sf_proc_signal(w[1], SIGSTOP);
    farm_jobs_bulk(user, FARM_LOGIC_HEAVY, "MED", "1m", n);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) >= 50 FROM jobs WHERE status = 'queued' AND $1 <> ''", "x", 30000),
                "the new jobs were not relayed into Redis");
}

static void resume(sf_proc *const *w)
{
    sf_proc_signal(w[0], SIGCONT);
    sf_proc_signal(w[1], SIGCONT);
}

Test(farm_redis, flushall_and_a_restart_without_persistence_lose_no_job_and_run_none_twice)
{
    farm_dataset("MED", "1m", 20000, 21);
    char *user = farm_user("flush");
    /* A small relay window: most jobs wait in PostgreSQL, not in Redis. */
    const char *senv[] = {"RELAY_MAX_READY=100", NULL};
    farm_scheduler("sched", senv);
    sf_proc *w[2] = {farm_worker("w1", 2, LEASE_S, NULL), farm_worker("w2", 2, LEASE_S, NULL)};
    farm_jobs_bulk(user, FARM_LOGIC_HEAVY, "MED", "1m", FIRST);
    int64_t t0 = sf_proc_now_ms();

    wait_done(FIRST / 2, 60000);
    hold_back(w, user, PART);
    long long at_flush = done_count();
    const char *flush[] = {"FLUSHALL"};
    free(farm_redis(1, flush));
    resume(w);
    cr_log_info("FLUSHALL after %lld jobs (%lld ms)", at_flush, (long long)(sf_proc_now_ms() - t0));
    cr_assert_leq(at_flush, FIRST, "jobs submitted after the freeze ran while the workers were frozen");

    wait_done(FIRST + PART / 2, 60000);
    hold_back(w, user, PART);
    long long at_restart = done_count();
    sf_proc_kill(F.redis);
    sf_proc_sleep_ms(300);
    farm_redis_start();
    resume(w);
    cr_log_info("redis restarted empty after %lld jobs (%lld ms)", at_restart, (long long)(sf_proc_now_ms() - t0));
    cr_assert_leq(at_restart, FIRST + PART, "jobs submitted after the freeze ran while the workers were frozen");

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
