/*
 * Cross-process tests of failure classes (docs/architecture.md, "Failures" and invariants 3
 * and 4) with real sf-scheduler and sf-worker processes and no mocks:
 *
 * - transient, raised by the worker: the worker connects as a role that may
 *   not read the bars table (a real "permission denied" from PostgreSQL when
 *   it loads the data set, an unexpected error, so transient): each attempt
 *   goes back to pending with a growing backoff, then `dead` with the message;
 *   granting the permission back lets the next attempt succeed;
 * - transient, a crash: a worker killed (SIGKILL) while it holds the job
 *   (blocked loading bars behind the test's ACCESS EXCLUSIVE lock), three
 *   times: the reaper requeues with growing delays, then moves it to `dead`;
 * - permanent: invalid logic inserted directly in PostgreSQL (bypassing the
 *   API's validation) and a missing data set fail at once, attempt 1, with a
 *   message that names the problem.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"

static char g_role[64];

static void setup(void)
{
    g_role[0] = '\0';
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
    if (g_role[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", g_role);
        sf_db *db = sf_testenv_db_open(F.base_url);
        sf_testenv_exec(db, sql);
        sf_db_close(db);
    }
}

TestSuite(farm_retry, .init = setup, .fini = teardown, .timeout = 120);

static const char *const WAIT_FINAL =
    "SELECT status IN ('succeeded', 'failed', 'dead', 'cancelled') FROM jobs WHERE id = $1";

/* Milliseconds between the retry decision (updated_at) and run_at. */
static double backoff_ms(const char *job)
{
    char *s = farm_text1("SELECT extract(epoch FROM run_at - updated_at) * 1000 FROM jobs WHERE id = $1", job);
    double v = strtod(s, NULL);
    free(s);
    return v;
}

/* F.db_url with the user replaced by role. */
static void url_as(const char *role, char *out, size_t size)
{
    const char *scheme = strstr(F.db_url, "://");
    cr_assert(scheme != NULL);
    const char *host = scheme + 3;
    const char *at = strchr(host, '@');
    if (at)
        host = at + 1;
    snprintf(out, size, "%.*s%s@%s", (int)(scheme + 3 - F.db_url), F.db_url, role, host);
}

Test(farm_retry, a_transient_worker_error_retries_with_growing_delays_then_dies_with_its_message)
{
    sf_testenv_random_name("sf_t_role_", g_role, sizeof g_role);
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE ROLE %s LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO %s;"
             " GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s; REVOKE SELECT ON bars FROM %s",
             g_role, g_role, g_role, g_role);
    farm_exec(sql);
    char url[1200], env_url[1300];
    url_as(g_role, url, sizeof url);
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", url);

    farm_dataset("SMALL", "1d", 300, 3);
    char *user = farm_user("transient");
    farm_scheduler("sched", NULL);
    const char *wenv[] = {env_url, "RETRY_BASE_MS=400", "RETRY_CAP_MS=5000", NULL};
    farm_worker("w1", 1, 2, wenv);
    char *dead = farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3);

    /* Attempt 1 and 2 fail and wait a backoff each; attempt 3 ends dead. */
    double d[2] = {0, 0};
    for (int a = 1; a <= 2; a++) {
        char q[160];
        snprintf(q, sizeof q, "SELECT status = 'pending' AND attempt = %d FROM jobs WHERE id = $1", a);
        FARM_ASSERT(farm_wait_sql(q, dead, 20000), "attempt %d did not go back to pending: %s", a,
                    farm_job_state(dead));
        d[a - 1] = backoff_ms(dead);
        char *cls = farm_text1("SELECT coalesce(error_class, '') FROM jobs WHERE id = $1", dead);
        cr_assert_str_eq(cls, "transient");
        free(cls);
    }
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, dead, 20000), "not final: %s", farm_job_state(dead));
    char *st = farm_text1("SELECT status || ' ' || attempt || ' ' || error_class FROM jobs WHERE id = $1", dead);
    cr_assert_str_eq(st, "dead 3 transient");
    char *msg = farm_text1("SELECT coalesce(error, '') FROM jobs WHERE id = $1", dead);
    cr_assert(strstr(msg, "permission denied") != NULL, "error message: \"%s\"", msg);
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", dead), 0);
    /* Equal jitter over d = base * 2^(attempt-1): [d/2, d]. The base is
     * either the RETRY_BASE_MS given (400) or the 1000 ms default. */
    cr_log_info("backoff after attempt 1: %.0f ms, after attempt 2: %.0f ms", d[0], d[1]);
    double base = d[0] <= 400.0 + 5 ? 400.0 : 1000.0;
    cr_assert(d[0] >= base / 2 - 5 && d[0] <= base + 5, "first backoff %.0f ms not in [%.0f, %.0f]", d[0], base / 2,
              base);
    cr_assert(d[1] >= base - 5 && d[1] <= 2 * base + 5, "second backoff %.0f ms not in [%.0f, %.0f]", d[1], base,
              2 * base);

    /* The same failure, then the permission comes back: the retry succeeds. */
    char *ok = farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3);
    FARM_ASSERT(farm_wait_sql("SELECT status = 'pending' AND attempt = 1 FROM jobs WHERE id = $1", ok, 20000),
                "no transient failure: %s", farm_job_state(ok));
    snprintf(sql, sizeof sql, "GRANT SELECT ON bars TO %s", g_role);
    farm_exec(sql);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, ok, 20000), "not final: %s", farm_job_state(ok));
    char *st2 = farm_job_state(ok);
    cr_assert_str_eq(st2, "succeeded attempt=2 worker=w1 class=- error=-");
    double want = farm_expected_final_equity(FARM_LOGIC_SMA, "SMALL", "1d");
    double got = farm_result_final_equity(ok);
    cr_assert(memcmp(&want, &got, sizeof want) == 0, "final_equity %.17g, want %.17g", got, want);
    free(st2);
    free(ok);
    free(msg);
    free(st);
    free(dead);
    free(user);
}

Test(farm_retry, a_worker_killed_three_times_is_reaped_with_growing_delays_then_the_job_is_dead)
{
    farm_dataset("SMALL", "1d", 300, 4);
    char *user = farm_user("crashy");
    farm_scheduler("sched", NULL); /* RETRY_BASE_MS=400 */
    /* Workers block loading bars while they hold the job. */
    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    char *job = farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3);

    double d[2] = {0, 0};
    char prev_run_at[64] = "";
    for (int a = 1; a <= 3; a++) {
        char name[16], q[200];
        snprintf(name, sizeof name, "w%d", a);
        sf_proc *w = farm_worker(name, 1, 2, NULL);
        snprintf(q, sizeof q, "SELECT status = 'running' AND attempt = %d FROM jobs WHERE id = $1", a);
        FARM_ASSERT(farm_wait_sql(q, job, 20000), "attempt %d never ran: %s", a, farm_job_state(job));
        if (prev_run_at[0]) {
            const char *p[] = {job, prev_run_at};
            char *ok = farm_query1("SELECT started_at >= $2::timestamptz FROM jobs WHERE id = $1", 2, p);
            cr_assert_str_eq(ok, "t", "attempt %d started before its backoff ended (run_at %s)", a, prev_run_at);
            free(ok);
        }
        sf_proc_kill(w);
        if (a == 3)
            break;
        snprintf(q, sizeof q, "SELECT status = 'pending' AND attempt = %d FROM jobs WHERE id = $1", a);
        FARM_ASSERT(farm_wait_sql(q, job, 20000), "attempt %d was not reaped: %s", a, farm_job_state(job));
        d[a - 1] = backoff_ms(job);
        char *r = farm_text1("SELECT run_at::text FROM jobs WHERE id = $1", job);
        snprintf(prev_run_at, sizeof prev_run_at, "%s", r);
        free(r);
    }
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, job, 20000), "not final: %s", farm_job_state(job));
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
    char *st = farm_text1("SELECT status || ' ' || attempt || ' ' || error_class FROM jobs WHERE id = $1", job);
    cr_assert_str_eq(st, "dead 3 lease");
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1", job), 0);
    cr_log_info("reaper backoff after attempt 1: %.0f ms, after attempt 2: %.0f ms", d[0], d[1]);
    cr_assert(d[0] >= 200 - 5 && d[0] <= 400 + 5, "first backoff %.0f ms not in [200, 400]", d[0]);
    cr_assert(d[1] >= 400 - 5 && d[1] <= 800 + 5, "second backoff %.0f ms not in [400, 800]", d[1]);
    free(st);
    free(job);
    free(user);
}

Test(farm_retry, invalid_logic_and_a_missing_data_set_fail_at_once_with_their_message)
{
    farm_dataset("SMALL", "1d", 300, 5);
    char *user = farm_user("perm");
    farm_scheduler("sched", NULL);
    farm_worker("w1", 2, 2, NULL);
    const char *bad_logic = "{\"name\":\"bad\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"period\":0}},"
                            "\"entry\":{\"gt\":[\"fast\",\"close\"]},\"exit\":{\"lt\":[\"fast\",\"close\"]}}";
    char *bad = farm_job(user, bad_logic, "SMALL", "1d", 1, 5);
    char *missing = farm_job(user, FARM_LOGIC_SMA, "NOSUCH", "1d", 1, 5);

    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, bad, 20000), "not final: %s", farm_job_state(bad));
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, missing, 20000), "not final: %s", farm_job_state(missing));
    char *s1 = farm_text1("SELECT status || ' ' || attempt || ' ' || error_class FROM jobs WHERE id = $1", bad);
    char *s2 = farm_text1("SELECT status || ' ' || attempt || ' ' || error_class FROM jobs WHERE id = $1", missing);
    cr_assert_str_eq(s1, "failed 1 permanent");
    cr_assert_str_eq(s2, "failed 1 permanent");
    char *e1 = farm_text1("SELECT error FROM jobs WHERE id = $1", bad);
    char *e2 = farm_text1("SELECT error FROM jobs WHERE id = $1", missing);
    cr_assert(strstr(e1, "indicators.fast.period") != NULL, "error does not name the path: \"%s\"", e1);
    cr_assert(strstr(e2, "NOSUCH") != NULL || strstr(e2, "not found") != NULL || strstr(e2, "no data") != NULL,
              "error does not name the missing data set: \"%s\"", e2);
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 0);
    free(e2);
    free(e1);
    free(s2);
    free(s1);
    free(missing);
    free(bad);
    free(user);
}

/* A job over its time budget and one over the memory bound each fail at
 * once, attempt 1 of 5, naming the limit. The timed job is 64 cci over
 * 400,000 bars: over ten seconds of work on this machine class (about 0.2 s
 * each), so it cannot finish inside SF_JOB_TIMEOUT_S=1 on any machine of it,
 * loaded or idle; its worker allows the memory. The memory-bound job (48
 * series over 200,000 bars: 77 MiB) then goes to a second worker with
 * SF_RUN_MAX_MB=48. */
Test(farm_retry, a_run_over_its_time_budget_or_memory_bound_fails_at_once_naming_the_limit)
{
    farm_dataset("LONG", "1m", 400000, 9);
    farm_dataset("WIDE", "1m", 200000, 10);
    char *user = farm_user("bound");
    farm_scheduler("sched", NULL);
    const char *timeout_env[] = {"SF_JOB_TIMEOUT_S=1", "SF_RUN_MAX_MB=1024", NULL};
    sf_proc *w1 = farm_worker("w1", 2, 2, timeout_env);
    char slow[4096], wide[4096];
    size_t len = (size_t)snprintf(slow, sizeof slow, "{\"name\":\"slow\",\"indicators\":{");
    for (int i = 0; i < 64; i++)
        len += (size_t)snprintf(slow + len, sizeof slow - len, "%s\"c%d\":{\"type\":\"cci\",\"period\":%d}",
                                i ? "," : "", i, 100000 - i);
    snprintf(slow + len, sizeof slow - len, "},\"entry\":{\"gt\":[\"c0\",0]}}");
    len = (size_t)snprintf(wide, sizeof wide, "{\"name\":\"wide\",\"indicators\":{");
    for (int i = 0; i < 48; i++)
        len += (size_t)snprintf(wide + len, sizeof wide - len, "%s\"s%d\":{\"type\":\"sma\",\"period\":%d}",
                                i ? "," : "", i, i + 2);
    snprintf(wide + len, sizeof wide - len, "},\"entry\":{\"gt\":[\"s0\",\"s1\"]}}");
    char *timed = farm_job(user, slow, "LONG", "1m", 1, 5);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, timed, 60000), "not final: %s", farm_job_state(timed));
    cr_assert(sf_proc_stop(w1, SIGTERM, 20000));
    const char *memory_env[] = {"SF_RUN_MAX_MB=48", NULL};
    farm_worker("w2", 2, 2, memory_env);
    char *big = farm_job(user, wide, "WIDE", "1m", 1, 5);
    FARM_ASSERT(farm_wait_sql(WAIT_FINAL, big, 60000), "not final: %s", farm_job_state(big));
    const char *state = "SELECT status || ' ' || attempt || ' ' || coalesce(error_class, '-') || ': ' ||"
                        " coalesce(error, '-') FROM jobs WHERE id = $1";
    char *s1 = farm_text1(state, timed), *s2 = farm_text1(state, big);
    cr_assert_str_eq(s1, "failed 1 permanent: ran longer than SF_JOB_TIMEOUT_S (1 s)");
    cr_assert(strstr(s2, "failed 1 permanent: run too big: about 77 MiB over 200000 bars") == s2 &&
                  strstr(s2, "SF_RUN_MAX_MB (48 MiB)") != NULL,
              "%s", s2);
    char *secs = farm_text1("SELECT extract(epoch FROM finished_at - started_at) FROM jobs WHERE id = $1", timed);
    double ran = strtod(secs, NULL);
    free(secs);
    cr_log_info("the timed-out job ran %.3f s, loading its bars included", ran);
    cr_assert(ran >= 1.0, "ran %.3f s against a 1 s budget", ran);
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 0);
    free(s2);
    free(s1);
    free(big);
    free(timed);
    free(user);
}
