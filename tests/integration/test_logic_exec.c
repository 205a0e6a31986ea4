/*
 * Integration tests for logic executions in sf-worker: the real binary
 * (fork/exec from SF_BINARY_DIR) against a scratch database and a private
 * Redis (farm.h). A logic_execution job of a schedule is inserted pending and
 * relayed here (as the scheduler's relay does); the worker records the
 * signal in the job's completion and POSTs the schedule's webhook to a
 * receiver this test runs on 127.0.0.1 (hookrecv.h), whose signature the
 * test verifies with its own HMAC-SHA256 (the worker allows 127.0.0.1/32 by
 * SF_WEBHOOK_ALLOW_CIDRS for it). Without that allowance no spelling of a
 * loopback, metadata or unspecified address is reached, an invalid URL fails
 * at once, and neither the record nor the log holds a URL's path or query.
 * Also: a backtest's stored equity curve is downsampled to SF_EQUITY_POINTS.
 */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../support/farm.h"
#include "../support/hookrecv.h"
#include "sf/job.h"
#include "sf/queue.h"
#include "sf/time.h"

#define T0 1704067200 /* 2024-01-01T00:00:00Z */
#define DAY 86400
#define LIVE_LOGIC "{\"name\":\"live-x\",\"entry\":{\"gt\":[\"close\",100]},\"exit\":{\"lt\":[\"close\",90]}}"

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown_ex(0);
}

TestSuite(logic_exec, .init = setup, .fini = teardown, .timeout = 90);

/* n daily flat bars at 95, except the last `high` bars at 105. */
static void import_steps(const char *symbol, size_t n, size_t high)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        double px = i + high >= n ? 105.0 : 95.0;
        b->ts[i] = T0 + (int64_t)i * DAY;
        b->open[i] = b->high[i] = b->low[i] = b->close[i] = px;
        b->volume[i] = 1000;
    }
    sf_status st = sf_dataset_import(F.db, symbol, "1d", b, NULL, &err);
    sf_bars_free(b);
    cr_assert_eq(st, SF_OK, "%s", err.msg);
}

/* A schedule (webhook_url / secret may be NULL); its id. free() it. */
static char *schedule(const char *user, const char *symbol, const char *url, const char *secret)
{
    const char *p[] = {user, symbol, url, secret};
    return farm_query1("INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, webhook_url, "
                       "webhook_secret) VALUES ($1, 'live', '0 0 * * *', '" LIVE_LOGIC "', $2, '1d', $3, $4) "
                       "RETURNING id",
                       4, p);
}

/* The job a firing of the schedule inserts (pending logic_execution). */
static char *execution(const char *sched)
{
    const char *p[] = {sched};
    return farm_query1("INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, schedule_id) "
                       "SELECT user_id, 'logic_execution', logic, symbol, timeframe, id FROM schedules "
                       "WHERE id = $1::bigint RETURNING id",
                       1, p);
}

/* A worker whose webhooks may reach the non-public CIDRs of allow. */
static sf_proc *worker_allowing(const char *name, const char *allow)
{
    char w[96], a[160];
    snprintf(w, sizeof w, "WORKER_NAME=%s", name);
    snprintf(a, sizeof a, "SF_WEBHOOK_ALLOW_CIDRS=%s", allow);
    const char *env[] = {w,
                         a,
                         "WORKER_THREADS=2",
                         "LEASE_SECONDS=5",
                         "SF_WEBHOOK_TIMEOUT_MS=2000",
                         "SF_WEBHOOK_ATTEMPTS=3",
                         "SF_WEBHOOK_BACKOFF_MS=100",
                         "SF_EQUITY_POINTS=500",
                         "SF_DRAIN_SECONDS=5",
                         NULL};
    return farm_start(name, "sf-worker", env);
}

/* A worker whose webhooks may reach this test's receivers on 127.0.0.1. */
static sf_proc *worker(const char *name)
{
    return worker_allowing(name, "127.0.0.1/32");
}

static void stop_worker(sf_proc *w)
{
    sf_proc_signal(w, SIGTERM);
    FARM_ASSERT(sf_proc_wait_exit(w, 15000), "worker did not exit after SIGTERM");
    cr_assert_eq(sf_proc_exit_code(w), 0);
}

static void expect_text(const char *sql, const char *param, const char *want)
{
    char *got = farm_text1(sql, param);
    FARM_ASSERT(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", sql, got, want);
    free(got);
}

/* hex HMAC-SHA256(key, msg), computed here with OpenSSL's one-shot HMAC(). */
static void hmac_hex(const char *key, const char *msg, char out[65])
{
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac, &len);
    cr_assert_eq(len, 32);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static int received_(void *ctx)
{
    hookrecv *r = ((void **)ctx)[0];
    int want = *(int *)((void **)ctx)[1];
    return hookrecv_count(r) >= want;
}

static int wait_received(hookrecv *r, int want, int64_t timeout_ms)
{
    void *ctx[2] = {r, &want};
    return sf_proc_wait_until(received_, ctx, timeout_ms, 20);
}

Test(logic_exec, the_signal_is_recorded_and_posted_signed_to_the_schedules_webhook)
{
    import_steps("ENT", 40, 1); /* flat until the last close: enter */
    import_steps("HLD", 40, 3); /* entered two bars ago, no exit: hold */
    hookrecv rcv;
    hookrecv_start(&rcv, 200);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/signals", rcv.port);
    char *user = farm_user("trader");
    char *s_ent = schedule(user, "ENT", url, "top-secret"), *s_hld = schedule(user, "HLD", NULL, NULL);
    char *j_ent = execution(s_ent), *j_hld = execution(s_hld);
    cr_assert_eq(farm_relay_all(), 2);
    sf_proc *w = worker("w-live");
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 2 FROM jobs WHERE status = 'succeeded'", NULL, 20000),
                "logic executions did not succeed");
    char want[256];
    snprintf(want, sizeof want, "enter long %lld ENT %s", (long long)T0 + 39LL * DAY, s_ent);
    expect_text("SELECT signal || ' ' || side || ' ' || extract(epoch FROM bar_time)::bigint || ' ' || symbol "
                "|| ' ' || schedule_id FROM signals WHERE job_id = $1",
                j_ent, want);
    expect_text("SELECT signal || ' ' || side || ' ' || coalesce(webhook_status, 'none') FROM signals "
                "WHERE job_id = $1",
                j_hld, "hold long none");
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 0, "a logic execution stores a signal, not a result");
    FARM_ASSERT(farm_wait_sql("SELECT webhook_status = 'delivered' FROM signals WHERE job_id = $1", j_ent, 10000),
                "webhook not recorded as delivered");
    expect_text("SELECT webhook_attempts || ' ' || webhook_http_status || ' ' || coalesce(webhook_error, '-') "
                "FROM signals WHERE job_id = $1",
                j_ent, "1 200 -");
    cr_assert_eq(hookrecv_count(&rcv), 1, "one POST for the one signal with a webhook");
    char *head, *body, ts[32], sig[128], mac[65], msg[4096], expect_sig[96];
    hookrecv_get(&rcv, 0, &head, &body);
    cr_assert(strncmp(head, "POST /signals ", 14) == 0, "%s", head);
    hookrecv_header(head, "X-SF-Timestamp", ts, sizeof ts);
    hookrecv_header(head, "X-SF-Signature", sig, sizeof sig);
    snprintf(msg, sizeof msg, "%s.%s", ts, body);
    hmac_hex("top-secret", msg, mac);
    snprintf(expect_sig, sizeof expect_sig, "sha256=%s", mac);
    cr_assert_str_eq(sig, expect_sig, "signature does not verify");
    long long age = sf_time_now_ms() / 1000 - strtoll(ts, NULL, 10);
    cr_assert(age >= 0 && age < 60, "timestamp %s is not now", ts);
    char want_body[512];
    snprintf(want_body, sizeof want_body,
             "{\"schedule_id\":%s,\"job_id\":\"%s\",\"symbol\":\"ENT\",\"timeframe\":\"1d\","
             "\"bar_time\":\"2024-02-09T00:00:00Z\",\"signal\":\"enter\",\"side\":\"long\",\"logic\":\"live-x\"}",
             s_ent, j_ent);
    cr_assert_str_eq(body, want_body);
    stop_worker(w);
    hookrecv_stop(&rcv);
    free(head), free(body), free(user), free(s_ent), free(s_hld), free(j_ent), free(j_hld);
}

Test(logic_exec, a_failing_receiver_gets_the_retries_then_the_failure_is_recorded)
{
    import_steps("ENT", 40, 1);
    hookrecv rcv;
    hookrecv_start(&rcv, 500);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", rcv.port);
    char *user = farm_user("trader");
    char *s = schedule(user, "ENT", url, "k");
    char *j = execution(s);
    cr_assert_eq(farm_relay_all(), 1);
    sf_proc *w = worker("w-fail");
    FARM_ASSERT(farm_wait_sql("SELECT EXISTS (SELECT 1 FROM signals WHERE job_id = $1 AND webhook_status = 'failed')",
                              j, 20000),
                "the failed delivery was not recorded");
    expect_text("SELECT webhook_attempts || ' ' || webhook_http_status || ' ' || webhook_error FROM signals "
                "WHERE job_id = $1",
                j, "3 500 receiver answered HTTP 500");
    expect_text("SELECT status::text || ' ' || attempt FROM jobs WHERE id = $1", j, "succeeded 1");
    expect_text("SELECT signal FROM signals WHERE job_id = $1", j, "enter");
    cr_assert_eq(hookrecv_count(&rcv), 3);
    /* every attempt carries its own valid signature */
    for (int i = 0; i < 3; i++) {
        char *head, *body, ts[32], sig[128], mac[65], msg[4096], want[96];
        hookrecv_get(&rcv, i, &head, &body);
        hookrecv_header(head, "X-SF-Timestamp", ts, sizeof ts);
        hookrecv_header(head, "X-SF-Signature", sig, sizeof sig);
        snprintf(msg, sizeof msg, "%s.%s", ts, body);
        hmac_hex("k", msg, mac);
        snprintf(want, sizeof want, "sha256=%s", mac);
        cr_assert_str_eq(sig, want, "attempt %d", i + 1);
        free(head), free(body);
    }
    FARM_ASSERT(sf_proc_log_contains(w, "webhook delivery failed"), "the failure is logged");
    stop_worker(w);
    hookrecv_stop(&rcv);
    free(user), free(s), free(j);
}

/* ---- where a webhook may go ---------------------------------------------- */

#define HOOK_PATH "/hooks/tok-PATHSECRET?token=QUERYSECRET"
#define REFUSED_LIKE "'could not connect to http://%: address % is not public (%) and not in the allowed CIDRs'"

/* One schedule of user for ENT per URL "<prefix><port>" + HOOK_PATH (port
 * < 0: no port), each with a relayed execution; their job ids (free() them). */
static void hook_jobs(const char *user, const char *const *prefixes, size_t n, int port, char **jobs)
{
    for (size_t i = 0; i < n; i++) {
        char url[256];
        if (port < 0)
            snprintf(url, sizeof url, "%s%s", prefixes[i], HOOK_PATH);
        else
            snprintf(url, sizeof url, "%s%d%s", prefixes[i], port, HOOK_PATH);
        char *s = schedule(user, "ENT", url, "k");
        jobs[i] = execution(s);
        free(s);
    }
    cr_assert_eq(farm_relay_all(), n);
}

/* n signals have their webhook recorded (delivered or failed). */
static void wait_recorded(size_t n)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) = %zu FROM signals WHERE webhook_status IN ('delivered', 'failed')", n);
    FARM_ASSERT(farm_wait_sql(sql, NULL, 30000), "%zu webhooks not recorded", n);
}

/* The recorded webhook error of job starts with want. */
static void expect_error_prefix(const char *job, const char *want)
{
    char *got = farm_text1("SELECT webhook_error FROM signals WHERE job_id = $1", job);
    FARM_ASSERT(strncmp(got, want, strlen(want)) == 0, "error \"%s\", want \"%s...\"", got, want);
    free(got);
}

/* Neither the records nor the worker's log hold a webhook URL's path or query. */
static void expect_no_url_secrets(const sf_proc *w)
{
    cr_assert_eq(farm_int("SELECT count(*) FROM signals WHERE webhook_error LIKE '%SECRET%' "
                          "OR webhook_error LIKE '%/hooks%'"),
                 0);
    char *log = sf_proc_log_read(w, 1 << 20);
    FARM_ASSERT(strstr(log, "SECRET") == NULL && strstr(log, "/hooks") == NULL, "the log holds a URL's path:\n%s", log);
    free(log);
}

Test(logic_exec, no_spelling_of_a_loopback_metadata_or_unspecified_address_is_reached_and_bad_urls_fail_at_once)
{
    import_steps("ENT", 40, 1);
    hookrecv rcv;
    hookrecv_start(&rcv, 200);
    const char *to_rcv[] = {
        "http://127.0.0.1:",          "http://2130706433:", "http://0x7f000001:", "http://0177.0.0.1:", "http://127.1:",
        "http://[::ffff:127.0.0.1]:", "http://[::1]:",      "http://localhost:",  "http://0.0.0.0:",    "http://[::]:",
        "gopher://127.0.0.1:"};
    const char *no_port[] = {"http://169.254.169.254", "http://[::ffff:a9fe:a9fe]", "file:///etc/passwd"};
    size_t n1 = sizeof to_rcv / sizeof to_rcv[0], n2 = sizeof no_port / sizeof no_port[0];
    char *user = farm_user("trader"), *jobs[16];
    hook_jobs(user, to_rcv, n1, rcv.port, jobs);
    hook_jobs(user, no_port, n2, -1, jobs + n1);
    sf_proc *w = worker_allowing("w-ssrf", "");
    wait_recorded(n1 + n2);
    cr_assert_eq(farm_int("SELECT count(*) FROM signals WHERE webhook_status = 'failed' AND webhook_attempts = 1 "
                          "AND webhook_http_status IS NULL"),
                 (long long)(n1 + n2), "every one failed at its first attempt, without an answer");
    cr_assert_eq(hookrecv_count(&rcv), 0, "a request reached the receiver on 127.0.0.1");
    for (size_t i = 0; i < n1 - 1; i++) /* every http URL: refused by the address policy */
        expect_text("SELECT (webhook_error LIKE " REFUSED_LIKE ")::text FROM signals WHERE job_id = $1", jobs[i],
                    "true");
    char want[256];
    snprintf(want, sizeof want,
             "could not connect to http://127.0.0.1:%d: address 127.0.0.1 is not public "
             "(loopback) and not in the allowed CIDRs",
             rcv.port);
    expect_text("SELECT webhook_error FROM signals WHERE job_id = $1", jobs[1], want); /* 2130706433 */
    snprintf(want, sizeof want,
             "could not connect to http://[::ffff:127.0.0.1]:%d: address ::ffff:127.0.0.1 is "
             "not public (loopback) and not in the allowed CIDRs",
             rcv.port);
    expect_text("SELECT webhook_error FROM signals WHERE job_id = $1", jobs[5], want);
    expect_text("SELECT webhook_error FROM signals WHERE job_id = $1", jobs[n1],
                "could not connect to http://169.254.169.254: address 169.254.169.254 is not public (cloud metadata) "
                "and not in the allowed CIDRs");
    expect_text("SELECT webhook_error FROM signals WHERE job_id = $1", jobs[n1 + 1],
                "could not connect to http://[::ffff:a9fe:a9fe]: address ::ffff:169.254.169.254 is not public "
                "(cloud metadata) and not in the allowed CIDRs");
    snprintf(want, sizeof want, "bad URL gopher://127.0.0.1:%d: ", rcv.port);
    expect_error_prefix(jobs[n1 - 1], want);
    expect_error_prefix(jobs[n1 + 2], "bad URL file://: ");
    FARM_ASSERT(sf_proc_log_contains(w, "webhook delivery failed") &&
                    sf_proc_log_contains(w, "is not public (cloud metadata)"),
                "the refusals are logged with their reason");
    expect_no_url_secrets(w);
    stop_worker(w);
    hookrecv_stop(&rcv);
    free(user);
    for (size_t i = 0; i < n1 + n2; i++)
        free(jobs[i]);
}

Test(logic_exec, with_127_0_0_1_32_allowed_every_spelling_of_it_reaches_the_receiver_and_nothing_else)
{
    import_steps("ENT", 40, 1);
    hookrecv rcv;
    hookrecv_start(&rcv, 200);
    const char *ok[] = {"http://127.0.0.1:",  "http://2130706433:", "http://0x7f000001:",
                        "http://0177.0.0.1:", "http://127.1:",      "http://[::ffff:127.0.0.1]:"};
    const char *no[] = {"http://[::1]:", "http://127.0.0.2:", "http://169.254.169.254:", "http://10.0.0.1:"};
    size_t n1 = sizeof ok / sizeof ok[0], n2 = sizeof no / sizeof no[0];
    char *user = farm_user("trader"), *jobs[16];
    hook_jobs(user, ok, n1, rcv.port, jobs);
    hook_jobs(user, no, n2, rcv.port, jobs + n1);
    sf_proc *w = worker("w-allow");
    wait_recorded(n1 + n2);
    cr_assert_eq(hookrecv_count(&rcv), (int)n1, "each allowed spelling delivered once");
    for (size_t i = 0; i < n1; i++)
        expect_text("SELECT webhook_status::text || ' ' || webhook_attempts || ' ' || webhook_http_status "
                    "FROM signals WHERE job_id = $1",
                    jobs[i], "delivered 1 200");
    for (size_t i = n1; i < n1 + n2; i++)
        expect_text("SELECT webhook_status::text || ' ' || webhook_attempts || ' ' || (webhook_error LIKE " REFUSED_LIKE
                    ") FROM signals WHERE job_id = $1",
                    jobs[i], "failed 1 true");
    char *head, *body;
    hookrecv_get(&rcv, 0, &head, &body);
    cr_assert(strncmp(head, "POST " HOOK_PATH " HTTP/1.1\r\n", strlen("POST " HOOK_PATH " HTTP/1.1\r\n")) == 0,
              "the receiver gets the whole URL: %s", head);
    free(head), free(body);
    expect_no_url_secrets(w);
    stop_worker(w);
    hookrecv_stop(&rcv);
    free(user);
    for (size_t i = 0; i < n1 + n2; i++)
        free(jobs[i]);
}

Test(logic_exec, a_bad_allowed_cidr_stops_the_worker_at_start_naming_the_variable)
{
    sf_proc *w = worker_allowing("w-badcidr", "10.0.0.0/8,localhost");
    FARM_ASSERT(sf_proc_wait_exit(w, 10000), "the worker did not exit");
    cr_assert_eq(sf_proc_exit_code(w), 2);
    FARM_ASSERT(sf_proc_log_contains(w, "sf-worker: SF_WEBHOOK_ALLOW_CIDRS: could not parse the allowed CIDR "
                                        "\"localhost\": \"localhost\" is not an IPv4 or IPv6 address"),
                "no configuration error naming the variable");
}

Test(logic_exec, a_pending_delivery_left_by_a_dead_worker_is_delivered_by_another)
{
    import_steps("ENT", 40, 1);
    hookrecv rcv;
    hookrecv_start(&rcv, 200);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", rcv.port);
    char *user = farm_user("trader");
    char *s = schedule(user, "ENT", url, "k");
    char *j = execution(s);
    /* as if a worker committed the signal and died before the POST */
    const char *p[] = {j};
    char *ok = farm_query1("WITH u AS (UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = $1 "
                           "RETURNING id, schedule_id, symbol) INSERT INTO signals (job_id, schedule_id, symbol, "
                           "bar_time, signal, side, webhook_status, webhook_due_at) SELECT id, schedule_id, "
                           "symbol, to_timestamp(1704067200), 'exit', 'long', 'pending', now() FROM u "
                           "RETURNING 'ok'",
                           1, p);
    free(ok);
    sf_proc *w = worker("w-outbox");
    FARM_ASSERT(wait_received(&rcv, 1, 15000), "the pending webhook was not delivered");
    FARM_ASSERT(farm_wait_sql("SELECT webhook_status = 'delivered' FROM signals WHERE job_id = $1", j, 10000),
                "not recorded");
    char *head, *body;
    hookrecv_get(&rcv, 0, &head, &body);
    cr_assert_not_null(strstr(body, "\"signal\":\"exit\""), "%s", body);
    free(head), free(body);
    stop_worker(w);
    hookrecv_stop(&rcv);
    free(user), free(s), free(j);
}

/* ---- schedules whose executions keep failing ------------------------------ */

#define BAD_LOGIC "{\"name\":\"bad\",\"entry\":{\"gt\":[\"nope\",1]},\"exit\":{\"lt\":[\"close\",90]}}"

/* A yearly schedule (catch-up all) whose first firing is Jan 1 `back` years
 * ago: it fires back + 1 executions at once; its id. free() it. */
static char *yearly(const char *user, const char *logic, const char *symbol, int back)
{
    char b[16];
    snprintf(b, sizeof b, "%d", back);
    const char *p[] = {user, logic, symbol, b};
    return farm_query1("INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, catch_up, next_fire) "
                       "VALUES ($1, 'yearly', '0 0 1 1 *', $2::jsonb, $3, '1d', 'all', "
                       "date_trunc('year', now()) - make_interval(years => $4::int)) RETURNING id",
                       4, p);
}

static long long firings(const char *sched)
{
    return farm_int1("SELECT count(*) FROM schedule_firings WHERE schedule_id = $1::bigint", sched);
}

/* Wait until every firing of sched has a finished job; want of them. */
static void wait_finished(const char *sched, long long want)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) = %lld FROM schedule_firings f JOIN jobs j ON j.id = f.job_id "
             "WHERE f.schedule_id = $1::bigint AND j.status IN ('succeeded', 'failed')",
             want);
    FARM_ASSERT(farm_wait_sql(sql, sched, 20000), "schedule %s: %lld finished executions expected, %lld firings", sched,
                want, firings(sched));
}

/* The next firing comes due now (one second after the newest, so no firing
 * time repeats) and the scheduler handles it: fires or disables. */
static void next_due(const char *sched)
{
    const char *p[] = {sched};
    char *r = farm_query1("UPDATE schedules SET next_fire = (SELECT max(fire_time) + interval '1 second' "
                          "FROM schedule_firings WHERE schedule_id = $1::bigint) WHERE id = $1::bigint "
                          "RETURNING id",
                          1, p);
    free(r);
    FARM_ASSERT(
        farm_wait_sql("SELECT next_fire > now() OR NOT enabled FROM schedules WHERE id = $1::bigint", sched, 10000),
        "schedule %s was not handled", sched);
}

static void expect_status(const char *sched, const char *want)
{
    expect_text("SELECT string_agg(left(j.status::text, 1), '' ORDER BY f.fire_time) FROM schedule_firings f "
                "JOIN jobs j ON j.id = f.job_id WHERE f.schedule_id = $1::bigint",
                sched, want);
}

Test(logic_exec, a_schedule_is_disabled_after_3_consecutive_failed_executions_with_the_reason)
{
    import_steps("LIVE", 40, 1);
    char *user = farm_user("trader");
    char *bad = yearly(user, BAD_LOGIC, "LIVE", 3), *good = yearly(user, LIVE_LOGIC, "LIVE", 3);
    char *flaky = yearly(user, LIVE_LOGIC, "LATE", 1); /* no data set LATE yet */
    const char *env[] = {"SF_SCHEDULE_MAX_FAILURES=3", NULL};
    sf_proc *sched = farm_scheduler("s-live", env);
    sf_proc *w = worker("w-live");
    wait_finished(bad, 4);
    wait_finished(good, 4);
    wait_finished(flaky, 2);
    expect_status(bad, "ffff");
    expect_status(good, "ssss");
    expect_status(flaky, "ff");

    /* the firing after the failures disables the schedule instead */
    next_due(bad);
    next_due(good);
    expect_text("SELECT enabled::text || ' ' || (disabled_at IS NOT NULL) FROM schedules WHERE id = $1::bigint", bad,
                "false true");
    char *reason = farm_text1("SELECT disabled_reason FROM schedules WHERE id = $1::bigint", bad);
    FARM_ASSERT(strncmp(reason, "disabled after 3 consecutive failed executions; the last one: ", 62) == 0 &&
                    strstr(reason, "nope") != NULL,
                "reason: %s", reason);
    cr_assert_eq(firings(bad), 4, "a disabled schedule fired");
    FARM_ASSERT(sf_proc_log_contains(sched, "schedule disabled: its executions keep failing"), "not logged");
    wait_finished(good, 5);
    expect_text("SELECT enabled::text || ' ' || (disabled_reason IS NULL) FROM schedules WHERE id = $1::bigint", good,
                "true true");

    /* a success ends the run of failures: f f s f f does not disable */
    import_steps("LATE", 40, 1);
    next_due(flaky);
    wait_finished(flaky, 3);
    farm_exec("DELETE FROM datasets WHERE symbol = 'LATE'");
    for (long long n = 4; n <= 6; n++) { /* the 6th fires: the newest three were f f s */
        next_due(flaky);
        wait_finished(flaky, n);
    }
    expect_status(flaky, "ffsfff");
    /* now three in a row */
    next_due(flaky);
    expect_text("SELECT enabled::text FROM schedules WHERE id = $1::bigint", flaky, "false");
    reason = (free(reason), farm_text1("SELECT disabled_reason FROM schedules WHERE id = $1::bigint", flaky));
    FARM_ASSERT(strstr(reason, "LATE") != NULL, "reason: %s", reason);

    /* re-enabled, the count starts again and the reason is cleared */
    farm_exec("UPDATE schedules SET enabled = true WHERE name = 'yearly' AND logic->>'name' = 'bad'");
    expect_text("SELECT enabled::text || ' ' || (disabled_reason IS NULL) || ' ' || (disabled_at IS NULL) "
                "FROM schedules WHERE id = $1::bigint",
                bad, "true true true");
    next_due(bad);
    wait_finished(bad, 5);
    expect_text("SELECT enabled::text FROM schedules WHERE id = $1::bigint", bad, "true");
    stop_worker(w);
    free(reason), free(user), free(bad), free(good), free(flaky);
}

/* results with the stored equity (arrays, migration 0006) as the documented
 * [{"time", "equity"}] points, as jsonb. */
#define RESULT_POINTS                                                                                                  \
    "(SELECT job_id, metrics, sf_equity_points(equity, equity_t, equity_v)::jsonb AS equity FROM results) r"

Test(logic_exec, a_long_backtest_stores_at_most_sf_equity_points_with_its_first_and_last_point)
{
    farm_dataset("LONG", "1d", 5000, 11);
    char *user = farm_user("quant");
    char *id = farm_job(user, FARM_LOGIC_SMA, "LONG", "1d", 1, 3);
    cr_assert_eq(farm_relay_all(), 1);
    sf_proc *w = worker("w-eq");
    FARM_ASSERT(farm_wait_sql("SELECT status = 'succeeded' FROM jobs WHERE id = $1", id, 20000), "no result");
    long long n = farm_int1("SELECT jsonb_array_length(equity) FROM " RESULT_POINTS " WHERE job_id = $1", id);
    /* flat stretches (no position) give a bucket one point instead of two */
    cr_assert(n >= 250 && n <= 500, "stored %lld points, want at most SF_EQUITY_POINTS=500", n);
    expect_text("SELECT (equity->0->>'time') || ' ' || (equity->-1->>'time') FROM " RESULT_POINTS " WHERE job_id = $1",
                id, "2000-01-01T00:00:00Z 2000-01-04T11:19:00Z");
    /* the stored curve keeps the drawdown landmarks metrics report, and the
     * last point equals final_equity */
    expect_text("SELECT (SELECT count(*) FROM jsonb_array_elements(equity) e WHERE e->>'time' IN "
                "(metrics->>'max_drawdown_peak_time', metrics->>'max_drawdown_trough_time'))::text || ' ' || "
                "((equity->-1->>'equity')::float8 = (metrics->>'final_equity')::float8) FROM " RESULT_POINTS " "
                "WHERE job_id = $1",
                id, "2 true");
    stop_worker(w);
    free(user), free(id);
}
