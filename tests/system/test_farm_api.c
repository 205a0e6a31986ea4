/*
 * End to end through the HTTP API: a real sf-api, sf-scheduler and sf-worker
 * on a scratch database and a private Redis. A backtest submitted with an API
 * key (POST /v1/backtests) runs on the worker and its result (GET
 * /v1/jobs/{id}/result) carries the final equity the engine computes here
 * from the same bars, bit for bit (invariant 7); invalid logic is refused
 * with 400 and the JSON path (invariant 8); a sweep submitted through the API
 * finishes every member.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <jansson.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/auth.h"

static char g_base[64];
static char g_auth[256];

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_api, .init = setup, .fini = teardown, .timeout = 90);

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

/* method path [json]: the status code; the answer in *out (static storage). */
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
    body *b = ctx;
    return http("GET", "/ready", NULL, b) == 200;
}

static void start_farm(void)
{
    char *user = farm_user("api");
    sf_auth_key key;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&key, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_key_create(F.db, user, &key, &err), SF_OK, "%s", err.msg);
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
    farm_worker("w1", 2, 2, NULL);
    static body b;
    FARM_ASSERT(sf_proc_wait_until(api_ready, &b, 15000, 50), "sf-api not ready: %s", b.data);
}

static const char *status_of(const char *path, body *b)
{
    static char st[32];
    st[0] = '\0';
    if (http("GET", path, NULL, b) != 200)
        return st;
    json_t *j = json_loads(b->data, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "status"));
    snprintf(st, sizeof st, "%s", s ? s : "");
    json_decref(j);
    return st;
}

typedef struct wait_status {
    const char *path;
    body *b;
} wait_status;

static int finished(void *ctx)
{
    wait_status *w = ctx;
    const char *s = status_of(w->path, w->b);
    return strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "dead") == 0 ||
           strcmp(s, "cancelled") == 0 || strcmp(s, "completed") == 0;
}

Test(farm_api, a_backtest_submitted_through_the_api_runs_and_its_result_matches_the_engine)
{
    farm_dataset("SMALL", "1d", 500, 81);
    start_farm();
    static body b;
    char req[2048];
    snprintf(req, sizeof req, "{\"logic\": %s, \"symbol\": \"SMALL\", \"timeframe\": \"1d\"}", FARM_LOGIC_SMA);
    long code = http("POST", "/v1/backtests", req, &b);
    FARM_ASSERT(code == 202, "POST /v1/backtests: %ld %s", code, b.data);
    json_t *j = json_loads(b.data, 0, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);

    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    wait_status w = {path, &b};
    FARM_ASSERT(sf_proc_wait_until(finished, &w, 20000, 50), "job not finished: %s", b.data);
    cr_assert_str_eq(status_of(path, &b), "succeeded", "%s", b.data);

    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    code = http("GET", path, NULL, &b);
    cr_assert_eq(code, 200, "GET %s: %ld %s", path, code, b.data);
    j = json_loads(b.data, 0, NULL);
    cr_assert(j != NULL, "result is not JSON: %.200s", b.data);
    json_t *fe = json_object_get(json_object_get(j, "metrics"), "final_equity");
    if (fe == NULL)
        fe = json_object_get(json_object_get(json_object_get(j, "result"), "metrics"), "final_equity");
    cr_assert(json_is_number(fe), "no metrics.final_equity in %.300s", b.data);
    double got = json_number_value(fe);
    double want = farm_expected_final_equity(FARM_LOGIC_SMA, "SMALL", "1d");
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "final_equity %.17g, the engine here says %.17g", got, want);
    json_decref(j);
}

Test(farm_api, invalid_logic_is_refused_with_400_naming_the_path_and_nothing_is_queued)
{
    farm_dataset("SMALL", "1d", 500, 82);
    start_farm();
    static body b;
    const char *req = "{\"logic\": {\"name\": \"bad\", \"indicators\": {\"fast\": {\"type\": \"sma\", \"period\": 0}},"
                      " \"entry\": {\"gt\": [\"fast\", \"close\"]}, \"exit\": {\"lt\": [\"fast\", \"close\"]}},"
                      " \"symbol\": \"SMALL\", \"timeframe\": \"1d\"}";
    long code = http("POST", "/v1/backtests", req, &b);
    cr_assert_eq(code, 400, "%ld %s", code, b.data);
    cr_assert(strstr(b.data, "indicators.fast.period") != NULL, "the error does not name the path: %s", b.data);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs"), 0);
}

Test(farm_api, a_sweep_submitted_through_the_api_finishes_every_member)
{
    farm_dataset("SMALL", "1d", 500, 83);
    start_farm();
    static body b;
    char req[2048];
    snprintf(req, sizeof req,
             "{\"logic\": %s, \"grid\": {\"indicators.fast.period\": {\"from\": 2, \"to\": 21, \"step\": 1}},"
             " \"symbol\": \"SMALL\", \"timeframe\": \"1d\"}",
             FARM_LOGIC_SMA);
    long code = http("POST", "/v1/sweeps", req, &b);
    FARM_ASSERT(code == 202, "POST /v1/sweeps: %ld %s", code, b.data);
    json_t *j = json_loads(b.data, 0, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    FARM_ASSERT(
        farm_wait_sql("SELECT count(*) = 20 FROM jobs WHERE batch_id = $1::uuid AND status = 'succeeded'", id, 30000),
        "sweep members not all succeeded");
    cr_assert_eq(
        farm_int1("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.batch_id = $1::uuid", id), 20);
    /* Members differ: the fast period changes the result for most of them. */
    cr_assert_gt(farm_int1("SELECT count(DISTINCT r.metrics->>'final_equity') FROM results r JOIN jobs j"
                           " ON j.id = r.job_id WHERE j.batch_id = $1::uuid",
                           id),
                 1);
    char path[128];
    snprintf(path, sizeof path, "/v1/batches/%s", id);
    code = http("GET", path, NULL, &b);
    cr_assert_eq(code, 200, "GET %s: %ld %s", path, code, b.data);
    cr_log_info("GET %s: %.400s", path, b.data);
    /* Overfitting (issue 14): each member stored its block statistics (16
     * blocks: 340 bytes), and the finished sweep's answer carries PBO, the
     * best member's DSR and the verdict, kept on the batch from then on. */
    cr_assert_eq(farm_int1("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                           "WHERE j.batch_id = $1::uuid AND octet_length(r.blocks) = 340",
                           id),
                 20);
    cr_assert(strstr(b.data, "nan") == NULL && strstr(b.data, "NaN") == NULL, "%s", b.data);
    j = json_loads(b.data, 0, NULL);
    json_t *of = json_object_get(j, "overfit");
    cr_assert(json_is_object(of), "no overfit object: %s", b.data);
    cr_assert_eq(json_integer_value(json_object_get(of, "members")), 20);
    cr_assert_eq(json_integer_value(json_object_get(of, "blocks")), 16);
    cr_assert(json_is_number(json_object_get(of, "pbo")), "pbo: %s", b.data);
    cr_assert(json_is_number(json_object_get(of, "dsr")), "dsr: %s", b.data);
    const char *verdict = json_string_value(json_object_get(of, "verdict"));
    cr_assert(verdict != NULL && strstr(verdict, ": PBO ") != NULL, "verdict: %s", b.data);
    cr_assert_eq(farm_int1("SELECT count(*) FROM batches WHERE id = $1::uuid AND overfit IS NOT NULL", id), 1);
    char *first = json_dumps(of, JSON_SORT_KEYS);
    json_decref(j);
    code = http("GET", path, NULL, &b); /* read back from batches.overfit */
    cr_assert_eq(code, 200);
    j = json_loads(b.data, 0, NULL);
    char *again = json_dumps(json_object_get(j, "overfit"), JSON_SORT_KEYS);
    cr_assert_str_eq(again, first);
    free(first);
    free(again);
    json_decref(j);
    /* blocks must be even, 2 to 32 */
    snprintf(req, sizeof req,
             "{\"logic\": %s, \"grid\": {\"indicators.fast.period\": [2, 3]}, \"blocks\": 7,"
             " \"symbol\": \"SMALL\", \"timeframe\": \"1d\"}",
             FARM_LOGIC_SMA);
    code = http("POST", "/v1/sweeps", req, &b);
    cr_assert_eq(code, 400, "%ld %s", code, b.data);
    cr_assert(strstr(b.data, "\"blocks\"") != NULL, "%s", b.data);
}
