/*
 * Graceful drain (docs/architecture.md, invariant 6): SIGTERM to a busy sf-worker stops
 * its claims, finishes or releases its jobs within DRAIN_SECONDS and exits 0;
 * no job is left `running`, a released job went back to pending without
 * spending an attempt and another worker finishes it. An idle worker exits 0
 * at once, and a second SIGTERM exits at once.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"
#include "../support/rawhttp.h"

#define BIG_BARS 400000

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_drain, .init = setup, .fini = teardown, .timeout = 120);

/* A worker with its metrics listener on a free port: env gets
 * "METRICS_PORT=<port>" in slot 1 (slot 0 is the caller's, slot 2 NULL). */
typedef struct {
    char port_kv[32];
    const char *env[3];
    int port;
} metrics_env;

static void metrics_env_init(metrics_env *m, const char *drain_kv)
{
    m->port = sf_proc_free_port();
    snprintf(m->port_kv, sizeof m->port_kv, "METRICS_PORT=%d", m->port);
    m->env[0] = drain_kv;
    m->env[1] = m->port_kv;
    m->env[2] = NULL;
}

/* 1 when the worker's sf_jobs_running gauge (the jobs its runners hold) is
 * 2. PostgreSQL's `running` is not enough: a job is running there from its
 * claim's commit, and the claimer hands it to a runner a moment later; a
 * SIGTERM in between makes the claimer give it back unrun (correctly: it
 * never started), which on a loaded machine happened here. */
static int two_in_runners(void *ctx)
{
    const metrics_env *m = ctx;
    char resp[65536];
    if (rawhttp_timed("127.0.0.1", m->port, "GET /metrics HTTP/1.1\r\nHost: w1\r\nConnection: close\r\n\r\n", resp,
                      sizeof resp - 1, 2000) < 0)
        return 0;
    const char *g = strstr(resp, "\nsf_jobs_running ");
    return g != NULL && strtol(g + strlen("\nsf_jobs_running "), NULL, 10) == 2;
}

static char *states(void)
{
    return farm_text1("SELECT string_agg(logic->>'name' || ' ' || status || ' attempt ' || attempt || ' '"
                      " || coalesce(worker, '-'), '; ') FROM jobs WHERE $1 <> ''",
                      "x");
}

/*
 * Jobs that cannot finish within the drain time are released. The engine
 * phase here is too short to catch, so the two jobs are held in the middle
 * by the test's ACCESS EXCLUSIVE lock on bars (they block loading their data
 * set); the lock goes 0.5 s after the drain time, the engine then sees the
 * cancel flag at its first check and the jobs are released.
 */
Test(farm_drain, jobs_still_running_at_the_drain_time_are_released_without_spending_an_attempt)
{
    farm_dataset("MED", "1m", 50000, 61);
    char *user = farm_user("drain");
    farm_scheduler("sched", NULL);
    metrics_env m;
    metrics_env_init(&m, "DRAIN_SECONDS=1");
    sf_proc *w1 = farm_worker("w1", 2, 3, m.env);
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    char *j1 = farm_job(user, FARM_LOGIC_HEAVY, "MED", "1m", 1, 3);
    char *j2 = farm_job(user, FARM_LOGIC_HEAVY, "MED", "1m", 1, 3);
    FARM_ASSERT(sf_proc_wait_until(two_in_runners, &m, 20000, 25), "two jobs never ran at once: %s", states());
    int64_t t0 = sf_proc_now_ms();
    sf_proc_signal(w1, SIGTERM);
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "MED", "1m", 3); /* a draining worker must not claim these */
    sf_proc_sleep_ms(1500);
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    int exited = sf_proc_wait_exit(w1, 1500 + 2500 * FARM_TIME_SCALE - (sf_proc_now_ms() - t0));
    int64_t took = sf_proc_now_ms() - t0;
    FARM_ASSERT(exited, "w1 still running %lld ms after SIGTERM (DRAIN_SECONDS=1, lock gone at 1.5 s)",
                (long long)took);
    cr_log_info("w1 exited %lld ms after SIGTERM", (long long)took);
    cr_assert_eq(sf_proc_exit_code(w1), 0, "exit status %d", w1->status);
    char *s1 = states();
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'running'"), 0, "left running: %s", s1);
    /* released: pending again, or already relayed back to queued (the relay
     * may run between the release and this look), the attempt not spent */
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE logic->>'name' = 'heavy'"
                          " AND status IN ('pending', 'queued') AND attempt = 0"),
                 2, "not released: %s", s1);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE started_at IS NOT NULL AND logic->>'name' = 'sma'"), 0,
                 "the draining worker claimed new work: %s", s1);

    farm_worker("w2", 2, 3, NULL);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 5 FROM jobs WHERE status = 'succeeded' AND $1 <> ''", "x", 30000),
                "not all jobs finished after the drain: %s", states());
    FARM_ASSERT(farm_int("SELECT count(*) FROM jobs WHERE attempt <> 1") == 0, "a drain spent an attempt: %s",
                states());
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 5);
    free(s1);
    free(j2);
    free(j1);
    free(user);
}

/* Long jobs (400,000 bars: each result is a ~20 MB document) in flight at
 * SIGTERM with room to finish: both finish, exit 0 within DRAIN_SECONDS. */
Test(farm_drain, sigterm_during_long_work_lets_it_finish_and_exits_0_within_the_drain_time)
{
    farm_dataset("BIG", "1m", BIG_BARS, 63);
    char *user = farm_user("drain3");
    farm_scheduler("sched", NULL);
    metrics_env m;
    metrics_env_init(&m, "DRAIN_SECONDS=15");
    sf_proc *w1 = farm_worker("w1", 2, 3, m.env);
    /* Both jobs are in flight at SIGTERM by construction: they wait for
     * their data set behind the test's lock, in the worker's two runners,
     * until the signal is sent. */
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    free(farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3));
    free(farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3));
    FARM_ASSERT(sf_proc_wait_until(two_in_runners, &m, 20000, 25), "two jobs never ran at once: %s", states());
    int64_t t0 = sf_proc_now_ms();
    sf_proc_signal(w1, SIGTERM);
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    FARM_ASSERT(sf_proc_wait_exit(w1, 15000), "w1 still running 15 s after SIGTERM: %s", states());
    cr_log_info("w1 exited %lld ms after SIGTERM", (long long)(sf_proc_now_ms() - t0));
    cr_assert_eq(sf_proc_exit_code(w1), 0);
    char *s1 = states();
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempt = 1"), 2, "%s", s1);
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 2);
    free(s1);
    free(user);
}

/* The drain time bounds the exit even when the jobs are past the engine
 * (building and committing ~20 MB results) at the deadline: exit within
 * DRAIN_SECONDS + 3 s (9 s in the sanitizer build). */
Test(farm_drain, the_drain_time_bounds_the_exit_even_with_big_results_in_flight)
{
    farm_dataset("BIG", "1m", BIG_BARS, 64);
    char *user = farm_user("drain4");
    farm_scheduler("sched", NULL);
    metrics_env m;
    metrics_env_init(&m, "DRAIN_SECONDS=1");
    sf_proc *w1 = farm_worker("w1", 2, 3, m.env);
    free(farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3));
    free(farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3));
    FARM_ASSERT(sf_proc_wait_until(two_in_runners, &m, 20000, 25), "two jobs never ran at once: %s", states());
    int64_t t0 = sf_proc_now_ms();
    sf_proc_signal(w1, SIGTERM);
    int exited = sf_proc_wait_exit(w1, 30000);
    int64_t took = sf_proc_now_ms() - t0;
    char *s1 = states();
    cr_log_info("w1 exited %lld ms after SIGTERM (DRAIN_SECONDS=1): %s", (long long)took, s1);
    cr_assert(exited && took <= 1000 + 3000 * FARM_TIME_SCALE, "w1 exited %lld ms after SIGTERM, DRAIN_SECONDS=1: %s",
              (long long)took, s1);
    cr_assert_eq(sf_proc_exit_code(w1), 0);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'running'"), 0, "%s", s1);
    free(s1);
    free(user);
}

Test(farm_drain, an_idle_worker_exits_0_at_once_and_a_second_sigterm_exits_at_once)
{
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 2, 2, NULL);
    FARM_ASSERT(farm_wait_started(w1, 20000), "w1 never logged its start");
    cr_assert(sf_proc_alive(w1), "w1 exited at start");
    int64_t t0 = sf_proc_now_ms();
    sf_proc_signal(w1, SIGTERM);
    FARM_ASSERT(sf_proc_wait_exit(w1, 3000 * FARM_TIME_SCALE), "an idle worker did not exit within %d s of SIGTERM",
                3 * FARM_TIME_SCALE);
    cr_log_info("idle w1 exited %lld ms after SIGTERM", (long long)(sf_proc_now_ms() - t0));
    cr_assert_eq(sf_proc_exit_code(w1), 0);

    /* Busy worker with a long drain time: the second SIGTERM ends it at once. */
    farm_dataset("BIG", "1m", 200000, 62);
    char *user = farm_user("drain2");
    const char *env[] = {"DRAIN_SECONDS=60", NULL};
    sf_proc *w2 = farm_worker("w2", 1, 3, env);
    /* The job stays in flight (waiting for its data set behind the test's
     * lock) until the worker has exited. */
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    char *j = farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'running' FROM jobs WHERE id = $1", j, 20000), "never ran: %s",
                farm_job_state(j));
    sf_proc_signal(w2, SIGTERM);
    sf_proc_sleep_ms(50);
    t0 = sf_proc_now_ms();
    sf_proc_signal(w2, SIGTERM);
    int exited = sf_proc_wait_exit(w2, 3000 * FARM_TIME_SCALE);
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    FARM_ASSERT(exited, "a second SIGTERM did not end the worker within %d s", 3 * FARM_TIME_SCALE);
    cr_log_info("second SIGTERM: exited %lld ms later, status %d", (long long)(sf_proc_now_ms() - t0), w2->status);
    free(j);
    free(user);
}
