/*
 * Scheduler hand-over, end to end (docs/architecture.md, "Cron" and invariant 4): three real
 * sf-scheduler replicas and a worker. Replica A leads and fires a schedule's
 * missed minutes; A is killed (SIGKILL) and a schedule falls due while no one
 * leads; B takes over and fires it. Then B is paused (SIGSTOP: a leader that
 * believes it still leads), C takes over and fires a third schedule, and B is
 * resumed. Every schedule must have each due minute fired exactly once (a
 * contiguous run of minutes up to now, one logic_execution job per firing),
 * and the worker must run every firing's job to a terminal state.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_leader, .init = setup, .fini = teardown, .timeout = 120);

/* A schedule firing every minute with catch-up 'all', next_fire `back`
 * minutes before the current minute. */
static char *schedule(const char *user, const char *name, int back)
{
    char b[16];
    snprintf(b, sizeof b, "%d", back);
    const char *p[] = {user, name, FARM_LOGIC_SMA, b};
    char *id = farm_query1("INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, catch_up, next_fire)"
                           " VALUES ($1, $2, '* * * * *', $3::jsonb, 'SMALL', '1d', 'all',"
                           "  date_trunc('minute', now()) - $4::int * interval '1 minute') RETURNING id",
                           4, p);
    return id;
}

static int leader_is(const char *prefix)
{
    char like[64];
    snprintf(like, sizeof like, "%s%%", prefix);
    return farm_wait_sql("SELECT coalesce((SELECT holder LIKE $1 AND expires_at > now() FROM scheduler_leader"
                         " WHERE id = 1), false)",
                         like, 15000);
}

/* The schedule's firings are every minute from its first due one up to the
 * current minute, each once, each with its own job of this schedule. */
static void check_firings(const char *sid, long long want_first_back)
{
    FARM_ASSERT(farm_wait_sql("SELECT coalesce(max(fire_time) = date_trunc('minute', now()), false)"
                              " FROM schedule_firings WHERE schedule_id = $1::bigint",
                              sid, 15000),
                "schedule %s: the current minute was not fired", sid);
    long long n = farm_int1("SELECT count(*) FROM schedule_firings WHERE schedule_id = $1::bigint", sid);
    long long span = farm_int1("SELECT extract(epoch FROM max(fire_time) - min(fire_time))::bigint / 60 + 1"
                               " FROM schedule_firings WHERE schedule_id = $1::bigint",
                               sid);
    long long back = farm_int1("SELECT extract(epoch FROM date_trunc('minute', now()) - min(fire_time))::bigint / 60"
                               " FROM schedule_firings WHERE schedule_id = $1::bigint",
                               sid);
    cr_assert_eq(n, span, "schedule %s: %lld firings over %lld minutes (a gap)", sid, n, span);
    cr_assert(back == want_first_back || back == want_first_back + 1,
              "schedule %s: first firing %lld minutes back, want %lld", sid, back, want_first_back);
    cr_assert_eq(farm_int1("SELECT count(DISTINCT job_id) FROM schedule_firings WHERE schedule_id = $1::bigint", sid),
                 n);
    cr_assert_eq(
        farm_int1("SELECT count(*) FROM jobs WHERE schedule_id = $1::bigint AND kind = 'logic_execution'", sid), n,
        "schedule %s: jobs and firings differ", sid);
    cr_assert_eq(farm_int1("SELECT count(*) FROM schedule_firings f JOIN jobs j ON j.id = f.job_id"
                           " WHERE f.schedule_id = $1::bigint AND j.schedule_id = f.schedule_id",
                           sid),
                 n);
}

Test(farm_leader, a_killed_leader_and_a_paused_leader_lose_and_double_no_cron_firing)
{
    farm_dataset("SMALL", "1d", 300, 41);
    char *user = farm_user("cron");
    farm_worker("w1", 2, 2, NULL);
    sf_proc *a = farm_scheduler("schedA-", NULL);
    FARM_ASSERT(leader_is("schedA-"), "A did not become leader");
    char *s1 = schedule(user, "s1", 3);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) >= 4 FROM schedule_firings WHERE schedule_id = $1::bigint", s1, 10000),
                "A did not fire s1's missed minutes");

    /* Kill the leader; s2 falls due while nobody leads; B takes over. */
    sf_proc *b = farm_scheduler("schedB-", NULL);
    sf_proc_sleep_ms(500);
    FARM_ASSERT(leader_is("schedA-"), "B took the lease from a live leader");
    sf_proc_kill(a);
    char *s2 = schedule(user, "s2", 2);
    FARM_ASSERT(leader_is("schedB-"), "B did not take over");
    FARM_ASSERT(farm_wait_sql("SELECT count(*) >= 3 FROM schedule_firings WHERE schedule_id = $1::bigint", s2, 10000),
                "B did not fire s2");

    /* Pause the leader B; C takes over and fires s3; B resumes. */
    farm_scheduler("schedC-", NULL);
    sf_proc_signal(b, SIGSTOP);
    char *s3 = schedule(user, "s3", 2);
    FARM_ASSERT(leader_is("schedC-"), "C did not take over from the paused B");
    FARM_ASSERT(farm_wait_sql("SELECT count(*) >= 3 FROM schedule_firings WHERE schedule_id = $1::bigint", s3, 10000),
                "C did not fire s3");
    sf_proc_signal(b, SIGCONT);
    sf_proc_sleep_ms(3000);
    FARM_ASSERT(leader_is("schedC-"), "the resumed B took the lease back from C");

    check_firings(s1, 3);
    check_firings(s2, 2);
    check_firings(s3, 2);

    /* The worker runs every firing's logic_execution job to the end. */
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 0 FROM jobs WHERE kind = 'logic_execution'"
                              " AND status NOT IN ('succeeded', 'failed', 'dead', 'cancelled')"
                              " AND $1 <> ''",
                              "x", 20000),
                "logic_execution jobs left unfinished");
    char *statuses = farm_text1("SELECT string_agg(status || ':' || n, ',' ORDER BY status) FROM"
                                " (SELECT status::text, count(*) n FROM jobs WHERE kind = 'logic_execution'"
                                "  AND $1 <> '' GROUP BY status) s",
                                "x");
    cr_log_info("logic_execution jobs: %s; signals rows: %lld", statuses, farm_int("SELECT count(*) FROM signals"));
    long long ok = farm_int("SELECT count(*) FROM jobs WHERE kind = 'logic_execution' AND status = 'succeeded'");
    long long all = farm_int("SELECT count(*) FROM jobs WHERE kind = 'logic_execution'");
    cr_assert_eq(ok, all, "logic_execution jobs: %s", statuses);
    free(statuses);
    free(s3);
    free(s2);
    free(s1);
    free(user);
}
