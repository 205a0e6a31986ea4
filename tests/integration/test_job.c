/*
 * Integration tests for sf_job (every job state change) against the local
 * PostgreSQL: every test gets its own scratch database with the migrations.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../support/testenv.h"
#include "sf/job.h"

static char g_base_url[1024];
static char g_name[64];
static char g_url[1024];
static sf_db *g_db;
static char g_user[64];

#define LOGIC "{\"name\":\"x\"}"
#define LEASE_MS 30000

static char *q1(const char *sql, const char *p1)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *params[] = {p1};
    if (sf_db_query(g_db, sql, p1 ? 1 : 0, p1 ? params : NULL, &res, &err) != SF_OK)
        cr_assert_fail("%s: %s", sql, err.msg);
    cr_assert_eq(sf_db_nrows(res), 1, "%s: %d rows", sql, sf_db_nrows(res));
    const char *v = sf_db_get(res, 0, 0);
    char *copy = strdup(v ? v : "");
    sf_db_res_free(res);
    return copy;
}

/* Run a one-row statement for its effect. */
static void q1x(const char *sql, const char *p1)
{
    free(q1(sql, p1));
}

static long long q1i(const char *sql, const char *p1)
{
    char *s = q1(sql, p1);
    long long v = strtoll(s, NULL, 10);
    free(s);
    return v;
}

static void q1s(const char *sql, const char *p1, const char *want)
{
    char *s = q1(sql, p1);
    cr_assert_str_eq(s, want, "%s: got \"%s\"", sql, s);
    free(s);
}

static void setup(void)
{
    g_db = sf_testenv_scratch_migrated(g_base_url, sizeof g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
    char *u = q1("INSERT INTO users (email, name, password_hash) VALUES ('a@t', 'a', 'x') RETURNING id", NULL);
    snprintf(g_user, sizeof g_user, "%s", u);
    free(u);
}

static void teardown(void)
{
    sf_db_close(g_db);
    g_db = NULL;
    sf_testenv_scratch_drop(g_base_url, g_name);
}

TestSuite(job, .init = setup, .fini = teardown, .timeout = 60);

/* A job of g_user in status, returning its id (caller frees). */
static char *new_job(const char *status, int max_attempts)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (user_id, logic, symbol, timeframe, status, max_attempts) "
             "VALUES ($1, '" LOGIC "', 'SYM', '1d', '%s', %d) RETURNING id",
             status, max_attempts);
    return q1(sql, g_user);
}

static sf_job claim_one(const char *id)
{
    sf_job jobs[1];
    size_t n = 9;
    sf_err err = {0};
    const char *ids[] = {id};
    cr_assert_eq(sf_job_claim(g_db, ids, 1, "w1", LEASE_MS, NULL, 0, jobs, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1, "claimed %zu", n);
    return jobs[0];
}

static int complete(const char *id, int64_t fence, sf_job_outcome o, const char *error, char *status)
{
    sf_job_done d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%s", id);
    d.fence = fence;
    d.outcome = o;
    d.error = error;
    d.metrics = "{\"sharpe\": 1.5}";
    d.trades = "[]";
    d.equity = "[{\"equity\": 1}]";
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, &d, 1, NULL, &err), SF_OK, "%s", err.msg);
    if (status)
        snprintf(status, SF_JOB_STATUS_MAX, "%s", d.status);
    return d.applied;
}

Test(job, claim_sets_running_with_a_fresh_fence_and_the_next_attempt)
{
    char *id = new_job("queued", 3);
    sf_job j = claim_one(id);
    cr_assert_str_eq(j.id, id);
    cr_assert_str_eq(j.user_id, g_user);
    cr_assert_eq(j.attempt, 1);
    cr_assert_eq(j.max_attempts, 3);
    cr_assert_gt(j.fence, 0);
    cr_assert_str_eq(j.logic, "{\"name\": \"x\"}", "jsonb text");
    cr_assert_null(j.grid);
    cr_assert_eq(j.combo_index, -1);
    cr_assert_null(j.bad);
    q1s("SELECT status || ' ' || attempt || ' ' || worker FROM jobs WHERE id = $1", id, "running 1 w1");
    char want[32];
    snprintf(want, sizeof want, "%" PRId64, j.fence);
    q1s("SELECT fence::text FROM jobs WHERE id = $1", id, want);
    cr_assert_eq(q1i("SELECT round(extract(epoch FROM lease_until - now()))::int FROM jobs WHERE id = $1", id), 30);
    sf_job_destroy(&j);

    sf_job again[1];
    size_t n = 9;
    sf_err err = {0};
    const char *ids[] = {id};
    cr_assert_eq(sf_job_claim(g_db, ids, 1, "w2", LEASE_MS, NULL, 0, again, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 0, "a second claim of a running job returns nothing");
    q1s("SELECT worker FROM jobs WHERE id = $1", id, "w1");
    free(id);
}

Test(job, claim_skips_pending_and_cancel_requested_rows_in_a_batch)
{
    char *a = new_job("queued", 3), *b = new_job("pending", 3), *c = new_job("queued", 3);
    q1x("UPDATE jobs SET cancel_requested = true WHERE id = $1 RETURNING 1", c);
    const char *ids[] = {a, b, c};
    sf_job jobs[3];
    size_t n = 0;
    sf_err err = {0};
    cr_assert_eq(sf_job_claim(g_db, ids, 3, "w", LEASE_MS, NULL, 0, jobs, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(jobs[0].id, a);
    sf_job_destroy(&jobs[0]);
    free(a), free(b), free(c);
}

Test(job, a_late_worker_with_a_stale_fence_writes_nothing)
{
    char *id = new_job("queued", 3);
    sf_job first = claim_one(id);
    /* the first worker is presumed dead: its lease expires, the reaper requeues */
    q1x("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1 RETURNING 1", id);
    sf_job_reap_stats rs;
    sf_err err = {0};
    cr_assert_eq(sf_job_reap(g_db, 100, NULL, &rs, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rs.retried, 1);
    q1x("UPDATE jobs SET status = 'queued' WHERE id = $1 RETURNING 1", id);
    sf_job second = claim_one(id);
    cr_assert_eq(second.attempt, 2);
    cr_assert_gt(second.fence, first.fence);

    cr_assert_eq(complete(id, first.fence, SF_JOB_SUCCEEDED, NULL, NULL), 0, "stale fence applied");
    cr_assert_eq(complete(id, first.fence, SF_JOB_TRANSIENT, "late", NULL), 0);
    q1s("SELECT status::text FROM jobs WHERE id = $1", id, "running");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", id), 0);

    char st[SF_JOB_STATUS_MAX];
    cr_assert_eq(complete(id, second.fence, SF_JOB_SUCCEEDED, NULL, st), 1);
    cr_assert_str_eq(st, "succeeded");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", id), 1);
    q1s("SELECT metrics->>'sharpe' FROM results WHERE job_id = $1", id, "1.5");
    cr_assert_eq(complete(id, second.fence, SF_JOB_SUCCEEDED, NULL, NULL), 0, "a repeat is a no-op");
    sf_job_destroy(&first);
    sf_job_destroy(&second);
    free(id);
}

/* Delay in ms between the retry's run_at and the statement's now(). */
static long long retry_delay_ms(const char *id)
{
    return q1i("SELECT round(extract(epoch FROM run_at - updated_at) * 1000)::bigint FROM jobs WHERE id = $1", id);
}

Test(job, transient_failures_back_off_with_equal_jitter_then_die_at_max_attempts)
{
    char *id = new_job("queued", 3);
    long long lo[] = {500, 1000}, hi[] = {1000, 2000}; /* d/2 .. d for d = 1 s, 2 s */
    for (int attempt = 1; attempt <= 3; attempt++) {
        sf_job j = claim_one(id);
        cr_assert_eq(j.attempt, attempt);
        char st[SF_JOB_STATUS_MAX];
        cr_assert_eq(complete(id, j.fence, SF_JOB_TRANSIENT, "flaky", st), 1);
        sf_job_destroy(&j);
        if (attempt == 3) {
            cr_assert_str_eq(st, "dead");
            break;
        }
        cr_assert_str_eq(st, "pending");
        long long d = retry_delay_ms(id);
        cr_assert(d >= lo[attempt - 1] && d <= hi[attempt - 1], "attempt %d: delay %lld ms", attempt, d);
        q1x("UPDATE jobs SET status = 'queued' WHERE id = $1 RETURNING 1", id);
    }
    q1s("SELECT status || ' ' || attempt || ' ' || error || ' ' || error_class || ' ' || "
        "(finished_at IS NOT NULL) FROM jobs WHERE id = $1",
        id, "dead 3 flaky transient true");
    free(id);
}

Test(job, backoff_is_capped)
{
    char *id = new_job("queued", 50);
    q1x("UPDATE jobs SET attempt = 30 WHERE id = $1 RETURNING 1", id);
    sf_job j = claim_one(id);
    sf_job_done d = {.fence = j.fence, .outcome = SF_JOB_TRANSIENT, .error = "x"};
    snprintf(d.id, sizeof d.id, "%s", id);
    sf_job_retry r = {.base_ms = 1000, .cap_ms = 4000};
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, &d, 1, &r, &err), SF_OK, "%s", err.msg);
    long long ms = retry_delay_ms(id);
    cr_assert(ms >= 2000 && ms <= 4000, "delay %lld", ms);
    sf_job_destroy(&j);
    free(id);
}

Test(job, a_permanent_failure_fails_at_once)
{
    char *id = new_job("queued", 5);
    sf_job j = claim_one(id);
    char st[SF_JOB_STATUS_MAX];
    cr_assert_eq(complete(id, j.fence, SF_JOB_FAILED, "indicators.fast.period: must be an integer >= 1", st), 1);
    cr_assert_str_eq(st, "failed");
    q1s("SELECT status || ' ' || attempt || ' ' || error_class || ' ' || error FROM jobs WHERE id = $1", id,
        "failed 1 permanent indicators.fast.period: must be an integer >= 1");
    sf_job_destroy(&j);
    free(id);
}

Test(job, a_release_returns_the_job_without_spending_an_attempt)
{
    char *id = new_job("queued", 3);
    sf_job j = claim_one(id);
    char st[SF_JOB_STATUS_MAX];
    cr_assert_eq(complete(id, j.fence, SF_JOB_RELEASED, NULL, st), 1);
    cr_assert_str_eq(st, "pending");
    q1s("SELECT status || ' ' || attempt || ' ' || (run_at <= now()) || ' ' || (lease_until IS NULL) "
        "FROM jobs WHERE id = $1",
        id, "pending 0 true true");
    sf_job_destroy(&j);
    free(id);
}

Test(job, one_completion_batch_mixes_outcomes_in_one_transaction)
{
    char *a = new_job("queued", 3), *b = new_job("queued", 3), *c = new_job("queued", 3);
    sf_job ja = claim_one(a), jb = claim_one(b), jc = claim_one(c);
    sf_job_done d[4];
    memset(d, 0, sizeof d);
    snprintf(d[0].id, sizeof d[0].id, "%s", a);
    d[0].fence = ja.fence, d[0].outcome = SF_JOB_SUCCEEDED, d[0].metrics = "{\"a\": \"quote \\\" and \\\\ ok\"}";
    snprintf(d[1].id, sizeof d[1].id, "%s", b);
    d[1].fence = jb.fence, d[1].outcome = SF_JOB_FAILED, d[1].error = "bad \"logic\"";
    snprintf(d[2].id, sizeof d[2].id, "%s", c);
    d[2].fence = jc.fence, d[2].outcome = SF_JOB_CANCELLED;
    snprintf(d[3].id, sizeof d[3].id, "%s", c);
    d[3].fence = jc.fence + 1000, d[3].outcome = SF_JOB_SUCCEEDED; /* stale/wrong fence */
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, d, 4, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(d[0].applied, 1);
    cr_assert_eq(d[1].applied, 1);
    cr_assert_eq(d[2].applied, 1);
    cr_assert_eq(d[3].applied, 0);
    q1s("SELECT metrics->>'a' FROM results WHERE job_id = $1", a, "quote \" and \\ ok");
    q1s("SELECT status || ' ' || error FROM jobs WHERE id = $1", b, "failed bad \"logic\"");
    q1s("SELECT status::text FROM jobs WHERE id = $1", c, "cancelled");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", c), 0);
    sf_job_destroy(&ja), sf_job_destroy(&jb), sf_job_destroy(&jc);
    free(a), free(b), free(c);
}

/* A cancel always wins: once a running job's cancel was requested, a
 * completion that says succeeded (or failed, alone or in a batch with a
 * signal) ends it cancelled, with no results or signals row. */
Test(job, a_completion_of_a_job_whose_cancel_was_requested_ends_cancelled_without_a_result)
{
    char *a = new_job("queued", 3), *b = new_job("queued", 3), *c = new_job("queued", 3);
    char *ok = new_job("queued", 3);
    sf_job ja = claim_one(a), jb = claim_one(b), jc = claim_one(c), jok = claim_one(ok);
    sf_job_cancel_result res;
    sf_err err = {0};
    const char *asked[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sf_job_cancel(g_db, asked[i], NULL, &res, NULL, &err), SF_OK, "%s", err.msg);
        cr_assert_eq(res, SF_JOB_CANCEL_REQUESTED);
    }
    char st[SF_JOB_STATUS_MAX];
    cr_assert_eq(complete(a, ja.fence, SF_JOB_SUCCEEDED, NULL, st), 1);
    cr_assert_str_eq(st, "cancelled");
    cr_assert_eq(complete(b, jb.fence, SF_JOB_FAILED, "bad logic", st), 1);
    cr_assert_str_eq(st, "cancelled");
    /* one statement: a succeeded row with a signal next to one that is not cancelled */
    sf_job_signal sig = {1700000000, "enter", 1};
    sf_job_done d[2];
    memset(d, 0, sizeof d);
    snprintf(d[0].id, sizeof d[0].id, "%s", c);
    d[0].fence = jc.fence, d[0].outcome = SF_JOB_SUCCEEDED, d[0].metrics = "{}", d[0].signal = &sig;
    snprintf(d[1].id, sizeof d[1].id, "%s", ok);
    d[1].fence = jok.fence, d[1].outcome = SF_JOB_SUCCEEDED, d[1].metrics = "{\"sharpe\": 2}";
    cr_assert_eq(sf_job_complete(g_db, d, 2, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert(d[0].applied && d[1].applied);
    cr_assert_str_eq(d[0].status, "cancelled");
    cr_assert_str_eq(d[1].status, "succeeded");
    for (int i = 0; i < 3; i++) {
        q1s("SELECT status || ' ' || error_class || ' ' || (finished_at IS NOT NULL) FROM jobs WHERE id = $1", asked[i],
            "cancelled cancelled true");
        cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", asked[i]), 0, "a result stored");
        cr_assert_eq(q1i("SELECT count(*) FROM signals WHERE job_id = $1", asked[i]), 0, "a signal stored");
        cr_assert_eq(sf_job_cancel(g_db, asked[i], NULL, &res, NULL, &err), SF_OK, "%s", err.msg);
        cr_assert_eq(res, SF_JOB_CANCEL_FINAL);
    }
    q1s("SELECT status::text FROM jobs WHERE id = $1", ok, "succeeded");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", ok), 1);
    sf_job_destroy(&ja), sf_job_destroy(&jb), sf_job_destroy(&jc), sf_job_destroy(&jok);
    free(a), free(b), free(c), free(ok);
}

Test(job, heartbeat_renews_only_matching_fences_and_reports_cancel_requests)
{
    char *a = new_job("queued", 3), *b = new_job("queued", 3);
    sf_job ja = claim_one(a), jb = claim_one(b);
    q1x("UPDATE jobs SET lease_until = now() + interval '1 second' WHERE id = $1 RETURNING 1", a);
    sf_job_cancel_result cr;
    sf_err err = {0};
    cr_assert_eq(sf_job_cancel(g_db, b, NULL, &cr, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(cr, SF_JOB_CANCEL_REQUESTED);
    sf_job_lease l[3];
    memset(l, 0, sizeof l);
    snprintf(l[0].id, sizeof l[0].id, "%s", a);
    l[0].fence = ja.fence;
    snprintf(l[1].id, sizeof l[1].id, "%s", b);
    l[1].fence = jb.fence;
    snprintf(l[2].id, sizeof l[2].id, "%s", a);
    l[2].fence = ja.fence + 77;
    cr_assert_eq(sf_job_heartbeat(g_db, l, 3, 60000, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(l[0].alive, 1);
    cr_assert_eq(l[0].cancel_requested, 0);
    cr_assert_eq(l[1].alive, 1);
    cr_assert_eq(l[1].cancel_requested, 1);
    cr_assert_eq(q1i("SELECT round(extract(epoch FROM lease_until - now()))::int FROM jobs WHERE id = $1", a), 60);
    /* after the reaper took b, its heartbeat reports the lease lost */
    q1x("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1 RETURNING 1", b);
    sf_job_reap_stats rs;
    cr_assert_eq(sf_job_reap(g_db, 10, NULL, &rs, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rs.cancelled, 1, "a reaped job whose cancel was requested ends cancelled");
    cr_assert_eq(sf_job_heartbeat(g_db, l, 2, 60000, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(l[0].alive, 1);
    cr_assert_eq(l[1].alive, 0);
    sf_job_destroy(&ja), sf_job_destroy(&jb);
    free(a), free(b);
}

Test(job, cancel_of_pending_queued_running_finished_and_missing_jobs)
{
    char *p = new_job("pending", 3), *q = new_job("queued", 3), *r = new_job("queued", 3);
    sf_job jr = claim_one(r);
    sf_job_cancel_result res;
    sf_queue_entry e;
    sf_err err = {0};
    cr_assert_eq(sf_job_cancel(g_db, p, g_user, &res, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(res, SF_JOB_CANCEL_DONE);
    cr_assert_eq(sf_job_cancel(g_db, q, NULL, &res, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(res, SF_JOB_CANCEL_DONE);
    cr_assert_str_eq(e.id, q);
    cr_assert_str_eq(e.tenant, g_user);
    cr_assert_geq(e.score, 1e13, "normal priority band");
    cr_assert_eq(sf_job_cancel(g_db, r, NULL, &res, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(res, SF_JOB_CANCEL_REQUESTED);
    q1s("SELECT status || ' ' || cancel_requested FROM jobs WHERE id = $1", r, "running true");
    char st[SF_JOB_STATUS_MAX];
    cr_assert_eq(complete(r, jr.fence, SF_JOB_CANCELLED, NULL, st), 1);
    cr_assert_str_eq(st, "cancelled");
    cr_assert_eq(sf_job_cancel(g_db, r, NULL, &res, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(res, SF_JOB_CANCEL_FINAL);
    cr_assert_eq(sf_job_cancel(g_db, "00000000-0000-0000-0000-000000000001", NULL, &res, NULL, &err), SF_OK);
    cr_assert_eq(res, SF_JOB_CANCEL_NOT_FOUND);
    cr_assert_eq(sf_job_cancel(g_db, q, "00000000-0000-0000-0000-000000000002", &res, NULL, &err), SF_OK);
    cr_assert_eq(res, SF_JOB_CANCEL_NOT_FOUND, "another user's job is not found");
    cr_assert_eq(sf_job_cancel(g_db, "nope", NULL, &res, NULL, &err), SF_ERR_INVALID);
    /* a claim after the cancel finds nothing */
    const char *ids[] = {q};
    sf_job none[1];
    size_t n = 9;
    cr_assert_eq(sf_job_claim(g_db, ids, 1, "w", LEASE_MS, NULL, 0, none, &n, &err), SF_OK);
    cr_assert_eq(n, 0);
    sf_job_destroy(&jr);
    free(p), free(q), free(r);
}

Test(job, reap_requeues_expired_running_rows_with_backoff_or_kills_them)
{
    char *a = new_job("queued", 3), *b = new_job("queued", 1), *c = new_job("queued", 3);
    sf_job ja = claim_one(a), jb = claim_one(b), jc = claim_one(c);
    q1x("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1 RETURNING 1", a);
    q1x("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1 RETURNING 1", b);
    sf_job_reap_stats rs;
    sf_err err = {0};
    sf_job_retry r = {.base_ms = 2000, .cap_ms = 60000};
    cr_assert_eq(sf_job_reap(g_db, 100, &r, &rs, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rs.retried, 1);
    cr_assert_eq(rs.dead, 1);
    cr_assert_eq(rs.cancelled, 0);
    q1s("SELECT status || ' ' || error_class FROM jobs WHERE id = $1", a, "pending lease");
    long long d = retry_delay_ms(a);
    cr_assert(d >= 1000 && d <= 2000, "delay %lld", d);
    q1s("SELECT status || ' ' || attempt FROM jobs WHERE id = $1", b, "dead 1");
    q1s("SELECT status::text FROM jobs WHERE id = $1", c, "running");
    cr_assert_eq(sf_job_reap(g_db, 100, &r, &rs, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rs.retried + rs.dead + rs.cancelled, 0, "nothing left to reap");
    sf_job_destroy(&ja), sf_job_destroy(&jb), sf_job_destroy(&jc);
    free(a), free(b), free(c);
}

Test(job, relay_takes_every_tenants_first_job_before_anyones_second)
{
    char *other = q1("INSERT INTO users (email, name, password_hash) VALUES ('b@t', 'b', 'x') RETURNING id", NULL);
    for (int i = 0; i < 5; i++)
        free(new_job("pending", 3));
    q1x("INSERT INTO jobs (user_id, logic, symbol, timeframe) VALUES ($1, '{}', 'S', '1d') RETURNING 1", other);
    q1x("INSERT INTO jobs (user_id, logic, symbol, timeframe, run_at) VALUES ($1, '{}', 'S', '1d', "
        "now() + interval '1 hour') RETURNING 1",
        other);
    sf_queue_entry e[10];
    size_t n = 0;
    sf_err err = {0};
    /* limit 2 of 6 due jobs: one of each tenant (round robin), not two of a's */
    cr_assert_eq(sf_job_relay_pending(g_db, 1, 2, 0, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_neq(strcmp(e[0].tenant, e[1].tenant), 0, "one job of each tenant");
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE status = 'queued' AND queued_at IS NOT NULL", NULL), 2);
    /* the rest: a alone has due work; its share grows to the limit (4 of 4),
     * b's job with a future run_at stays pending */
    cr_assert_eq(sf_job_relay_pending(g_db, 1, 10, 1, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 4);
    for (size_t i = 0; i < n; i++)
        cr_assert_neq(strcmp(e[i].tenant, other), 0);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE status = 'pending'", NULL), 1);
    cr_assert_eq(sf_job_relay_pending(g_db, 1, 10, 1, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    free(other);
}

/* One free slot in Redis at a time: successive relays must serve the
 * tenants in turn, not the same (oldest) tenant every time. */
Test(job, relay_with_room_for_one_job_serves_the_tenants_in_turn)
{
    char *other = q1("INSERT INTO users (email, name, password_hash) VALUES ('b@t', 'b', 'x') RETURNING id", NULL);
    for (int i = 0; i < 4; i++)
        free(new_job("pending", 3));
    for (int i = 0; i < 4; i++)
        q1x("INSERT INTO jobs (user_id, logic, symbol, timeframe) VALUES ($1, '{}', 'S', '1d') RETURNING 1", other);
    sf_queue_entry e[1];
    char seen[4][sizeof e[0].tenant];
    for (uint64_t turn = 0; turn < 4; turn++) {
        size_t n = 0;
        sf_err err = {0};
        cr_assert_eq(sf_job_relay_pending(g_db, 1, 1, turn, e, &n, &err), SF_OK, "%s", err.msg);
        cr_assert_eq(n, 1);
        snprintf(seen[turn], sizeof seen[turn], "%s", e[0].tenant);
    }
    for (int i = 1; i < 4; i++)
        cr_assert_neq(strcmp(seen[i], seen[i - 1]), 0, "relay %d served the same tenant again", i);
    free(other);
}

/* The relay as the scheduler runs it: each tenant's share is at most
 * max(per_tenant, limit / tenants), and the rows come back queued. Then the
 * rebuild's listing of queued rows and the Redis reaper's check. */
Test(job, relay_caps_each_tenants_share_and_the_queued_rows_are_listed_for_a_rebuild)
{
    char *other = q1("INSERT INTO users (email, name, password_hash) VALUES ('b@t', 'b', 'x') RETURNING id", NULL);
    for (int i = 0; i < 5; i++)
        free(new_job("pending", 3));
    q1x("INSERT INTO jobs (user_id, logic, symbol, timeframe, priority) VALUES ($1, '{}', 'S', '1d', 0) "
        "RETURNING 1",
        other);
    q1x("INSERT INTO jobs (user_id, logic, symbol, timeframe, run_at) VALUES ($1, '{}', 'S', '1d', "
        "now() + interval '1 hour') RETURNING 1",
        other);
    sf_queue_entry e[10];
    size_t n = 0;
    sf_err err = {0};
    /* two tenants, limit 4: a share of max(2, 4 / 2) = 2 each */
    cr_assert_eq(sf_job_relay_pending(g_db, 2, 4, 0, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 3, "two of a's, one of b's (the other is not due)");
    int of_b = 0;
    for (size_t i = 0; i < n; i++) {
        int b = strcmp(e[i].tenant, other) == 0;
        of_b += b;
        cr_assert_eq(e[i].score < SF_QUEUE_PRIORITY_BAND, b, "b's job alone is in the high band");
    }
    cr_assert_eq(of_b, 1);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE status = 'queued' AND queued_at IS NOT NULL", NULL), 3);
    for (size_t i = 0; i < n; i++)
        q1s("SELECT status::text FROM jobs WHERE id = $1", e[i].id, "queued");

    sf_queue_entry all[10];
    cr_assert_eq(sf_job_list_queued(g_db, "", 2, all, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert(strcmp(all[0].id, all[1].id) < 0);
    cr_assert_eq(sf_job_list_queued(g_db, all[1].id, 10, all + 2, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    const char *check[] = {all[0].id, all[2].id};
    q1x("UPDATE jobs SET status = 'running' WHERE id = $1 RETURNING 1", all[0].id);
    cr_assert_eq(sf_job_lease_expired(g_db, check, 2, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(e[0].id, all[2].id);
    free(other);
}

Test(job, a_sweep_member_claim_carries_the_batch_logic_grid_and_index)
{
    char *b = q1("INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total) VALUES ($1, "
                 "'{\"name\":\"s\"}', '{\"indicators.fast.period\":[5,10]}', 'SYM', '1d', 2) RETURNING id",
                 g_user);
    const char *p[] = {g_user, b};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(g_db,
                             "INSERT INTO jobs (user_id, batch_id, combo_index, symbol, timeframe, status) "
                             "VALUES ($1, $2, 1, 'SYM', '1d', 'queued') RETURNING id",
                             2, p, &res, &err),
                 SF_OK, "%s", err.msg);
    char id[64];
    snprintf(id, sizeof id, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    sf_job j = claim_one(id);
    cr_assert_str_eq(j.batch_id, b);
    cr_assert_eq(j.combo_index, 1);
    cr_assert_str_eq(j.logic, "{\"name\": \"s\"}");
    cr_assert_not_null(j.grid);
    cr_assert_str_eq(j.grid, "{\"indicators.fast.period\":[5,10]}"); /* json: the text as stored */
    cr_assert_null(j.bad);
    sf_job_destroy(&j);

    int found = 0;
    int64_t cancelled = -1, requested = -1;
    cr_assert_eq(sf_job_cancel_batch(g_db, b, g_user, &found, &cancelled, &requested, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(found, 1);
    cr_assert_eq(cancelled, 0);
    cr_assert_eq(requested, 1);
    q1s("SELECT cancel_requested::text FROM batches WHERE id = $1", b, "true");
    free(b);
}

/* ---- optimistic attempts (tiny sweep members) ---------------------------- */

/* A batch of g_user with members 0..n-1 queued at attempt 0; its id (caller
 * frees); member ids in ids[] (each caller-freed). */
static char *new_sweep(int n, int max_attempts, char **ids)
{
    char *b = q1("INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total) VALUES ($1, "
                 "'{\"name\":\"s\"}', '{\"indicators.fast.period\":[5,10,15,20]}', 'SYM', '1d', 4) "
                 "RETURNING id",
                 g_user);
    for (int i = 0; i < n; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT INTO jobs (user_id, batch_id, combo_index, symbol, timeframe, status, "
                 "max_attempts) VALUES ($1, '%s', %d, 'SYM', '1d', 'queued', %d) RETURNING id",
                 b, i, max_attempts);
        ids[i] = q1(sql, g_user);
    }
    return b;
}

/* Free what new_sweep and claim_tiny gave: the batch id, n member ids and,
 * when jobs is not NULL, their n claimed jobs. */
static void free_sweep(char *batch, char **ids, sf_job *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        if (jobs)
            sf_job_destroy(&jobs[i]);
        free(ids[i]);
    }
    free(batch);
}

/* Claim ids with batch among the tiny ones; out[i] is ids[i]'s job (the claim
 * returns rows in any order). */
static size_t claim_tiny(const char *const *ids, size_t n, const char *batch, const char *worker, sf_job *out)
{
    const char *tiny[] = {batch};
    sf_job got_jobs[8];
    size_t got = 99;
    sf_err err = {0};
    cr_assert_leq(n, 8);
    cr_assert_eq(sf_job_claim(g_db, ids, n, worker, LEASE_MS, tiny, 1, got_jobs, &got, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(got, n, "claimed %zu of %zu", got, n);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < got; k++)
            if (strcmp(got_jobs[k].id, ids[i]) == 0)
                out[i] = got_jobs[k];
    return got;
}

static sf_job_done opt_done(const sf_job *j, sf_job_outcome o, const char *worker)
{
    sf_job_done d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%s", j->id);
    d.fence = j->fence;
    d.outcome = o;
    d.optimistic = j->optimistic;
    d.started_us = j->started_us;
    d.worker = worker;
    d.metrics = "{\"sharpe\": 2.5}";
    d.trades = "[]";
    d.equity = "[]";
    d.error = o == SF_JOB_SUCCEEDED ? NULL : "boom";
    return d;
}

static int complete_done(sf_job_done *d, size_t n)
{
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, d, n, NULL, &err), SF_OK, "%s", err.msg);
    int applied = 0;
    for (size_t i = 0; i < n; i++)
        applied += d[i].applied;
    return applied;
}

Test(job, a_tiny_sweeps_first_attempts_are_read_then_committed_by_compare_and_set)
{
    char *ids[3];
    char *b = new_sweep(3, 3, ids);
    sf_job jobs[3];
    cr_assert_eq(claim_tiny((const char *const *)ids, 3, b, "w-opt", jobs), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(jobs[i].optimistic, "member %d not optimistic", i);
        cr_assert_eq(jobs[i].attempt, 1);
        cr_assert_eq(jobs[i].fence, 0);
        cr_assert_gt(jobs[i].started_us, 1700000000LL * 1000000);
        cr_assert_str_eq(jobs[i].batch_id, b);
    }
    /* nothing was written: still queued at attempt 0, no worker */
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE status = 'queued' AND attempt = 0 AND worker IS NULL "
                     "AND fence IS NULL AND batch_id = $1",
                     b),
                 3);

    sf_job_done d[3] = {opt_done(&jobs[0], SF_JOB_SUCCEEDED, "w-opt"), opt_done(&jobs[1], SF_JOB_FAILED, "w-opt"),
                        opt_done(&jobs[2], SF_JOB_TRANSIENT, "w-opt")};
    cr_assert_eq(complete_done(d, 3), 3);
    cr_assert_str_eq(d[0].status, "succeeded");
    cr_assert_str_eq(d[1].status, "failed");
    cr_assert_str_eq(d[2].status, "pending");
    /* the completion wrote what the claim would have */
    q1s("SELECT concat_ws(' ', status, attempt, worker, fence IS NOT NULL, started_at <= finished_at, "
        "started_at > now() - interval '1 minute') FROM jobs WHERE id = $1",
        ids[0], "succeeded 1 w-opt t t t");
    q1s("SELECT metrics->>'sharpe' FROM results WHERE job_id = $1", ids[0], "2.5");
    q1s("SELECT concat_ws(' ', status, attempt, error_class, error) FROM jobs WHERE id = $1", ids[1],
        "failed 1 permanent boom");
    q1s("SELECT concat_ws(' ', status, attempt, error_class, run_at > now()) FROM jobs WHERE id = $1", ids[2],
        "pending 1 transient t");

    /* the same completion again (a duplicate run) writes nothing */
    sf_job_done again = opt_done(&jobs[0], SF_JOB_SUCCEEDED, "w-dup");
    cr_assert_eq(complete_done(&again, 1), 0);
    q1s("SELECT worker FROM jobs WHERE id = $1", ids[0], "w-opt");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id = $1", ids[0]), 1);

    /* a member past its first attempt is claimed for real */
    q1x("UPDATE jobs SET status = 'queued' WHERE id = $1 RETURNING id", ids[2]);
    sf_job real[1];
    cr_assert_eq(claim_tiny((const char *const *)&ids[2], 1, b, "w-opt", real), 1);
    cr_assert_not(real[0].optimistic);
    cr_assert_eq(real[0].attempt, 2);
    cr_assert_gt(real[0].fence, 0);
    q1s("SELECT status FROM jobs WHERE id = $1", ids[2], "running");
    sf_job_destroy(&real[0]);
    free_sweep(b, ids, jobs, 3);
}

Test(job, an_optimistic_completion_loses_to_a_cancel_a_claim_in_between_or_another_run)
{
    char *ids[3];
    char *b = new_sweep(3, 3, ids);
    sf_job jobs[3];
    cr_assert_eq(claim_tiny((const char *const *)ids, 3, b, "w-a", jobs), 3);
    /* member 0 cancelled while it runs */
    sf_job_cancel_result r;
    sf_err err = {0};
    cr_assert_eq(sf_job_cancel(g_db, ids[0], g_user, &r, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(r, SF_JOB_CANCEL_DONE);
    /* member 1 claimed for real by another worker (its id was leased twice) */
    sf_job other = claim_one(ids[1]);
    cr_assert_not(other.optimistic);
    /* member 2 read by another worker too, which finishes first */
    sf_job twin[1];
    cr_assert_eq(claim_tiny((const char *const *)&ids[2], 1, b, "w-b", twin), 1);
    sf_job_done first = opt_done(&twin[0], SF_JOB_SUCCEEDED, "w-b");
    cr_assert_eq(complete_done(&first, 1), 1);

    sf_job_done d[3] = {opt_done(&jobs[0], SF_JOB_SUCCEEDED, "w-a"), opt_done(&jobs[1], SF_JOB_SUCCEEDED, "w-a"),
                        opt_done(&jobs[2], SF_JOB_SUCCEEDED, "w-a")};
    cr_assert_eq(complete_done(d, 3), 0);
    q1s("SELECT status FROM jobs WHERE id = $1", ids[0], "cancelled");
    q1s("SELECT concat_ws(' ', status, attempt, worker) FROM jobs WHERE id = $1", ids[1], "running 1 w1");
    q1s("SELECT concat_ws(' ', status, attempt, worker) FROM jobs WHERE id = $1", ids[2], "succeeded 1 w-b");
    cr_assert_eq(q1i("SELECT count(*) FROM results", NULL), 1);
    sf_job_destroy(&other);
    sf_job_destroy(&twin[0]);
    free_sweep(b, ids, jobs, 3);
}

Test(job, a_released_optimistic_member_is_pending_again_with_its_attempt_unspent)
{
    char *ids[2];
    char *b = new_sweep(2, 3, ids);
    sf_job jobs[2];
    cr_assert_eq(claim_tiny((const char *const *)ids, 2, b, "w", jobs), 2);
    sf_job_done d[2] = {opt_done(&jobs[0], SF_JOB_RELEASED, "w"), opt_done(&jobs[1], SF_JOB_CANCELLED, "w")};
    cr_assert_eq(complete_done(d, 2), 2);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE status = 'pending' AND attempt = 0 AND batch_id = $1", b), 2);
    free_sweep(b, ids, jobs, 2);
}

/* A member that kills its worker on an optimistic run leaves only an expired
 * Redis lease: the reaper's call spends an attempt, so such a member ends
 * dead after max_attempts instead of killing workers forever. */
Test(job, an_expired_lease_spends_a_members_first_attempt)
{
    char *ids[2];
    char *b = new_sweep(2, 1, ids); /* max_attempts 1: one lost run is all it gets */
    char *single = new_job("queued", 1);
    const char *check[] = {ids[0], single};
    sf_queue_entry e[2];
    size_t n = 0;
    sf_err err = {0};
    cr_assert_eq(sf_job_lease_expired(g_db, check, 2, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1); /* the member is dead; the single backtest is requeued unspent */
    cr_assert_str_eq(e[0].id, single);
    q1s("SELECT concat_ws(' ', status, attempt, error_class, finished_at IS NOT NULL) FROM jobs "
        "WHERE id = $1",
        ids[0], "dead 1 lease t");
    q1s("SELECT concat_ws(' ', status, attempt) FROM jobs WHERE id = $1", single, "queued 0");

    q1x("UPDATE jobs SET max_attempts = 3 WHERE id = $1 RETURNING id", ids[1]);
    const char *one[] = {ids[1]};
    cr_assert_eq(sf_job_lease_expired(g_db, one, 1, e, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    q1s("SELECT concat_ws(' ', status, attempt, error_class) FROM jobs WHERE id = $1", ids[1], "queued 1 lease");
    /* its next claim is a real one */
    sf_job j[1];
    cr_assert_eq(claim_tiny(one, 1, b, "w", j), 1);
    cr_assert_not(j[0].optimistic);
    cr_assert_eq(j[0].attempt, 2);
    sf_job_destroy(&j[0]);
    free(single);
    free_sweep(b, ids, NULL, 2);
}

Test(job, the_transitions_table_allows_only_the_lifecycle)
{
    cr_assert(sf_job_transition_allowed("pending", "queued"));
    cr_assert(sf_job_transition_allowed("queued", "running"));
    cr_assert(sf_job_transition_allowed("running", "succeeded"));
    cr_assert(sf_job_transition_allowed("running", "pending"));
    cr_assert(sf_job_transition_allowed("running", "dead"));
    cr_assert(sf_job_transition_allowed("queued", "cancelled"));
    cr_assert_not(sf_job_transition_allowed("succeeded", "running"));
    cr_assert_not(sf_job_transition_allowed("pending", "running"));
    cr_assert_not(sf_job_transition_allowed("dead", "pending"));
    cr_assert(sf_job_transition_allowed("queued", "succeeded")); /* an optimistic attempt */
    cr_assert_not(sf_job_transition_allowed("pending", "succeeded"));
    cr_assert_not(sf_job_transition_allowed("cancelled", "queued"));
}

/* A statement that must fail with sqlstate, its message containing want. */
static void fails_with(const char *sql, const char *p1, const char *sqlstate, const char *want)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *params[] = {p1};
    cr_assert_neq(sf_db_query(g_db, sql, p1 ? 1 : 0, p1 ? params : NULL, &res, &err), SF_OK, "%s", sql);
    cr_assert_str_eq(sf_db_sqlstate(g_db), sqlstate, "%s: %s", sql, err.msg);
    cr_assert(strstr(err.msg, want) != NULL, "%s: %s", sql, err.msg);
    sf_db_res_free(res);
}

/* Migration 0009: the parents of jobs are checked once per statement, not by
 * a foreign key per row; what the keys guaranteed must still hold. */
Test(job, a_jobs_parents_are_checked_per_statement_and_their_deletes_cascade)
{
    fails_with("INSERT INTO jobs (user_id, logic, symbol, timeframe) "
               "VALUES ('00000000-0000-0000-0000-000000000001', '{}', 'S', '1d')",
               NULL, "23503", "user 00000000-0000-0000-0000-000000000001 does not exist");
    fails_with("INSERT INTO jobs (user_id, batch_id, combo_index, symbol, timeframe) "
               "SELECT $1::uuid, '00000000-0000-0000-0000-000000000002', g, 'S', '1d' "
               "FROM generate_series(0, 2) g",
               g_user, "23503", "batch 00000000-0000-0000-0000-000000000002 does not exist");
    /* one bad row among good ones fails the whole statement */
    fails_with("INSERT INTO jobs (user_id, logic, symbol, timeframe) VALUES ($1::uuid, '{}', 'S', '1d'), "
               "('00000000-0000-0000-0000-000000000003', '{}', 'S', '1d')",
               g_user, "23503", "user 00000000-0000-0000-0000-000000000003 does not exist");
    cr_assert_eq(q1i("SELECT count(*) FROM jobs", NULL), 0);

    char *batch = q1("INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total) "
                     "VALUES ($1, '{}', '{}', 'S', '1d', 3) RETURNING id",
                     g_user);
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH i AS (INSERT INTO jobs (user_id, batch_id, combo_index, symbol, timeframe) "
             "SELECT $1::uuid, '%s', g, 'S', '1d' FROM generate_series(0, 2) g RETURNING 1) "
             "SELECT count(*) FROM i",
             batch);
    cr_assert_eq(q1i(sql, g_user), 3);
    char *single = new_job("pending", 3);
    fails_with("UPDATE jobs SET user_id = gen_random_uuid() WHERE id = $1", single, "23503",
               "user_id and batch_id do not change");
    /* a result row goes with its job, through the batch's cascade */
    snprintf(sql, sizeof sql,
             "INSERT INTO results (job_id, metrics, trades, equity) SELECT id, '{}', '[]', '[]' "
             "FROM jobs WHERE batch_id = '%s' AND combo_index = 0 RETURNING job_id",
             batch);
    free(q1(sql, NULL));
    q1x("WITH d AS (DELETE FROM batches WHERE id = $1 RETURNING 1) SELECT count(*) FROM d", batch);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs WHERE batch_id IS NOT NULL", NULL), 0);
    cr_assert_eq(q1i("SELECT count(*) FROM results", NULL), 0);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs", NULL), 1);
    q1x("WITH d AS (DELETE FROM users WHERE id = $1 RETURNING 1) SELECT count(*) FROM d", g_user);
    cr_assert_eq(q1i("SELECT count(*) FROM jobs", NULL), 0);
    free(single);
    free(batch);
}

Test(job, a_whole_result_document_fills_the_results_columns)
{
    char *id = new_job("queued", 3);
    sf_job j = claim_one(id);
    sf_job_done d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%s", id);
    d.fence = j.fence;
    d.outcome = SF_JOB_SUCCEEDED;
    d.result = "{\"metrics\": {\"trades\": 2}, \"trades\": [{\"pnl\": 1}, {\"pnl\": -1}], "
               "\"equity\": [{\"equity\": 5}]}";
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, &d, 1, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(d.applied, 1);
    q1s("SELECT (metrics->>'trades') || ' ' || json_array_length(trades) || ' ' || (equity->0->>'equity') "
        "FROM results WHERE job_id = $1",
        id, "2 2 5");
    sf_job_destroy(&j);
    free(id);
}

/* A row whose result alone is more than one completion statement carries is
 * refused before anything is sent, naming the job and the limit, and the
 * batch changes nothing (the caller splits it: the worker's completer). */
Test(job, a_result_bigger_than_a_statement_is_refused_naming_the_limit)
{
    char *a = new_job("queued", 3), *b = new_job("queued", 3);
    sf_job ja = claim_one(a), jb = claim_one(b);
    char *big = malloc(SF_JOB_STATEMENT_BYTES + 2);
    cr_assert_not_null(big);
    memset(big, 'x', SF_JOB_STATEMENT_BYTES + 1);
    big[SF_JOB_STATEMENT_BYTES + 1] = '\0';
    sf_job_done d[2];
    memset(d, 0, sizeof d);
    snprintf(d[0].id, sizeof d[0].id, "%s", a);
    d[0].fence = ja.fence;
    d[0].outcome = SF_JOB_SUCCEEDED;
    d[0].metrics = "{\"trades\": 0}";
    d[0].trades = "[]";
    snprintf(d[1].id, sizeof d[1].id, "%s", b);
    d[1].fence = jb.fence;
    d[1].outcome = SF_JOB_SUCCEEDED;
    d[1].metrics = "{\"trades\": 0}";
    d[1].trades = big;
    cr_assert_eq(sf_job_done_bytes(&d[1]), SF_JOB_STATEMENT_BYTES + 1 + strlen(d[1].metrics));
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, d, 2, NULL, &err), SF_ERR_LIMIT);
    char want[64];
    snprintf(want, sizeof want, "more than the %zu", SF_JOB_STATEMENT_BYTES);
    cr_assert(strstr(err.msg, b) != NULL && strstr(err.msg, want) != NULL, "%s", err.msg);
    cr_assert(d[0].applied == 0 && d[1].applied == 0);
    q1s("SELECT status::text FROM jobs WHERE id = $1", a, "running");
    q1s("SELECT status::text FROM jobs WHERE id = $1", b, "running");
    free(big);
    sf_job_destroy(&ja);
    sf_job_destroy(&jb);
    free(a);
    free(b);
}

/* A logic execution of a schedule (webhook set or not), claimed. */
static char *signal_job(const char *webhook, sf_job *j)
{
    const char *p[] = {g_user, webhook};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(g_db,
                             "WITH s AS (INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, "
                             "webhook_url) VALUES ($1, 'live', '* * * * *', '" LOGIC "', 'SYM', '1d', $2) "
                             "RETURNING id) INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, status, "
                             "schedule_id) SELECT $1, 'logic_execution', '" LOGIC "', 'SYM', '1d', 'queued', "
                             "s.id FROM s RETURNING id",
                             2, p, &res, &err),
                 SF_OK, "%s", err.msg);
    char *id = strdup(sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    *j = claim_one(id);
    return id;
}

Test(job, a_signal_is_recorded_with_the_completion_instead_of_a_result)
{
    sf_job ja, jb, jc;
    char *a = signal_job("http://127.0.0.1:9/hook", &ja), *b = signal_job(NULL, &jb);
    char *c = new_job("queued", 3);
    jc = claim_one(c);
    sf_job_signal sa = {.bar_time = 1704067200, .signal = "enter", .side = -1};
    sf_job_signal sb = {.bar_time = 1704067260, .signal = "flat", .side = 0};
    sf_job_done d[3];
    memset(d, 0, sizeof d);
    snprintf(d[0].id, sizeof d[0].id, "%s", a);
    d[0].fence = ja.fence, d[0].outcome = SF_JOB_SUCCEEDED, d[0].signal = &sa;
    snprintf(d[1].id, sizeof d[1].id, "%s", b);
    d[1].fence = jb.fence, d[1].outcome = SF_JOB_SUCCEEDED, d[1].signal = &sb;
    snprintf(d[2].id, sizeof d[2].id, "%s", c);
    d[2].fence = jc.fence, d[2].outcome = SF_JOB_SUCCEEDED, d[2].metrics = "{\"sharpe\": 2}";
    sf_err err = {0};
    cr_assert_eq(sf_job_complete(g_db, d, 3, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert(d[0].applied && d[1].applied && d[2].applied);
    q1s("SELECT g.signal || ' ' || g.side || ' ' || extract(epoch FROM g.bar_time)::bigint || ' ' || g.symbol "
        "|| ' ' || (g.schedule_id = j.schedule_id) || ' ' || g.webhook_status || ' ' || "
        "(g.webhook_due_at <= now()) FROM signals g JOIN jobs j ON j.id = g.job_id WHERE g.job_id = $1",
        a, "enter short 1704067200 SYM true pending true");
    q1s("SELECT signal || ' ' || coalesce(side, '-') || ' ' || coalesce(webhook_status, 'none') FROM signals "
        "WHERE job_id = $1",
        b, "flat - none");
    cr_assert_eq(q1i("SELECT count(*) FROM results WHERE job_id IN ($1::uuid)", a), 0);
    q1s("SELECT metrics->>'sharpe' FROM results WHERE job_id = $1", c, "2");
    q1s("SELECT status::text FROM jobs WHERE id = $1", a, "succeeded");
    /* a late completion with a stale fence records nothing */
    sf_job_done late = d[0];
    late.fence += 1000;
    cr_assert_eq(sf_job_complete(g_db, &late, 1, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(late.applied, 0);
    cr_assert_eq(q1i("SELECT count(*) FROM signals WHERE job_id = $1", a), 1);
    /* an unknown signal name is refused before anything is written */
    sf_job ju;
    char *u = signal_job(NULL, &ju);
    sf_job_signal bad = {.bar_time = 1, .signal = "buy", .side = 1};
    sf_job_done du;
    memset(&du, 0, sizeof du);
    snprintf(du.id, sizeof du.id, "%s", u);
    du.fence = ju.fence, du.outcome = SF_JOB_SUCCEEDED, du.signal = &bad;
    cr_assert_eq(sf_job_complete(g_db, &du, 1, NULL, &err), SF_ERR_INVALID);
    q1s("SELECT status::text FROM jobs WHERE id = $1", u, "running");
    sf_job_destroy(&ja), sf_job_destroy(&jb), sf_job_destroy(&jc), sf_job_destroy(&ju);
    free(a), free(b), free(c), free(u);
}
