/*
 * Cancellation across processes (docs/architecture.md, "Cancellation" and
 * invariant 4): a queued job is cancelled in PostgreSQL and never runs; a running long
 * backtest gets cancel_requested plus a message on the cancel channel, which
 * the worker hears at once, and ends `cancelled` with no result whatever it
 * was doing (a cancel always wins); a batch cancel stops a sweep: no member
 * starts after it, no member asked to stop succeeds, and every member ends in
 * exactly one terminal state. The
 * cancels are made the way sf-api makes them (sf_job_cancel /
 * sf_job_cancel_batch, then sf_queue_remove / sf_queue_publish_cancel).
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/job.h"
#include "sf/queue.h"

#define BIG_BARS 400000

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_cancel, .init = setup, .fini = teardown, .timeout = 120);

static const char *const WAIT_FINAL =
    "SELECT status IN ('succeeded', 'failed', 'dead', 'cancelled') FROM jobs WHERE id = $1";

/* Cancel like sf-api: PostgreSQL first, then the best-effort Redis side. */
static sf_job_cancel_result cancel_job(const char *job)
{
    sf_job_cancel_result r = SF_JOB_CANCEL_NOT_FOUND;
    sf_queue_entry e;
    memset(&e, 0, sizeof e);
    sf_err err = {0};
    cr_assert_eq(sf_job_cancel(F.db, job, NULL, &r, &e, &err), SF_OK, "%s", err.msg);
    sf_redis *rd = farm_redis_open();
    cr_assert(rd != NULL);
    sf_queue *q = NULL;
    cr_assert_eq(sf_queue_new("backtest", rd, &q, &err), SF_OK, "%s", err.msg);
    if (r == SF_JOB_CANCEL_DONE && e.id[0])
        cr_assert_eq(sf_queue_remove(q, &e, 1, NULL, &err), SF_OK, "%s", err.msg);
    if (r == SF_JOB_CANCEL_REQUESTED)
        cr_assert_eq(sf_queue_publish_cancel(q, &job, 1, &err), SF_OK, "%s", err.msg);
    sf_queue_free(q);
    sf_redis_close(rd);
    return r;
}

Test(farm_cancel, a_queued_job_cancelled_never_runs)
{
    farm_dataset("SMALL", "1d", 300, 31);
    char *user = farm_user("cq");
    farm_scheduler("sched", NULL);
    char *job = farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'queued' FROM jobs WHERE id = $1", job, 15000), "not queued: %s",
                farm_job_state(job));
    cr_assert_eq(cancel_job(job), SF_JOB_CANCEL_DONE);

    /* A worker now: it takes the later job and never the cancelled one. */
    farm_worker("w1", 2, 2, NULL);
    char *later = farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, later, 15000), "later job not final: %s", farm_job_state(later));
    sf_proc_sleep_ms(300);
    char *st = farm_text1("SELECT status || ' ' || attempt || ' ' || (started_at IS NULL) || ' ' || error_class"
                          " FROM jobs WHERE id = $1",
                          job);
    cr_assert_str_eq(st, "cancelled 0 true cancelled");
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", later), 1);
    /* Cancelling again changes nothing. */
    cr_assert_eq(cancel_job(job), SF_JOB_CANCEL_FINAL);
    free(st);
    free(later);
    free(job);
    free(user);
}

/*
 * The engine phase of a backtest here is a fraction of a second (SSE2
 * kernels), shorter than the worker's cancel latency (the heartbeat, lease/3),
 * so the job is held in the middle another way: the test locks the bars table
 * (ACCESS EXCLUSIVE) and the claimed job blocks loading its data set. The
 * cancel is requested while it is running there, the cancel channel (or
 * the heartbeat) delivers it,
 * then the lock goes and the engine must stop at its first cancel check.
 */
Test(farm_cancel, a_running_backtest_cancelled_stops_without_a_result)
{
    farm_dataset("MED", "1m", 50000, 32);
    char *user = farm_user("cr");
    farm_scheduler("sched", NULL);
    farm_worker("w1", 1, 3, NULL);
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    char *job = farm_job(user, FARM_LOGIC_HEAVY, "MED", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'running' FROM jobs WHERE id = $1", job, 20000), "never ran: %s",
                farm_job_state(job));
    sf_job_cancel_result r = cancel_job(job);
    FARM_ASSERT(r == SF_JOB_CANCEL_REQUESTED, "cancel result %d: %s", (int)r, farm_job_state(job));
    cr_assert_eq(farm_int1("SELECT cancel_requested::int FROM jobs WHERE id = $1", job), 1);
    sf_proc_sleep_ms(1500); /* more than one heartbeat (lease 3 s / 3) */
    int64_t t0 = sf_proc_now_ms();
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, job, 20000), "not final: %s", farm_job_state(job));
    cr_log_info("cancelled %lld ms after its data could load", (long long)(sf_proc_now_ms() - t0));
    char *st = farm_text1("SELECT status || ' ' || attempt || ' ' || coalesce(error_class, '-') FROM jobs"
                          " WHERE id = $1",
                          job);
    FARM_ASSERT(strcmp(st, "cancelled 1 cancelled") == 0, "after the cancel: %s", farm_job_state(job));
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
    free(st);
    free(job);
    free(user);
}

/* Subscribers of the cancel channel (PUBSUB NUMSUB). */
static int subscribed_(void *ctx)
{
    (void)ctx;
    const char *argv[] = {"PUBSUB", "NUMSUB", "sf:{backtest}:cancel"};
    sf_redis *rd = farm_redis_open();
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    int n = 0;
    if (rd && sf_redis_cmd(rd, 3, argv, NULL, &rep, &err) == SF_OK && sf_redis_reply_len(rep) == 2)
        n = (int)sf_redis_reply_int(sf_redis_reply_at(rep, 1));
    sf_redis_reply_free(rep);
    sf_redis_close(rd);
    return n > 0;
}

typedef struct heard_ctx {
    const sf_proc *worker;
    const char *job;
} heard_ctx;

/* The worker logged that it heard the job's cancel on the channel. */
static int heard_(void *ctx)
{
    const heard_ctx *h = ctx;
    char *log = sf_proc_log_read(h->worker, (size_t)1 << 20);
    int found = 0;
    for (const char *p = strstr(log, "cancel heard"); p && !found; p = strstr(p + 1, "cancel heard")) {
        const char *nl = strchr(p, '\n');
        const char *id = strstr(p, h->job);
        found = id != NULL && (nl == NULL || id < nl);
    }
    free(log);
    return found;
}

/*
 * A cancel always wins, and the worker hears it at once: the worker's lease
 * is 30 s, so its heartbeat (the fallback) comes every 10 s, far beyond the
 * one second a cancel may take. The job is held where its attempt waits for
 * its data (bars locked, as above); the cancel is published, the worker logs
 * that it heard it (its subscriber set the slot's flag), then the lock goes:
 * from there the job must be cancelled within 2.5 s (7.5 s under ASan), with no result.
 */
Test(farm_cancel, a_running_backtest_hears_its_cancel_at_once)
{
    farm_dataset("MED", "1m", 50000, 35);
    char *user = farm_user("cl");
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 1, 30, NULL);
    cr_assert(sf_proc_wait_until(subscribed_, NULL, 10000, 20), "the worker never subscribed to the cancel channel");
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    char *job = farm_job(user, FARM_LOGIC_HEAVY, "MED", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'running' FROM jobs WHERE id = $1", job, 20000), "never ran: %s",
                farm_job_state(job));
    int64_t t_cancel = sf_proc_now_ms();
    sf_job_cancel_result r = cancel_job(job);
    FARM_ASSERT(r == SF_JOB_CANCEL_REQUESTED, "cancel result %d: %s", (int)r, farm_job_state(job));
    heard_ctx h = {w1, job};
    FARM_ASSERT(sf_proc_wait_until(heard_, &h, 5000, 5), "the worker did not hear the cancel (heartbeat is 10 s)");
    int64_t heard_ms = sf_proc_now_ms() - t_cancel;
    int64_t t0 = sf_proc_now_ms();
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, job, 20000), "not final: %s", farm_job_state(job));
    int64_t ms = sf_proc_now_ms() - t0;
    cr_log_info("cancel heard %lld ms after it was published; cancelled %lld ms after its data could load",
                (long long)heard_ms, (long long)ms);
    char *st = farm_text1("SELECT status || ' ' || coalesce(error_class, '-') FROM jobs WHERE id = $1", job);
    FARM_ASSERT(strcmp(st, "cancelled cancelled") == 0, "after the cancel: %s", farm_job_state(job));
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
    /* the heartbeat, the fallback, is 10 s away: 2.5 s (7.5 s under ASan) is pub/sub */
    FARM_ASSERT(ms < 2500 * FARM_TIME_SCALE, "cancelled %lld ms after its data could load", (long long)ms);
    free(st);
    free(job);
    free(user);
}

/* Without any lock: the job is computing (or about to finish) when the
 * cancel comes. Whichever comes first, the cancel wins: once answered
 * "asked to stop", the job ends cancelled with no result, within 2.5 s
 * (7.5 s under ASan; the heartbeat is 10 s away). A first job on the same data set warms the
 * worker's cache, so the second computes from its start: a cancel heard
 * while a data set loads waits for the load (about a second for these
 * 400,000 bars here). */
Test(farm_cancel, a_running_long_backtest_cancel_latency_is_reported)
{
    farm_dataset("BIG", "1m", BIG_BARS, 34);
    char *user = farm_user("cl");
    farm_scheduler("sched", NULL);
    farm_worker("w1", 1, 30, NULL);
    cr_assert(sf_proc_wait_until(subscribed_, NULL, 10000, 20), "the worker never subscribed to the cancel channel");
    char *warm = farm_job(user, FARM_LOGIC_SMA, "BIG", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, warm, 30000), "warm-up not final: %s", farm_job_state(warm));
    free(warm);
    char *job = farm_job(user, FARM_LOGIC_HEAVY, "BIG", "1m", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'running' FROM jobs WHERE id = $1", job, 20000), "never ran: %s",
                farm_job_state(job));
    int64_t t0 = sf_proc_now_ms();
    sf_job_cancel_result r = cancel_job(job);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, job, 30000), "not final: %s", farm_job_state(job));
    int64_t ms = sf_proc_now_ms() - t0;
    char *st = farm_job_state(job);
    cr_log_info("cancel result %d; %lld ms later: %s", (int)r, (long long)ms, st);
    if (r == SF_JOB_CANCEL_REQUESTED) {
        FARM_ASSERT(strncmp(st, "cancelled", 9) == 0, "asked to stop, then: %s", st);
        cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
        FARM_ASSERT(ms < 2500 * FARM_TIME_SCALE, "cancelled %lld ms after the cancel", (long long)ms);
    } else { /* it had finished before the cancel: nothing to cancel */
        cr_assert_eq(r, SF_JOB_CANCEL_FINAL);
        cr_assert(strncmp(st, "succeeded", 9) == 0, "%s", st);
        cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 1);
    }
    free(st);
    free(job);
    free(user);
}

Test(farm_cancel, a_batch_cancel_stops_the_sweep_and_every_member_ends_once)
{
    farm_dataset("MED", "1m", 50000, 33);
    char *user = farm_user("cb");
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 1, 2, NULL);
    const char *grid = "{\"indicators.fast.period\": {\"from\": 2, \"to\": 201, \"step\": 1}}";
    /* Members 20 and up are held back (run_at infinity) until the cancel:
     * whatever the machine's speed, some are still pending when it lands
     * (a fast worker once finished all 200 before the test looked). */
    char *batch = farm_sweep_held(user, FARM_LOGIC_SMA, grid, "MED", "1m", 200, 20);
    FARM_ASSERT(
        farm_wait_sql("SELECT count(*) >= 3 FROM jobs WHERE batch_id = $1 AND status = 'succeeded'", batch, 30000),
        "the sweep does not run: %s",
        farm_text1("SELECT string_agg(DISTINCT status || ' ' ||"
                   " coalesce(error, '-'), '; ') FROM jobs WHERE $1 <> ''",
                   "x"));
    int found = 0;
    int64_t cancelled = 0, requested = 0;
    sf_err err = {0};
    /* The cancel lands at a known point: the worker is frozen with what it
     * holds, so members remain to be cancelled whatever the machine's speed. */
    sf_proc_signal(w1, SIGSTOP);
    cr_assert_eq(sf_job_cancel_batch(F.db, batch, NULL, &found, &cancelled, &requested, &err), SF_OK, "%s", err.msg);
    sf_proc_signal(w1, SIGCONT);
    cr_assert_eq(found, 1);
    char *t_cancel = farm_text1("SELECT now()::text WHERE $1 <> ''", "x");
    cr_log_info("batch cancel: %lld cancelled at once, %lld running asked to stop", (long long)cancelled,
                (long long)requested);
    cr_assert_gt(cancelled, 0);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 0 FROM jobs WHERE batch_id = $1"
                              " AND status NOT IN ('succeeded', 'cancelled')",
                              batch, 20000),
                "members still live");
    sf_proc_sleep_ms(500);
    cr_assert_eq(farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1", batch), 200);
    long long ok = farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1 AND status = 'succeeded'", batch);
    long long cx = farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1 AND status = 'cancelled'", batch);
    cr_assert_eq(ok + cx, 200);
    /* A cancel always wins: no running member asked to stop succeeded, and
     * every member that succeeded finished before the cancel. */
    cr_assert_eq(cx, cancelled + requested, "cancelled %lld, want %lld", cx, (long long)(cancelled + requested));
    cr_assert_eq(farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1 AND status = 'succeeded'"
                           " AND cancel_requested",
                           batch),
                 0, "a member asked to stop succeeded");
    cr_assert_eq(
        farm_int1("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.batch_id = $1", batch), ok);
    const char *p[] = {batch, t_cancel};
    char *late = farm_query1("SELECT count(*) FROM jobs WHERE batch_id = $1 AND started_at > $2::timestamptz", 2, p);
    cr_assert_str_eq(late, "0", "%s members started after the batch cancel", late);
    free(late);
    free(t_cancel);
    free(batch);
    free(user);
}
