/*
 * Integration tests for sf-worker: the real binary (fork/exec from
 * SF_BINARY_DIR) against a scratch database and a private Redis (farm.h).
 * Jobs are inserted pending and relayed by the test itself (farm_relay_all:
 * sf_job_relay_pending, which marks them queued and commits, then
 * sf_queue_enqueue, the two calls of the scheduler's relay), so the test
 * needs no scheduler. The reaper is called by the test too (sf_job_reap).
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/job.h"
#include "sf/queue.h"

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown_ex(0);
}

TestSuite(worker, .init = setup, .fini = teardown, .timeout = 90);

static sf_proc *worker(const char *name, int threads, const char *drain)
{
    char t[48], w[96], d[48];
    snprintf(t, sizeof t, "WORKER_THREADS=%d", threads);
    snprintf(w, sizeof w, "WORKER_NAME=%s", name);
    snprintf(d, sizeof d, "SF_DRAIN_SECONDS=%s", drain);
    const char *env[] = {t, w, d, "LEASE_SECONDS=2", "SF_CACHE_MB=64", NULL};
    return farm_start(name, "sf-worker", env);
}

static void expect_clean_exit(sf_proc *p, int64_t within_ms)
{
    int64_t t0 = sf_proc_now_ms();
    int exited = sf_proc_wait_exit(p, within_ms);
    if (!exited) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt' >&2 2>/dev/null", (int)p->pid);
        if (system(cmd) < 0)
            cr_log_error("gdb failed");
        sf_proc_dump_logs(3000);
    }
    cr_assert(exited, "%s did not exit within %lld ms", p->name, (long long)within_ms);
    cr_assert_eq(sf_proc_exit_code(p), 0, "%s exit code %d", p->name, sf_proc_exit_code(p));
    cr_log_info("%s exited in %lld ms", p->name, (long long)(sf_proc_now_ms() - t0));
}

Test(worker, queued_jobs_complete_with_one_result_each)
{
    farm_dataset("SYM", "1d", 3000, 7);
    char *user = farm_user("alice");
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "SYM", "1d", 12);
    char *bad = farm_job(user, "{\"name\":\"bad\"}", "SYM", "1d", 1, 3); /* invalid logic */
    char *nodata = farm_job(user, FARM_LOGIC_SMA, "NOPE", "1d", 1, 3);   /* missing data set */
    cr_assert_eq(farm_relay_all(), 14);
    sf_proc *w = worker("w1", 2, "10");
    int done = farm_wait_sql("SELECT count(*) = 14 FROM jobs WHERE status IN ('succeeded', 'failed')", NULL, 30000);
    if (!done)
        sf_proc_dump_logs(4000);
    cr_assert(done, "jobs did not finish");
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempt = 1 AND worker = 'w1'"),
                 12);
    cr_assert_eq(
        farm_int("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                 "WHERE j.status = 'succeeded' AND r.metrics ? 'sharpe' "
                 "AND json_array_length(sf_equity_points(r.equity, r.equity_t, r.equity_v)) BETWEEN 500 AND 1000"),
        12, "3000 bars stored as at most SF_EQUITY_POINTS (default 1000) points");
    cr_assert_eq(farm_int("SELECT count(DISTINCT metrics::text) FROM results"), 1,
                 "the same logic on the same data gives identical metrics");
    char *st = farm_text1("SELECT status || ' ' || error_class FROM jobs WHERE id = $1", bad);
    cr_assert_str_eq(st, "failed permanent");
    free(st);
    st = farm_text1("SELECT status || ' ' || error_class FROM jobs WHERE id = $1", nodata);
    cr_assert_str_eq(st, "failed permanent");
    free(st);
    cr_assert(sf_proc_log_contains(w, "\"job_id\""), "one JSON line per job");
    cr_assert(sf_proc_log_contains(w, "\"duration_ms\""));
    sf_proc_signal(w, SIGTERM);
    expect_clean_exit(w, 10000);
    free(user), free(bad), free(nodata);
}

Test(worker, sigterm_during_work_exits_zero_within_the_drain_and_leaves_nothing_running)
{
    farm_dataset("BIG", "1d", 60000, 3);
    char *user = farm_user("bob");
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "BIG", "1d", 40);
    cr_assert_eq(farm_relay_all(), 40);
    sf_proc *w = worker("w-drain", 2, "0"); /* no grace: running jobs are released */
    cr_assert(farm_wait_sql("SELECT count(*) >= 1 FROM jobs WHERE status = 'succeeded'", NULL, 30000),
              "no job finished");
    /* The SIGTERM lands at a known point, with jobs running: the worker is
     * frozen, 40 more jobs are queued behind its back (so work remains
     * whatever the machine's speed), and it runs 5 ms at a time until it
     * is caught holding one. */
    sf_proc_signal(w, SIGSTOP);
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "BIG", "1d", 40);
    cr_assert_eq(farm_relay_all(), 40);
    int running = 0;
    for (int i = 0; i < 2000 && !running; i++) {
        running = farm_int("SELECT count(*) FROM jobs WHERE status = 'running'") > 0;
        if (!running) {
            sf_proc_signal(w, SIGCONT);
            sf_proc_sleep_ms(5);
            sf_proc_signal(w, SIGSTOP);
        }
    }
    cr_assert(running, "the worker was never caught running a job");
    sf_proc_signal(w, SIGTERM);
    sf_proc_signal(w, SIGCONT);
    expect_clean_exit(w, 10000);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'running'"), 0);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'queued', 'pending')"), 0);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'pending' AND attempt <> 0"), 0,
                 "a released job has not spent an attempt");
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs j WHERE status = 'succeeded' AND "
                          "NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = j.id)"),
                 0);
    cr_log_info("released %lld, succeeded %lld", farm_int("SELECT count(*) FROM jobs WHERE status = 'pending'"),
                farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'"));
    free(user);
}

Test(worker, a_killed_workers_job_is_reaped_after_its_lease_and_finished_once_by_another)
{
    farm_dataset("BIG", "1d", 250000, 5);
    char *user = farm_user("carol");
    char *id = farm_job(user, FARM_LOGIC_SMA, "BIG", "1d", 1, 3);
    cr_assert_eq(farm_relay_all(), 1);
    sf_proc *a = worker("w-a", 1, "10");
    cr_assert(farm_wait_sql("SELECT status = 'running' FROM jobs WHERE id = $1", id, 20000));
    sf_proc_signal(a, SIGSTOP); /* freeze it mid-job, then make sure it had not finished */
    char *st = farm_text1("SELECT status::text FROM jobs WHERE id = $1", id);
    cr_assert_str_eq(st, "running", "the job finished before the kill; make it slower");
    free(st);
    sf_proc_kill(a);

    /* the reaper: nothing before the lease ends, then back to pending */
    sf_job_reap_stats rs;
    sf_err err = {0};
    sf_job_retry fast = {.base_ms = 100, .cap_ms = 1000};
    int64_t end = sf_proc_now_ms() + 8000;
    do {
        sf_proc_sleep_ms(100);
        cr_assert_eq(sf_job_reap(F.db, 100, &fast, &rs, &err), SF_OK, "%s", err.msg);
    } while (rs.retried == 0 && sf_proc_now_ms() < end);
    cr_assert_eq(rs.retried, 1, "the reaper did not requeue the job");
    cr_assert(farm_wait_sql("SELECT run_at <= now() FROM jobs WHERE id = $1", id, 3000));
    cr_assert_eq(farm_relay_all(), 1);

    sf_proc *b = worker("w-b", 1, "10");
    int ok = farm_wait_sql("SELECT status = 'succeeded' FROM jobs WHERE id = $1", id, 30000);
    if (!ok)
        sf_proc_dump_logs(4000);
    cr_assert(ok, "the second worker did not finish the job");
    st = farm_text1("SELECT attempt || ' ' || worker FROM jobs WHERE id = $1", id);
    cr_assert_str_eq(st, "2 w-b");
    free(st);
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", id), 1);
    sf_proc_signal(b, SIGTERM);
    expect_clean_exit(b, 10000);
    free(user), free(id);
}
