/*
 * What a job stores and what GET /v1/jobs/{id}/result answers, through a
 * real sf-api, sf-scheduler and sf-worker on a scratch database and a
 * private Redis (farm.h):
 *   - a sweep member stores its metrics and parameters only (a row under
 *     2 KB); when the sweep has finished, its best detail_top members by
 *     rank_by have their trades and curves (their detail jobs, sf/detail.h),
 *     served with "source": "stored";
 *   - any other member's are recomputed on request (202, then 200 with
 *     "source": "recomputed"), and equal, metrics, trades and equity, what a
 *     single backtest of the member's logic gives; a single backtest still
 *     stores its trades and curve;
 *   - a logic execution's result is its signal;
 *   - `sfctl result` shows both.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <jansson.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/auth.h"
#include "sf/grid.h"

static char g_base[64];
static char g_auth[256];
static char g_key[128];

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_results, .init = setup, .fini = teardown, .timeout = 120);

#define GRID_FAST "{\"indicators.fast.period\": {\"from\": 2, \"to\": 21, \"step\": 1}}"
#define MEMBERS 20

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

/* method path [json]: the status code; the answer in *out. */
static long http(const char *method, const char *path, const char *json, body *out)
{
    CURL *c = curl_easy_init();
    cr_assert(c != NULL);
    char url[256];
    snprintf(url, sizeof url, "%s%s", g_base, path);
    struct curl_slist *h = curl_slist_append(NULL, g_auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    out->len = 0;
    out->data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? code : -1;
}

static int api_ready(void *ctx)
{
    return http("GET", "/ready", NULL, ctx) == 200;
}

static void start_farm(void)
{
    char *user = farm_user("results");
    sf_auth_key key;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&key, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_key_create(F.db, user, &key, &err), SF_OK, "%s", err.msg);
    snprintf(g_key, sizeof g_key, "%s", key.text);
    snprintf(g_auth, sizeof g_auth, "Authorization: Bearer %s", key.text);
    sf_auth_key_wipe(&key);
    free(user);
    int port = sf_proc_free_port();
    char p[32];
    snprintf(p, sizeof p, "PORT=%d", port);
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", port);
    const char *env[] = {p, "BIND_ADDRESS=127.0.0.1", NULL};
    farm_start("api", "sf-api", env);
    farm_scheduler("sched", NULL);
    farm_worker("w1", 2, 5, NULL);
    static body b;
    FARM_ASSERT(sf_proc_wait_until(api_ready, &b, 15000, 50), "sf-api not ready: %s", b.data);
}

/* POST path json, expecting 202; the "id" of the answer. free() it. */
static char *submit(const char *path, const char *json)
{
    static body b;
    long code = http("POST", path, json, &b);
    FARM_ASSERT(code == 202, "POST %s: %ld %s", path, code, b.data);
    json_t *j = json_loads(b.data, 0, NULL);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

/* A sweep of the SMA logic over GRID_FAST keeping detail_top members' trades,
 * run to the end; the batch id. free() it. */
static char *sweep_to_the_end(int detail_top)
{
    char req[2048];
    snprintf(req, sizeof req,
             "{\"logic\": %s, \"grid\": " GRID_FAST ", \"symbol\": \"SMALL\", \"timeframe\": \"1d\", "
             "\"rank_by\": \"sharpe\", \"detail_top\": %d}",
             FARM_LOGIC_SMA, detail_top);
    char *batch = submit("/v1/sweeps", req);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 20 FROM jobs WHERE batch_id = $1::uuid AND status = 'succeeded'",
                              batch, 60000),
                "sweep members not all succeeded");
    return batch;
}

/* n daily bars of a seeded random walk, imported as SMALL/1d (farm_dataset's
 * bars are a minute apart: over 500 minutes the CAGR of a daily logic is a
 * 60-digit number). */
static void daily_dataset(size_t n, uint64_t seed)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK, "%s", err.msg);
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    double price = 100.0;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        double open = price, close = price * (1.0 + 0.02 * u);
        b->ts[i] = 946684800 + (int64_t)i * 86400;
        b->open[i] = open;
        b->close[i] = close;
        b->high[i] = fmax(open, close) * 1.001;
        b->low[i] = fmin(open, close) * 0.999;
        b->volume[i] = 1000.0;
        price = close;
    }
    sf_status st = sf_dataset_import(F.db, "SMALL", "1d", b, NULL, &err);
    sf_bars_free(b);
    cr_assert_eq(st, SF_OK, "import: %s", err.msg);
}

/* GET path: the status; the answer parsed into *out (decref it). */
static long get_json(const char *path, json_t **out)
{
    static body b;
    long code = http("GET", path, NULL, &b);
    *out = json_loads(b.data, JSON_DECODE_INT_AS_REAL, NULL);
    cr_assert(*out != NULL, "GET %s: %ld, not JSON: %.300s", path, code, b.data);
    return code;
}

typedef struct wait_result {
    char path[128];
    json_t *got;
} wait_result;

static int result_ready(void *ctx)
{
    wait_result *w = ctx;
    json_decref(w->got);
    return get_json(w->path, &w->got) == 200;
}

/* GET /v1/jobs/{id}/result until it answers 200; the answer (decref it). */
static json_t *result_of(const char *id)
{
    wait_result w = {.got = NULL};
    snprintf(w.path, sizeof w.path, "/v1/jobs/%s/result", id);
    FARM_ASSERT(sf_proc_wait_until(result_ready, &w, 60000, 100), "no result for %s", id);
    return w.got;
}

#define BY_RANK                                                                                                        \
    "ORDER BY CASE WHEN jsonb_typeof(r.metrics -> 'sharpe') = 'number' "                                               \
    "THEN (r.metrics ->> 'sharpe')::float8 END DESC NULLS LAST, j.combo_index"

/* The member of batch at rank (0 = the best by sharpe, the leaderboard's order). */
static char *ranked_member(const char *batch, int rank)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT j.id FROM jobs j JOIN results r ON r.job_id = j.id WHERE j.batch_id = $1::uuid " BY_RANK
             " OFFSET %d LIMIT 1",
             rank);
    return farm_text1(sql, batch);
}

/* The lowest-ranked member of batch that made trades (a member without any
 * has a null sharpe and ranks last), below rank `above`. */
static char *trading_member_below(const char *batch, int above)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT id FROM (SELECT j.id, (r.metrics ->> 'trades')::int AS trades, row_number() OVER (" BY_RANK
             ") AS rn FROM jobs j JOIN results r ON r.job_id = j.id WHERE j.batch_id = $1::uuid) m "
             "WHERE trades > 0 AND rn > %d ORDER BY rn DESC LIMIT 1",
             above);
    return farm_text1(sql, batch);
}

Test(farm_results, a_sweep_member_stores_metrics_and_params_and_the_best_get_their_trades_when_it_ends)
{
    daily_dataset(500, 91);
    start_farm();
    char *batch = sweep_to_the_end(3);
    /* (a) every member's row: metrics and params, no trades, no curve, under 2 KB */
    cr_assert_eq(farm_int1("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.batch_id = $1::uuid "
                           "AND r.trades IS NULL AND r.equity IS NULL AND r.equity_t IS NULL AND r.params IS NOT NULL",
                           batch),
                 MEMBERS);
    long long widest = farm_int1("SELECT max(pg_column_size(r.*)) FROM results r JOIN jobs j ON j.id = r.job_id "
                                 "WHERE j.batch_id = $1::uuid",
                                 batch);
    cr_log_info("a sweep member's results row: %lld bytes at most", widest);
    cr_assert_lt(widest, 2048);
    /* (b) the 3 best by sharpe get a detail job that succeeds, the others none */
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 3 FROM jobs d JOIN jobs m ON m.id = d.detail_of "
                              "WHERE m.batch_id = $1::uuid AND d.status = 'succeeded'",
                              batch, 60000),
                "the best members' details did not run");
    cr_assert_eq(
        farm_int1("SELECT count(*) FROM jobs d JOIN jobs m ON m.id = d.detail_of WHERE m.batch_id = $1::uuid", batch),
        3);
    for (int rank = 0; rank < 3; rank++) {
        char *member = ranked_member(batch, rank);
        cr_assert_eq(
            farm_int1("SELECT count(*) FROM jobs WHERE detail_of = $1::uuid AND detail_source = 'top'", member), 1,
            "member of rank %d has no detail", rank + 1);
        json_t *r = result_of(member);
        cr_assert_str_eq(json_string_value(json_object_get(r, "source")), "stored");
        cr_assert(json_is_true(json_object_get(r, "metrics_match")), "the recomputed metrics differ");
        cr_assert_gt(json_array_size(json_object_get(r, "trades")), 0);
        cr_assert_gt(json_array_size(json_object_get(r, "equity")), 0);
        cr_assert(json_is_number(json_object_get(json_object_get(r, "params"), "indicators.fast.period")));
        json_decref(r);
        free(member);
    }
    free(batch);
}

/* The member of index's logic, as sf_grid_apply writes it. free() it. */
static char *member_logic(long long index)
{
    sf_grid *grid = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_grid_parse(GRID_FAST, strlen(GRID_FAST), 0, &grid, &err), SF_OK, "%s", err.msg);
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(sf_grid_apply(grid, (size_t)index, FARM_LOGIC_SMA, strlen(FARM_LOGIC_SMA), &text, &len, &err), SF_OK,
                 "%s", err.msg);
    sf_grid_free(grid);
    return text;
}

static void assert_same(json_t *a, json_t *b, const char *key)
{
    cr_assert(json_equal(json_object_get(a, key), json_object_get(b, key)), "%s differ", key);
}

Test(farm_results, another_member_is_recomputed_on_request_and_equals_a_single_backtest_of_its_logic)
{
    daily_dataset(500, 92);
    start_farm();
    char *batch = sweep_to_the_end(1);
    char *member = trading_member_below(batch, 1); /* not the best: no detail when the sweep ended */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/result", member);
    json_t *first = NULL;
    long code = get_json(path, &first);
    cr_assert_eq(code, 202, "the first GET of a member without trades: %ld", code);
    cr_assert_str_eq(json_string_value(json_object_get(first, "source")), "recomputed");
    cr_assert(json_is_object(json_object_get(first, "metrics")), "the 202 carries the stored metrics");
    cr_assert(json_is_object(json_object_get(first, "params")), "the 202 carries the member's parameters");
    cr_assert_eq(farm_int1("SELECT priority FROM jobs WHERE detail_of = $1::uuid", member), 0,
                 "the recomputation is a high-priority job");
    json_decref(first);
    json_t *got = result_of(member);
    cr_assert_str_eq(json_string_value(json_object_get(got, "source")), "recomputed");
    cr_assert(json_is_true(json_object_get(got, "metrics_match")));
    cr_assert_eq(farm_int1("SELECT count(*) FROM jobs WHERE detail_of = $1::uuid", member), 1,
                 "one recomputation whatever the number of requests");

    /* The same logic and parameters as a single backtest: the same answer. */
    long long index = farm_int1("SELECT combo_index FROM jobs WHERE id = $1::uuid", member);
    char *logic = member_logic(index);
    char req[4096];
    snprintf(req, sizeof req, "{\"logic\": %s, \"symbol\": \"SMALL\", \"timeframe\": \"1d\"}", logic);
    char *single = submit("/v1/backtests", req);
    json_t *want = result_of(single);
    cr_assert_str_eq(json_string_value(json_object_get(want, "source")), "stored");
    cr_assert_null(json_object_get(want, "params"), "a single backtest has no parameters");
    assert_same(got, want, "metrics");
    assert_same(got, want, "trades");
    assert_same(got, want, "equity");
    cr_assert_gt(json_array_size(json_object_get(want, "trades")), 0);
    /* (d) a single backtest stores its trades and curve, as before */
    cr_assert_eq(farm_int1("SELECT count(*) FROM results WHERE job_id = $1::uuid AND trades IS NOT NULL "
                           "AND equity_t IS NOT NULL AND params IS NULL",
                           single),
                 1);
    json_decref(got);
    json_decref(want);
    free(single);
    free(logic);
    free(member);
    free(batch);
}

/* sfctl args... against the farm's API: its exit code; its output in *out (free it). */
static int sfctl(const char *const *args, char **out)
{
    char path[1024], url[96], key[160];
    farm_bin("sfctl", path, sizeof path);
    snprintf(url, sizeof url, "SF_API_URL=%s", g_base);
    snprintf(key, sizeof key, "SF_API_KEY=%s", g_key);
    const char *env[] = {url, key, "SF_API_KEY_FILE", NULL};
    static int n;
    char name[32];
    snprintf(name, sizeof name, "sfctl-%d", n++);
    sf_proc *p = sf_proc_start(name, path, args, env, F.dir);
    FARM_ASSERT(sf_proc_wait_exit(p, 60000), "sfctl did not finish");
    *out = sf_proc_log_read(p, 1 << 20);
    return sf_proc_exit_code(p);
}

Test(farm_results, sfctl_result_waits_for_a_recomputed_member_and_shows_it)
{
    daily_dataset(500, 93);
    start_farm();
    char *batch = sweep_to_the_end(0);
    char *member = trading_member_below(batch, 0);
    char *out = NULL;
    const char *args[] = {"sfctl", "result", member, NULL};
    int rc = sfctl(args, &out);
    cr_assert_eq(rc, 0, "sfctl result: %d\n%s", rc, out);
    cr_assert(strstr(out, "recomputes") != NULL, "no word of the recomputation:\n%s", out);
    cr_assert(strstr(out, "  params          {\"indicators.fast.period\": ") != NULL, "no parameters:\n%s", out);
    cr_assert(strstr(out, "  source          recomputed\n") != NULL, "no source:\n%s", out);
    cr_assert(strstr(out, "  Sharpe   ") != NULL, "no metrics:\n%s", out);
    free(out);
    free(member);
    free(batch);
}

/* A schedule's execution (the row a firing inserts: pending, NOTIFY). */
static char *execution(const char *user)
{
    const char *p[] = {user};
    char *sched = farm_query1("INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe) "
                              "VALUES ($1, 'live', '0 0 1 1 *', '" FARM_LOGIC_SMA "', 'SMALL', '1d') RETURNING id",
                              1, p);
    const char *q[] = {sched};
    char *id = farm_query1("INSERT INTO jobs (user_id, kind, logic, symbol, timeframe, schedule_id) "
                           "SELECT user_id, 'logic_execution', logic, symbol, timeframe, id FROM schedules "
                           "WHERE id = $1::bigint RETURNING id",
                           1, q);
    farm_exec("NOTIFY sf_jobs");
    free(sched);
    return id;
}

Test(farm_results, a_logic_execution_result_is_its_signal)
{
    daily_dataset(500, 94);
    start_farm();
    char *user = farm_query1("SELECT user_id::text FROM api_keys LIMIT 1", 0, NULL);
    char *id = execution(user);
    json_t *r = result_of(id);
    json_t *sig = json_object_get(r, "signal");
    cr_assert(json_is_object(sig), "no signal in the result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "kind")), "logic_execution");
    char *want = farm_text1("SELECT signal || ' ' || coalesce(side, '-') || ' ' || symbol || ' ' || "
                            "extract(epoch FROM bar_time)::bigint FROM signals WHERE job_id = $1::uuid",
                            id);
    char got[256];
    const char *side = json_string_value(json_object_get(sig, "side"));
    const char *bar = json_string_value(json_object_get(sig, "bar_time"));
    char epoch_sql[160];
    snprintf(epoch_sql, sizeof epoch_sql, "SELECT extract(epoch FROM '%s'::timestamptz)::bigint", bar ? bar : "x");
    snprintf(got, sizeof got, "%s %s %s %lld", json_string_value(json_object_get(sig, "signal")), side ? side : "-",
             json_string_value(json_object_get(sig, "symbol")), farm_int(epoch_sql));
    cr_assert_str_eq(got, want);
    json_decref(r);

    char *out = NULL;
    const char *args[] = {"sfctl", "result", id, NULL};
    int rc = sfctl(args, &out);
    cr_assert_eq(rc, 0, "sfctl result: %d\n%s", rc, out);
    char line[96];
    snprintf(line, sizeof line, "  signal          %.*s\n", (int)strcspn(want, " "), want);
    cr_assert(strstr(out, line) != NULL, "no \"%s\" in:\n%s", line, out);
    free(out);
    free(want);
    free(id);
    free(user);
}
