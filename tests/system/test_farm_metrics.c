/*
 * test_farm_metrics: the metrics every program serves, on a real farm
 * (farm.h: a scratch database and a private Redis) with sf-api, sf-scheduler
 * and sf-worker, the last two with their METRICS_PORT listener:
 *   - after a known set of jobs (single backtests, a sweep, a logic
 *     execution) the worker's histograms and counters agree with
 *     PostgreSQL: backtest_duration_seconds_count over the kinds equals the
 *     jobs that ran, sf_jobs_completed_total each status, the queue wait
 *     histogram's count the jobs started, logic_executions_total the
 *     execution under its schedule's id;
 *   - the scheduler leads and exports the fleet gauges (sf_jobs by status,
 *     sf_workers_live, sf_queue_depth), behind its METRICS_TOKEN;
 *   - promtool check metrics passes (exit 0, lint included) on every body;
 *   - /ready is 200, and 503 naming Redis on both listeners once the private
 *     Redis is stopped, while /health stays 200.
 * Every wait is a bounded poll on a condition, never a sleep.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/farm.h"

#define GRID "{\"indicators.fast.period\": {\"from\": 2, \"to\": 7, \"step\": 1}}"
#define MEMBERS 6
#define SINGLES 4
#define TOKEN "metrics-test-token"

static int g_api, g_sched, g_worker; /* ports */

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_metrics, .init = setup, .fini = teardown, .timeout = 400);

typedef struct body {
    char data[1 << 20];
    size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    body *b = ctx;
    size_t k = size * n;
    if (b->len + k >= sizeof b->data)
        return 0;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* GET http://127.0.0.1:port/path (with the token when asked): the status
 * code, -1 when nothing answered; the body in *out. */
static long get(int port, const char *path, int token, body *out)
{
    CURL *c = curl_easy_init();
    cr_assert(c != NULL);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = token ? curl_slist_append(NULL, "Authorization: Bearer " TOKEN) : NULL;
    out->len = 0;
    out->data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? code : -1;
}

/* The value of one series ("name{labels}" exactly as rendered); -1 when absent. */
static double series(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double scrape(int port, int token, const char *name)
{
    static body b;
    cr_assert_eq(get(port, "/metrics", token, &b), 200, "GET :%d/metrics: %s", port, b.data);
    return series(b.data, name);
}

static double duration_count(void)
{
    return scrape(g_worker, 0, "backtest_duration_seconds_count{kind=\"backtest\"}") +
           scrape(g_worker, 0, "backtest_duration_seconds_count{kind=\"logic_execution\"}");
}

/* ---- conditions polled ---------------------------------------------------- */

static int listening(void *ctx)
{
    static body b;
    return get(*(int *)ctx, "/health", 0, &b) == 200;
}

static int ran_all(void *ctx)
{
    (void)ctx;
    return duration_count() == (double)farm_int("SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL");
}

static int fleet_done(void *ctx)
{
    return scrape(g_sched, 1, "sf_jobs{status=\"succeeded\"}") == *(double *)ctx &&
           scrape(g_sched, 1, "sf_workers_live") == 1;
}

static int not_ready(void *ctx)
{
    static body b;
    return get(*(int *)ctx, "/ready", 0, &b) == 503 && strstr(b.data, "redis") != NULL;
}

/* ---- set-up --------------------------------------------------------------- */

static void start_farm(void)
{
    g_api = sf_proc_free_port();
    g_sched = sf_proc_free_port();
    g_worker = sf_proc_free_port();
    char api[32], sched[32], worker[32];
    snprintf(api, sizeof api, "PORT=%d", g_api);
    snprintf(sched, sizeof sched, "METRICS_PORT=%d", g_sched);
    snprintf(worker, sizeof worker, "METRICS_PORT=%d", g_worker);
    const char *api_env[] = {api, "BIND_ADDRESS=127.0.0.1", NULL};
    const char *sched_env[] = {sched, "METRICS_ADDR=127.0.0.1", "METRICS_TOKEN=" TOKEN, "FLEET_METRICS_SECONDS=1",
                               NULL};
    const char *worker_env[] = {worker, "METRICS_ADDR=127.0.0.1", NULL};
    farm_start("api", "sf-api", api_env);
    farm_scheduler("sched", sched_env);
    farm_worker("w1", 2, 5, worker_env);
    FARM_ASSERT(sf_proc_wait_until(listening, &g_api, 15000, 50), "sf-api does not answer");
    FARM_ASSERT(sf_proc_wait_until(listening, &g_sched, 15000, 50), "sf-scheduler's listener does not answer");
    FARM_ASSERT(sf_proc_wait_until(listening, &g_worker, 15000, 50), "sf-worker's listener does not answer");
}

/* A schedule and its execution job (the row a firing inserts); the
 * schedule's id. free() it. */
static char *execution(const char *user)
{
    const char *p[] = {user};
    char *sched = farm_query1("INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe) "
                              "VALUES ($1, 'live', '0 0 1 1 *', '" FARM_LOGIC_SMA "', 'SMALL', '1d') RETURNING id",
                              1, p);
    const char *q[] = {sched};
    free(farm_query1("INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, schedule_id) "
                     "SELECT user_id, 'logic_execution', logic, symbol, timeframe, id FROM schedules "
                     "WHERE id = $1::bigint RETURNING id",
                     1, q));
    farm_exec("NOTIFY sf_jobs");
    return sched;
}

/* promtool check metrics on body: its exit status (3 = lint problems). */
static int promtool(const char *body_text)
{
    FILE *p = popen("promtool check metrics > /dev/null 2>&1", "w");
    cr_assert(p != NULL, "could not run promtool");
    fputs(body_text, p);
    return pclose(p);
}

static void check_promtool(int port, int token)
{
    static body b;
    cr_assert_eq(get(port, "/metrics", token, &b), 200);
    int st = promtool(b.data);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool check metrics on :%d exited %d:\n%s", port,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, b.data);
}

/* ---- the test ------------------------------------------------------------- */

static void assert_worker_counts(const char *schedule)
{
    static const char *const FINAL[] = {"succeeded", "failed", "dead", "cancelled"};
    for (int i = 0; i < 4; i++) {
        char bt[128], le[128];
        snprintf(bt, sizeof bt, "sf_jobs_completed_total{kind=\"backtest\",status=\"%s\"}", FINAL[i]);
        snprintf(le, sizeof le, "sf_jobs_completed_total{kind=\"logic_execution\",status=\"%s\"}", FINAL[i]);
        double got = scrape(g_worker, 0, bt) + scrape(g_worker, 0, le);
        long long want = farm_int1("SELECT count(*) FROM jobs WHERE status::text = $1", FINAL[i]);
        cr_assert_eq(got, (double)want, "sf_jobs_completed_total %s: %g, PostgreSQL %lld", FINAL[i], got, want);
    }
    cr_assert_eq(scrape(g_worker, 0, "sf_jobs_completed_total{kind=\"backtest\",status=\"succeeded\"}"),
                 (double)farm_int("SELECT count(*) FROM jobs WHERE kind = 'backtest' AND status = 'succeeded'"));
    double started = (double)farm_int("SELECT count(*) FROM jobs WHERE started_at IS NOT NULL");
    cr_assert_eq(scrape(g_worker, 0, "sf_job_queue_wait_seconds_count"), started);
    cr_assert_eq(scrape(g_worker, 0, "sf_job_queue_wait_seconds_bucket{le=\"+Inf\"}"), started);
    char logic[128];
    snprintf(logic, sizeof logic, "logic_executions_total{logic_id=\"%s\",status=\"succeeded\"}", schedule);
    cr_assert_eq(scrape(g_worker, 0, logic), 1);
    cr_assert_eq(scrape(g_worker, 0, "sf_worker_threads{state=\"idle\"}"), 2);
    cr_assert_eq(scrape(g_worker, 0, "sf_jobs_running"), 0);
    cr_assert_eq(scrape(g_worker, 0, "sf_job_retries_total"), 0);
}

Test(farm_metrics, every_program_counts_the_jobs_that_ran_and_readiness_follows_redis)
{
    farm_dataset("SMALL", "1d", 400, 71);
    start_farm();
    char *user = farm_user("metrics");
    for (int i = 0; i < SINGLES; i++)
        free(farm_job(user, FARM_LOGIC_SMA, "SMALL", "1d", 1, 3));
    free(farm_sweep(user, FARM_LOGIC_SMA, GRID, "SMALL", "1d", MEMBERS));
    char *schedule = execution(user);
    /* the jobs, then the sweep's detail jobs the scheduler adds when it has finished (sf/detail.h) */
    FARM_ASSERT(farm_wait_sql("SELECT count(*) FILTER (WHERE status <> 'succeeded') = 0 AND "
                              "count(*) FILTER (WHERE detail_of IS NOT NULL) > 0 FROM jobs",
                              NULL, 180000),
                "the jobs and details did not all succeed within 3 minutes: %s",
                farm_text1("SELECT string_agg(n || ' ' || status || coalesce(' (' || error_class || ')', ''), ', ') "
                           "FROM (SELECT status::text, error_class, count(*) AS n FROM jobs "
                           "WHERE $1 <> '' GROUP BY 1, 2) s",
                           "x"));
    long long total = farm_int("SELECT count(*) FROM jobs");
    cr_assert_gt(total, SINGLES + MEMBERS + 1);
    FARM_ASSERT(sf_proc_wait_until(ran_all, NULL, 15000, 50), "backtest_duration_seconds_count: %g, want %lld",
                duration_count(), total);
    cr_assert_eq(duration_count(), (double)total);
    assert_worker_counts(schedule);

    /* the scheduler: leader, fleet gauges, behind its token */
    static body b;
    cr_assert_eq(get(g_sched, "/metrics", 0, &b), 401, "the token was not asked for");
    cr_assert_eq(scrape(g_sched, 1, "sf_leader"), 1);
    double want = total;
    FARM_ASSERT(sf_proc_wait_until(fleet_done, &want, 30000, 100), "sf_jobs{succeeded} %g, sf_workers_live %g",
                scrape(g_sched, 1, "sf_jobs{status=\"succeeded\"}"), scrape(g_sched, 1, "sf_workers_live"));
    cr_assert_eq(scrape(g_sched, 1, "sf_jobs{status=\"pending\"}"), 0);
    cr_assert_eq(scrape(g_sched, 1, "sf_queue_depth{priority=\"normal\"}"), 0);
    cr_assert_eq(scrape(g_worker, 0, "sf_leader"), -1, "a worker exports a fleet gauge");

    /* the api: its request histogram; promtool on every body */
    cr_assert(scrape(g_api, 0,
                     "http_request_duration_seconds_count{method=\"GET\",route=\"/health\","
                     "status_code=\"200\"}") >= 1); /* start_farm's polls */
    check_promtool(g_api, 0);
    check_promtool(g_sched, 1);
    check_promtool(g_worker, 0);

    /* readiness follows Redis */
    cr_assert_eq(get(g_worker, "/ready", 0, &b), 200, "%s", b.data);
    cr_assert_eq(get(g_sched, "/ready", 0, &b), 200, "%s", b.data);
    sf_proc_stop(F.redis, SIGTERM, 10000);
    FARM_ASSERT(sf_proc_wait_until(not_ready, &g_worker, 20000, 100), "the worker stayed ready without redis");
    FARM_ASSERT(sf_proc_wait_until(not_ready, &g_sched, 20000, 100), "the scheduler stayed ready without redis");
    cr_assert_eq(get(g_worker, "/health", 0, &b), 200);
    cr_assert_eq(get(g_sched, "/health", 0, &b), 200);
    free(schedule);
    free(user);
}
