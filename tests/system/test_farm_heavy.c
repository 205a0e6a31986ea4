/*
 * The farm under a heavy sweep (issue 10, items 1-3 and 5): a few hundred
 * sweep members and some single backtests, each with thousands of trades,
 * through two workers with a short lease and a small outcome budget; one
 * worker is killed with SIGKILL while both hold finished outcomes they
 * cannot commit yet.
 *
 * The fault happens at a known point of the work, whatever the machine's
 * speed: the jobs after the first FIRST members are held back (run_at
 * infinity) until those have succeeded; then the test locks the results
 * table (SHARE: every completion waits for it, claims and heartbeats do not),
 * lets the rest run, and waits until each worker logs that its claims are
 * paused by the outcome budget. From then on nothing a worker holds can be
 * committed, and the work left exceeds both workers' budgets, so each holds
 * a batch being committed, outcomes waiting and nothing more. The test keeps
 * it so for two leases (the heartbeat must renew all of them), kills w1,
 * records the jobs w1 held (w2 cannot take any of them while the lock
 * stands: it is paused), and lets the completions go.
 *
 * What is then exactly provable: every job succeeded once with one results
 * row; every job w1 did not hold at its death ran once (attempt 1: no lease
 * was lost, by w2 or by w1 before its death, a lost lease being reaped into
 * a second attempt); those w1 held ran at most twice, and some of them twice
 * (w1's waiting outcomes died with it); neither worker logged a lost lease;
 * and each worker's peak RSS (VmHWM) stayed under the bound the README gives
 * for its configuration.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/farm.h"

#define BARS 80000  /* one-minute bars: short SMAs trade thousands of times */
#define MEMBERS 240 /* fast 2..5 x slow 6..65 */
#define SINGLES 40  /* single backtests: full results (trades and curve) */
#define FIRST 40    /* members that run before the fault */
#define LEASE_S 3
#define THREADS 2

/* The worker's configuration, and the bound of its peak RSS that the README
 * gives: base + cache + threads x per-run working set + outcome budget + 2 x
 * completion batch. A run here holds, at most, 80,000 bars of equity and
 * times (1.3 MB), two SMA series (1.3 MB), some 10,000 trades in memory and
 * as text (about 3 MB): RUN_MB is generous. BASE_MB is the process
 * itself (code, libraries, its connections, thread stacks: 12 MB idle). */
#define CACHE_MB 16
#define BUDGET_MB 2
#define BUDGET_JOBS 24
#define BATCH_MB 1
#define RUN_MB 12
#define BASE_MB 24
#define BOUND_MB (BASE_MB + CACHE_MB + THREADS * RUN_MB + BUDGET_MB + 2 * BATCH_MB)

/* Under AddressSanitizer a process's memory is mostly shadow and quarantine:
 * the bound is logged, not held. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKED 0
#else
#define RSS_CHECKED 1
#endif

#define LOGIC_SHORT                                                                                                    \
    "{\"name\":\"short\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":2},"               \
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":8}},"                                                  \
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}"
#define GRID                                                                                                           \
    "{\"indicators.fast.period\": {\"from\": 2, \"to\": 5, \"step\": 1},"                                              \
    " \"indicators.slow.period\": {\"from\": 6, \"to\": 65, \"step\": 1}}"

#define PAUSED "claims paused"

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_heavy, .init = setup, .fini = teardown, .timeout = 240);

/* How many times needle occurs in p's log. */
static int log_count(const sf_proc *p, const char *needle)
{
    char *log = sf_proc_log_read(p, 64 << 20);
    int n = 0;
    for (const char *s = log; s && (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    free(log);
    return n;
}

/* The integer after "key": in the last line of p's log that has it; -1 if none. */
static long long log_int(const sf_proc *p, const char *key)
{
    char *log = sf_proc_log_read(p, 64 << 20);
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    long long v = -1;
    for (const char *s = log; s && (s = strstr(s, needle)) != NULL; s += strlen(needle))
        v = strtoll(s + strlen(needle), NULL, 10);
    free(log);
    return v;
}

/* VmHWM of a live process, in KiB; -1 when unreadable. */
static long long peak_rss_kb(const sf_proc *p)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtoll(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

typedef struct paused_wait {
    const sf_proc *w1, *w2;
    int n1, n2;
} paused_wait;

static int both_paused(void *ctx)
{
    const paused_wait *p = ctx;
    return log_count(p->w1, PAUSED) > p->n1 && log_count(p->w2, PAUSED) > p->n2;
}

/* SINGLES backtests of LOGIC_SHORT, held back like the members after FIRST. */
static void singles_held(const char *user)
{
    char n[16];
    snprintf(n, sizeof n, "%d", SINGLES);
    const char *p[] = {user, LOGIC_SHORT, n};
    sf_err err = {0};
    cr_assert_eq(sf_db_query(F.db,
                             "INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, created_at, run_at)"
                             " SELECT $1, 'backtest', $2::jsonb, 'HEAVY', '1m',"
                             "  now() + g * interval '1 microsecond', 'infinity' FROM generate_series(1, $3::int) g",
                             3, p, NULL, &err),
                 SF_OK, "%s", err.msg);
}

static const char *const COUNTS = "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n "
                                  "FROM jobs WHERE id IN (SELECT id FROM ours) AND $1 <> '' GROUP BY status) s";

Test(farm_heavy, a_killed_worker_under_a_heavy_sweep_loses_no_lease_of_the_other_and_memory_stays_bounded)
{
    int64_t t0 = sf_proc_now_ms();
    farm_dataset("HEAVY", "1m", BARS, 21);
    cr_log_info("data set imported in %lld ms", (long long)(sf_proc_now_ms() - t0));
    char *user = farm_user("heavy");
    char *batch = farm_sweep_held(user, LOGIC_SHORT, GRID, "HEAVY", "1m", MEMBERS, FIRST);
    singles_held(user);
    /* The jobs of this test (the scheduler may add others later). */
    farm_exec("CREATE TEMP TABLE ours AS SELECT id FROM jobs");
    cr_assert_eq(farm_int("SELECT count(*) FROM ours"), MEMBERS + SINGLES);

    char cache[48], budget[48], jobs[48], batch_mb[48];
    snprintf(cache, sizeof cache, "SF_CACHE_MB=%d", CACHE_MB);
    snprintf(budget, sizeof budget, "SF_OUTCOME_BUDGET_MB=%d", BUDGET_MB);
    snprintf(jobs, sizeof jobs, "SF_OUTCOME_BUDGET_JOBS=%d", BUDGET_JOBS);
    snprintf(batch_mb, sizeof batch_mb, "SF_COMPLETION_BATCH_MB=%d", BATCH_MB);
    const char *env[] = {cache, budget, jobs, batch_mb, "SF_OPTIMISTIC_US=0", NULL};
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", THREADS, LEASE_S, env);
    sf_proc *w2 = farm_worker("w2", THREADS, LEASE_S, env);

    char first_done[160];
    snprintf(first_done, sizeof first_done,
             "SELECT count(*) = %d FROM jobs WHERE batch_id = $1 AND status = 'succeeded'", FIRST);
    FARM_ASSERT(farm_wait_sql(first_done, batch, 60000), "the first members did not run: %s", farm_text1(COUNTS, "x"));

    /* Hold every completion back; let the rest run until both workers stop
     * claiming for their outcome budget. */
    sf_db *lock = sf_testenv_db_open(F.db_url);
    sf_err err = {0};
    cr_assert_eq(sf_db_begin(lock, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_db_exec(lock, "LOCK TABLE results IN SHARE MODE", &err), SF_OK, "%s", err.msg);
    paused_wait pw = {w1, w2, log_count(w1, PAUSED), log_count(w2, PAUSED)};
    farm_exec("UPDATE jobs SET run_at = now() WHERE run_at = 'infinity'");
    farm_exec("NOTIFY sf_jobs");
    FARM_ASSERT(sf_proc_wait_until(both_paused, &pw, 60000, 25), "the workers never reached their outcome budget");
    sf_proc_sleep_ms(2 * LEASE_S * 1000 + 500); /* what they hold outlives two leases */

    long long rss1 = peak_rss_kb(w1);
    sf_proc_kill(w1);
    farm_exec("CREATE TEMP TABLE held AS SELECT id FROM jobs WHERE worker = 'w1' AND status <> 'succeeded'"
              " AND id IN (SELECT id FROM ours)");
    long long held = farm_int("SELECT count(*) FROM held");
    cr_log_info("w1 killed holding %lld jobs at %lld ms; %lld succeeded before the lock", held,
                (long long)(sf_proc_now_ms() - t0), farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'"));
    cr_assert_gt(held, 0, "w1 held nothing when it was killed");
    sf_db_rollback(lock);
    sf_db_close(lock);

    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 0 FROM jobs WHERE id IN (SELECT id FROM ours) AND $1 <> ''"
                              " AND status NOT IN ('succeeded', 'failed', 'dead', 'cancelled')",
                              "x", 120000),
                "jobs not finished: %s", farm_text1(COUNTS, "x"));
    long long rss2 = peak_rss_kb(w2);
    cr_log_info("all finished at %lld ms", (long long)(sf_proc_now_ms() - t0));
    cr_assert(sf_proc_stop(w2, SIGTERM, 20000), "w2 did not drain");
    cr_assert_eq(sf_proc_exit_code(w2), 0, "w2 exited with status %d", w2->status);
    /* Its own account at exit: the outcomes it held never passed the count
     * budget, nor their bytes the byte budget by more than a run's result per
     * thread (each may finish after the last claim). */
    long long held_peak = log_int(w2, "outcomes_peak"), bytes_peak = log_int(w2, "outcome_bytes_peak");
    cr_log_info("w2 held at most %lld outcomes, %lld bytes; paused its claims %lld times", held_peak, bytes_peak,
                log_int(w2, "budget_pauses"));
    cr_assert(held_peak > 0 && held_peak <= BUDGET_JOBS, "w2 held %lld outcomes", held_peak);
    cr_assert(bytes_peak > 0 && bytes_peak < (BUDGET_MB + THREADS * RUN_MB) * 1048576LL, "w2 held %lld bytes",
              bytes_peak);

    char *counts = farm_text1(COUNTS, "x");
    cr_log_info("jobs: %s; peak RSS: w1 %lld KiB, w2 %lld KiB; bound %d MiB", counts, rss1, rss2, BOUND_MB);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE id IN (SELECT id FROM ours) AND status = 'succeeded'"),
                 MEMBERS + SINGLES, "%s", counts);
    cr_assert_eq(farm_int("SELECT count(*) FROM results WHERE job_id IN (SELECT id FROM ours)"), MEMBERS + SINGLES);
    long long again = farm_int("SELECT count(*) FROM jobs WHERE id IN (SELECT id FROM held) AND attempt = 2");
    cr_log_info("%lld of w1's %lld ran again on w2; trades per job %lld..%lld", again, held,
                farm_int("SELECT min((r.metrics->>'trades')::int) FROM results r JOIN ours o ON o.id = r.job_id"),
                farm_int("SELECT max((r.metrics->>'trades')::int) FROM results r JOIN ours o ON o.id = r.job_id"));
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE id IN (SELECT id FROM ours)"
                          " AND id NOT IN (SELECT id FROM held) AND attempt <> 1"),
                 0, "a job w1 did not hold at its death ran twice: a lease was lost");
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE id IN (SELECT id FROM held) AND attempt > 2"), 0);
    cr_assert_gt(again, 0, "none of w1's jobs ran again: the kill lost nothing");
    cr_assert_eq(log_count(w2, "lease_lost"), 0, "w2 lost leases");
    cr_assert_eq(log_count(w1, "lease_lost"), 0, "w1 lost leases before its death");
    cr_assert_geq(farm_int("SELECT min((r.metrics->>'trades')::int) FROM results r JOIN ours o ON o.id = r.job_id"),
                  1000, "the jobs are not heavy");

    cr_assert(rss1 > 0 && rss2 > 0, "no VmHWM in /proc/<pid>/status");
    cr_assert(!RSS_CHECKED || rss1 < BOUND_MB * 1024LL, "w1 peaked at %lld KiB, over %d MiB", rss1, BOUND_MB);
    cr_assert(!RSS_CHECKED || rss2 < BOUND_MB * 1024LL, "w2 peaked at %lld KiB, over %d MiB", rss2, BOUND_MB);
    free(counts);
    free(batch);
    free(user);
}

/* A result bigger than SF_RESULT_MAX_MB fails its job at once, for good, with
 * an error that names the limit: the engine is deterministic, so a retry
 * would only build the same result again. */
Test(farm_heavy, a_result_too_big_to_store_fails_once_naming_the_limit)
{
    farm_dataset("WIDE", "1m", 200000, 22);
    char *user = farm_user("wide");
    farm_scheduler("sched", NULL);
    const char *env[] = {"SF_RESULT_MAX_MB=1", NULL};
    farm_worker("w1", 1, LEASE_S, env);
    char *job = farm_job(user, LOGIC_SHORT, "WIDE", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status IN ('succeeded', 'failed', 'dead') FROM jobs WHERE id = $1", job, 60000),
                "job not finished: %s", farm_job_state(job));
    char *state = farm_job_state(job);
    cr_log_info("%s", state);
    cr_assert(strncmp(state, "failed attempt=1 worker=w1 class=permanent error=", 49) == 0, "%s", state);
    cr_assert(strstr(state, "SF_RESULT_MAX_MB (1 MiB)") != NULL, "the error does not name the limit: %s", state);
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
    free(state);
    free(job);
    free(user);
}
