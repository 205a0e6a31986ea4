/*
 * Integration tests of stored logics and schedules in sf-api (POST/GET
 * /v1/logics, GET/PUT/DELETE /v1/logics/{id}, submissions by logic_id,
 * POST/GET /v1/schedules, GET/DELETE /v1/schedules/{id}, GET
 * /v1/schedules/{id}/signals) over real HTTP against a server started on a
 * scratch database (tests/support/apitest.h).
 */
#include "../support/apitest.h"

#include <stdlib.h>
#include <unistd.h>

static const char LOGIC[] =
    "{\"name\":\"sma-cross\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":2},"
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":3}},"
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}";
static const char LOGIC2[] =
    "{\"name\":\"sma-cross\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"source\":\"close\",\"period\":4},"
    "\"slow\":{\"type\":\"sma\",\"source\":\"close\",\"period\":9}},"
    "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},\"exit\":{\"crosses_below\":[\"fast\",\"slow\"]}}";
static const char ZERO[] = "00000000-0000-0000-0000-000000000000";

static void setup(void)
{
    static const char *const env[] = {"MAX_BODY_BYTES=8192", "SWEEP_MAX_COMBINATIONS=50", NULL};
    apitest_setup("t_stored_", env);
}

TestSuite(stored, .init = setup, .fini = apitest_teardown, .timeout = 120);

static long long q_int(const char *fmt, const char *a)
{
    char s[1024];
    snprintf(s, sizeof s, fmt, a);
    return sf_testenv_query_int(g_db, s);
}

static char *q_text(const char *fmt, const char *a)
{
    char s[1024];
    snprintf(s, sizeof s, fmt, a);
    return sf_testenv_query_text(g_db, s);
}

/* POST /v1/logics with logic (and name when not NULL); 201; its id into id. */
static void create_logic(const sf_auth_key *key, const char *name, const char *logic, char *id, size_t size)
{
    char body[4096];
    reply r;
    if (name)
        snprintf(body, sizeof body, "{\"name\":\"%s\",\"logic\":%s}", name, logic);
    else
        snprintf(body, sizeof body, "{\"logic\":%s}", logic);
    call(&r, "POST", "/v1/logics", key, body, NULL);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 1, "%s", r.text);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    json_decref(r.json);
}

static void put_logic(const char *id, const char *logic, long want)
{
    char path[128], body[4096];
    reply r;
    snprintf(path, sizeof path, "/v1/logics/%s", id);
    snprintf(body, sizeof body, "{\"logic\":%s}", logic);
    call(&r, "PUT", path, &g_key1, body, NULL);
    cr_assert_eq(r.status, want, "%ld %s", r.status, r.text);
    json_decref(r.json);
}

/* POST /v1/backtests by a stored logic (version 0: the current one). */
static void submit_by_id(reply *r, const sf_auth_key *key, const char *logic_id, int version)
{
    char body[512], v[48] = "";
    if (version > 0)
        snprintf(v, sizeof v, ",\"logic_version\":%d", version);
    snprintf(body, sizeof body, "{\"logic_id\":\"%s\"%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", logic_id, v);
    call(r, "POST", "/v1/backtests", key, body, NULL);
}

static json_t *get_job(const char *id)
{
    char path[128];
    reply r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    return r.json;
}

/* POST /v1/schedules with body; returns the reply (status checked by the caller). */
static void post_schedule(reply *r, const sf_auth_key *key, const char *body)
{
    call(r, "POST", "/v1/schedules", key, body, NULL);
}

static long long create_schedule(const char *logic_id, const char *url)
{
    char body[1024], hook[512] = "";
    if (url)
        snprintf(hook, sizeof hook, ",\"webhook_url\":\"%s\"", url);
    snprintf(body, sizeof body,
             "{\"name\":\"live\",\"cron\":\"*/5 * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\"%s}",
             logic_id, hook);
    reply r;
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.text);
    long long id = json_integer_value(json_object_get(r.json, "id"));
    json_decref(r.json);
    return id;
}

/* ---- authentication and tenants ------------------------------------------------------- */

Test(stored, every_new_route_wants_a_valid_key)
{
    static const char *const ROUTES[][2] = {{"POST", "/v1/logics"},        {"GET", "/v1/logics"},
                                            {"GET", "/v1/logics/%s"},      {"PUT", "/v1/logics/%s"},
                                            {"DELETE", "/v1/logics/%s"},   {"POST", "/v1/schedules"},
                                            {"GET", "/v1/schedules"},      {"GET", "/v1/schedules/1"},
                                            {"DELETE", "/v1/schedules/1"}, {"GET", "/v1/schedules/1/signals"}};
    sf_auth_key bad = g_key1;
    bad.text[10] = bad.text[10] == 'A' ? 'B' : 'A';
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        char path[128];
        reply r;
        snprintf(path, sizeof path, ROUTES[i][1], ZERO);
        call(&r, ROUTES[i][0], path, NULL, "{}", NULL);
        cr_assert_eq(r.status, 401, "%s %s without a key: %ld", ROUTES[i][0], path, r.status);
        json_decref(r.json);
        call(&r, ROUTES[i][0], path, &bad, "{}", NULL);
        cr_assert_eq(r.status, 401, "%s %s with a bad key: %ld", ROUTES[i][0], path, r.status);
        json_decref(r.json);
    }
}

Test(stored, another_users_logics_and_schedules_are_404_on_every_verb)
{
    char id[64], path[128], body[4096];
    create_logic(&g_key1, "mine", LOGIC, id, sizeof id);
    long long sched = create_schedule(id, NULL);
    reply r;
    snprintf(path, sizeof path, "/v1/logics/%s", id);
    snprintf(body, sizeof body, "{\"logic\":%s}", LOGIC2);
    const char *verbs[] = {"GET", "PUT", "DELETE"};
    for (int i = 0; i < 3; i++) {
        call(&r, verbs[i], path, &g_key2, body, NULL);
        cr_assert_eq(r.status, 404, "%s: %ld %s", verbs[i], r.status, r.text);
        json_decref(r.json);
    }
    submit_by_id(&r, &g_key2, id, 0);
    cr_assert_eq(r.status, 404, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "logic_not_found");
    json_decref(r.json);
    snprintf(body, sizeof body,
             "{\"logic_id\":\"%s\",\"grid\":{\"indicators.fast.period\":[2,3]},\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\"}",
             id);
    call(&r, "POST", "/v1/sweeps", &g_key2, body, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    snprintf(body, sizeof body,
             "{\"name\":\"x\",\"cron\":\"* * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\"}",
             id);
    post_schedule(&r, &g_key2, body);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    const char *sverbs[][2] = {{"GET", ""}, {"GET", "/signals"}, {"DELETE", ""}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/v1/schedules/%lld%s", sched, sverbs[i][1]);
        call(&r, sverbs[i][0], path, &g_key2, NULL, NULL);
        cr_assert_eq(r.status, 404, "%s %s: %ld %s", sverbs[i][0], path, r.status, r.text);
        json_decref(r.json);
    }
    cr_assert_eq(json_array_size(list(&r, "/v1/logics", &g_key2)), 0);
    json_decref(r.json);
    cr_assert_eq(json_array_size(list(&r, "/v1/schedules", &g_key2)), 0);
    json_decref(r.json);
    cr_assert_eq(q_int("SELECT count(*) FROM logics WHERE id = '%s' AND deleted_at IS NULL AND version = 1", id), 1);
}

/* ---- stored logics ------------------------------------------------------------------------ */

Test(stored, a_logic_is_validated_versioned_listed_and_soft_deleted)
{
    reply r;
    call(&r, "POST", "/v1/logics", &g_key1, "{\"name\":\"bad\",\"logic\":{\"indicators\":{}}}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "invalid_logic");
    cr_assert(strncmp(error_field(&r), "logic", 5) == 0, "%s", r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/logics", &g_key1, "{\"logic\":{\"entry\":{}}}", NULL);
    cr_assert_eq(r.status, 400, "no name: %s", r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/logics", &g_key1, "{\"name\":\"x\",\"logic\":{},\"extra\":1}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_field(&r), "extra");
    json_decref(r.json);

    char id[64], other[64], path[160];
    create_logic(&g_key1, NULL, LOGIC, id, sizeof id); /* the name comes from the logic */
    create_logic(&g_key1, "second", LOGIC2, other, sizeof other);
    put_logic(id, LOGIC2, 200);
    snprintf(path, sizeof path, "/v1/logics/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "name"), "sma-cross");
    cr_assert_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(json_object_get(r.json, "logic"), "indicators"), "fast"), "period")),
        4, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/logics/%s?version=1", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 1);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "current_version")), 2);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/logics/%s?version=3", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/logics/%s?version=zero", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/logics/%s", id);
    call(&r, "PUT", path, &g_key1, "{\"logic\":{\"entry\":1}}", NULL);
    cr_assert_eq(r.status, 400, "an invalid version is refused: %s", r.text);
    json_decref(r.json);
    cr_assert_eq(q_int("SELECT count(*) FROM logic_versions WHERE logic_id = '%s'", id), 2);

    /* keyset pages, newest first */
    json_t *items = list(&r, "/v1/logics?limit=1", &g_key1);
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "id"), other);
    char next[256], p2[400];
    snprintf(next, sizeof next, "%s", jstr(r.json, "next_cursor"));
    json_decref(r.json);
    snprintf(p2, sizeof p2, "/v1/logics?limit=1&cursor=%s", next);
    items = list(&r, p2, &g_key1);
    cr_assert(in_items(items, id) && json_is_null(json_object_get(r.json, "next_cursor")), "%s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/logics?cursor=nonsense", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);

    /* soft delete */
    call(&r, "DELETE", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);
    const char *verbs[] = {"GET", "PUT", "DELETE"};
    for (int i = 0; i < 3; i++) {
        char body[4096];
        snprintf(body, sizeof body, "{\"logic\":%s}", LOGIC);
        call(&r, verbs[i], path, &g_key1, body, NULL);
        cr_assert_eq(r.status, 410, "%s after delete: %ld %s", verbs[i], r.status, r.text);
        json_decref(r.json);
    }
    submit_by_id(&r, &g_key1, id, 1);
    cr_assert_eq(r.status, 410, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "logic_deleted");
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/logics/%s?version=1", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "a deleted logic's versions stay readable: %s", r.text);
    json_decref(r.json);
    items = list(&r, "/v1/logics", &g_key1);
    cr_assert(!in_items(items, id) && in_items(items, other), "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(q_int("SELECT count(*) FROM logics WHERE id = '%s' AND deleted_at IS NOT NULL", id), 1);
}

Test(stored, a_job_keeps_the_version_it_ran_and_its_rerun_keeps_it_too)
{
    char id[64], job1[64], path[160];
    create_logic(&g_key1, "versioned", LOGIC, id, sizeof id);
    reply r;
    submit_by_id(&r, &g_key1, id, 0);
    cr_assert_eq(r.status, 202, "%s", r.text);
    snprintf(job1, sizeof job1, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    char *hash1 = q_text("SELECT logic_hash FROM logic_versions WHERE logic_id = '%s' AND version = 1", id);
    put_logic(id, LOGIC2, 200);

    json_t *job = get_job(job1);
    cr_assert_str_eq(jstr(job, "logic_id"), id);
    cr_assert_eq(json_integer_value(json_object_get(job, "logic_version")), 1);
    cr_assert_str_eq(jstr(job, "logic_hash"), hash1);
    json_decref(job);

    /* a rerun runs the version the job ran, and records it */
    snprintf(path, sizeof path, "/v1/jobs/%s/rerun", job1);
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    job = get_job(jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(json_integer_value(json_object_get(job, "logic_version")), 1, "rerun");
    cr_assert_str_eq(jstr(job, "logic_hash"), hash1);
    cr_assert_str_eq(jstr(job, "logic_id"), id);
    json_decref(job);
    /* with latest: the current version */
    call(&r, "POST", path, &g_key1, "{\"latest\":true}", NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    job = get_job(jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(json_integer_value(json_object_get(job, "logic_version")), 2, "rerun latest");
    json_decref(job);
    /* a filter rerun too */
    call(&r, "POST", "/v1/reruns", &g_key1, "{\"status\":\"pending\",\"symbol\":\"BTC-USD\"}", NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(q_int("SELECT count(*) FROM jobs WHERE logic_id = '%s' AND logic_version IS NULL", id), 0);

    /* an older version by number; a version that does not exist */
    submit_by_id(&r, &g_key1, id, 1);
    cr_assert_eq(r.status, 202, "%s", r.text);
    job = get_job(jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(json_integer_value(json_object_get(job, "logic_version")), 1);
    cr_assert_str_eq(jstr(job, "logic_hash"), hash1);
    json_decref(job);
    submit_by_id(&r, &g_key1, id, 9);
    cr_assert_eq(r.status, 404, "%s", r.text);
    cr_assert_str_eq(error_field(&r), "logic_version");
    json_decref(r.json);
    free(hash1);

    /* a sweep by logic_id: the batch records the logic and its version */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"logic_id\":\"%s\",\"logic_version\":1,\"grid\":{\"indicators.fast.period\":[2,3]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             id);
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM batches WHERE id = '%s' AND logic_id = '%%s' AND logic_version = 1",
             jstr(r.json, "id"));
    cr_assert_eq(q_int(sql, id), 1);
    json_decref(r.json);
    snprintf(body, sizeof body, "{\"logic_id\":\"%s\",\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", id,
             LOGIC);
    call(&r, "POST", "/v1/backtests", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "both logic and logic_id: %s", r.text);
    json_decref(r.json);
}

Test(stored, injection_strings_are_stored_verbatim_or_refused)
{
    static const char NAME[] = "x'); DROP TABLE logics; --";
    char id[64], path[160];
    create_logic(&g_key1, NAME, LOGIC, id, sizeof id);
    reply r;
    snprintf(path, sizeof path, "/v1/logics/%s", id);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_str_eq(jstr(r.json, "name"), NAME);
    json_decref(r.json);
    call(&r, "GET", "/v1/logics/1%27%20OR%20%271%27=%271", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    call(&r, "GET", "/v1/schedules/1%20OR%201=1", &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"cron\":\"* * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC'; DROP TABLE jobs; --\","
             "\"timeframe\":\"1d\"}",
             NAME, id);
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_field(&r), "symbol");
    json_decref(r.json);
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"cron\":\"* * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
             NAME, id);
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 201, "%s", r.text);
    cr_assert_str_eq(jstr(r.json, "name"), NAME);
    json_decref(r.json);
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM logics"), 1);
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM schedules"), 1);
}

/* ---- schedules ------------------------------------------------------------------------------- */

Test(stored, a_schedule_validates_its_cron_logic_data_set_and_webhook)
{
    char id[64], body[2048];
    create_logic(&g_key1, "live", LOGIC, id, sizeof id);
    static const char *const CRONS[] = {"61 * * * *", "* * * *", "0 0 30 2 *", "@daily", "*/0 * * * *"};
    reply r;
    for (size_t i = 0; i < sizeof CRONS / sizeof CRONS[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"name\":\"c\",\"cron\":\"%s\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}",
                 CRONS[i], id);
        post_schedule(&r, &g_key1, body);
        cr_assert_eq(r.status, 400, "%s: %s", CRONS[i], r.text);
        cr_assert_str_eq(error_code(&r), "invalid_cron");
        cr_assert(strstr(jstr(json_object_get(r.json, "error"), "message"), "cron") != NULL, "%s", r.text);
        json_decref(r.json);
    }
    static const char *const URLS[] = {"http://127.0.0.1/hook",
                                       "http://2130706433/hook",
                                       "http://0x7f000001/hook",
                                       "http://127.1/hook",
                                       "http://[::1]/hook",
                                       "http://[::ffff:127.0.0.1]/hook",
                                       "http://169.254.169.254/latest",
                                       "http://10.1.2.3/hook",
                                       "http://192.168.0.1/hook",
                                       "http://localhost:8080/hook",
                                       "ftp://example.com/hook",
                                       "file:///etc/passwd",
                                       "gopher://example.com/",
                                       "not a url"};
    for (size_t i = 0; i < sizeof URLS / sizeof URLS[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"name\":\"w\",\"cron\":\"* * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\",\"timeframe\":"
                 "\"1d\",\"webhook_url\":\"%s\"}",
                 id, URLS[i]);
        post_schedule(&r, &g_key1, body);
        cr_assert_eq(r.status, 400, "%s: %ld %s", URLS[i], r.status, r.text);
        cr_assert_str_eq(error_field(&r), "webhook_url", "%s", r.text);
        json_decref(r.json);
    }
    snprintf(body, sizeof body,
             "{\"name\":\"d\",\"cron\":\"* * * * *\",\"logic_id\":\"%s\",\"symbol\":\"NOPE\",\"timeframe\":\"1d\"}",
             id);
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 404, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "dataset_not_found");
    json_decref(r.json);
    post_schedule(&r, &g_key1,
                  "{\"name\":\"i\",\"cron\":\"* * * * *\",\"logic\":{\"entry\":1},\"symbol\":\"BTC-USD\","
                  "\"timeframe\":\"1d\"}");
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "invalid_logic");
    json_decref(r.json);
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM schedules"), 0);
}

Test(stored, a_schedule_shows_its_next_fires_and_its_secret_once)
{
    char id[64], path[64], body[2048];
    create_logic(&g_key1, "live", LOGIC, id, sizeof id);
    reply r;
    snprintf(body, sizeof body,
             "{\"name\":\"hook\",\"cron\":\"0 */2 * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\",\"timeframe\":"
             "\"1d\",\"catch_up\":\"none\",\"webhook_url\":\"https://93.184.216.34/hook?token=abc\"}",
             id);
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 201, "%s", r.text);
    long long sid = json_integer_value(json_object_get(r.json, "id"));
    const char *secret = jstr(r.json, "webhook_secret");
    cr_assert(secret != NULL && strlen(secret) == 64, "%s", r.text);
    char *stored = sf_testenv_query_text(g_db, "SELECT webhook_secret FROM schedules");
    cr_assert_str_eq(stored, secret, "stored as the workers sign with it");
    free(stored);
    json_t *fires = json_object_get(r.json, "next_fires");
    cr_assert_eq(json_array_size(fires), 5, "%s", r.text);
    for (size_t i = 1; i < 5; i++)
        cr_assert(strcmp(json_string_value(json_array_get(fires, i - 1)), json_string_value(json_array_get(fires, i))) <
                  0);
    cr_assert(strstr(json_string_value(json_array_get(fires, 0)), ":00:00Z") != NULL, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "logic_version")), 1);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/schedules/%lld", sid);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert(strstr(r.text, "secret\"") == NULL, "never shown again: %s", r.text);
    cr_assert(json_is_true(json_object_get(r.json, "webhook_signed")), "%s", r.text);
    cr_assert_eq(json_array_size(json_object_get(r.json, "next_fires")), 5);
    json_decref(r.json);
    json_t *items = list(&r, "/v1/schedules", &g_key1);
    cr_assert_eq(json_array_size(items), 1);
    cr_assert(strstr(r.text, "secret\"") == NULL, "%s", r.text);
    json_decref(r.json);
    /* a given secret, and none without a URL */
    snprintf(body, sizeof body,
             "{\"name\":\"s\",\"cron\":\"* * * * *\",\"logic\":%s,\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\","
             "\"webhook_secret\":\"0123456789abcdefXYZ\"}",
             LOGIC);
    post_schedule(&r, &g_key1, body);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
    call(&r, "DELETE", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    call(&r, "DELETE", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
}

/* A firing as cronfire makes it (the firing and its job in one statement),
 * then the signal a worker records; returns the job's id. */
static void seed_firing(long long sid, int minute, const char *signal, char *job, size_t size)
{
    char sql[2048], sids[24];
    snprintf(sids, sizeof sids, "%lld", sid);
    snprintf(sql, sizeof sql,
             "WITH f AS (INSERT INTO schedule_firings (schedule_id, fire_time, job_id) VALUES (%lld, "
             "'2024-03-01T00:%02d:00Z', gen_random_uuid()) RETURNING job_id) "
             "INSERT INTO jobs (id, user_id, kind, status, logic, symbol, timeframe, schedule_id, logic_id, "
             "logic_version, finished_at) SELECT f.job_id, s.user_id, 'logic_execution', 'succeeded', s.logic, "
             "s.symbol, s.timeframe, s.id, s.logic_id, s.logic_version, now() FROM f JOIN schedules s ON s.id = %lld "
             "RETURNING id",
             sid, minute, sid);
    char *id = sf_testenv_query_text(g_db, sql);
    snprintf(job, size, "%s", id);
    free(id);
    snprintf(sql, sizeof sql,
             "INSERT INTO signals (job_id, schedule_id, symbol, bar_time, signal, side, created_at) VALUES ('%s', %s, "
             "'BTC-USD', '2024-02-19T00:00:00Z', '%s', 'long', now() + interval '%d seconds')",
             job, sids, signal, minute);
    sf_testenv_exec(g_db, sql);
}

Test(stored, a_schedules_signals_are_listed_newest_first_and_shown_with_the_job)
{
    char id[64], jobs[3][64], path[400];
    create_logic(&g_key1, "live", LOGIC, id, sizeof id);
    long long sid = create_schedule(id, NULL);
    static const char *const SIGNALS[] = {"enter", "hold", "exit"};
    for (int i = 0; i < 3; i++)
        seed_firing(sid, i, SIGNALS[i], jobs[i], sizeof jobs[i]);
    reply r;
    snprintf(path, sizeof path, "/v1/schedules/%lld/signals?limit=2", sid);
    json_t *items = list(&r, path, &g_key1);
    cr_assert_eq(json_array_size(items), 2, "%s", r.text);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "job_id"), jobs[2]);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "signal"), "exit");
    cr_assert_str_eq(jstr(json_array_get(items, 1), "job_id"), jobs[1]);
    char next[256];
    snprintf(next, sizeof next, "%s", jstr(r.json, "next_cursor"));
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/schedules/%lld/signals?limit=2&cursor=%s", sid, next);
    items = list(&r, path, &g_key1);
    cr_assert_eq(json_array_size(items), 1, "%s", r.text);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "job_id"), jobs[0]);
    cr_assert(json_is_null(json_object_get(r.json, "next_cursor")));
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/schedules/%lld/signals?limit=501", sid);
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);

    json_t *job = get_job(jobs[0]);
    cr_assert_str_eq(jstr(job, "kind"), "logic_execution");
    cr_assert_eq(json_integer_value(json_object_get(job, "schedule_id")), sid);
    cr_assert_eq(json_integer_value(json_object_get(job, "logic_version")), 1);
    cr_assert_str_eq(jstr(json_object_get(job, "signal"), "signal"), "enter");
    cr_assert_str_eq(jstr(json_object_get(job, "signal"), "side"), "long");
    json_decref(job);
}

/* ---- sfctl logics and sfctl schedules ------------------------------------------------------- */

/* sfctl with args (NULL-terminated) and g_key1; stdout in out; the exit status. */
static int sfctl(const char *const *args, char *out, size_t size)
{
    char api[128], k[128];
    snprintf(api, sizeof api, "SF_API_URL=http://127.0.0.1:%d", g_port);
    snprintf(k, sizeof k, "SF_API_KEY=%s", g_key1.text);
    char *envp[] = {api, k, NULL};
    return apitest_sfctl(args, envp, out, size);
}

/* text into a new temporary file, its path in path. */
static void temp_file(const char *text, char *path, size_t size)
{
    snprintf(path, size, "/tmp/sf_stored_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* The "id" of the JSON document in out, into id. */
static void out_id(const char *out, char *id, size_t size)
{
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert(doc != NULL, "not JSON: %s", out);
    json_t *v = json_object_get(doc, "id");
    if (json_is_integer(v))
        snprintf(id, size, "%lld", (long long)json_integer_value(v));
    else
        snprintf(id, size, "%s", json_string_value(v) ? json_string_value(v) : "");
    json_decref(doc);
}

Test(stored, sfctl_logics_create_list_show_update_and_delete)
{
    char f1[64], f2[64], id[64], out[16384];
    temp_file(LOGIC, f1, sizeof f1);
    temp_file(LOGIC2, f2, sizeof f2);
    const char *create[] = {"logics", "create", "--file", f1, "--name", "cli-made", NULL};
    cr_assert_eq(sfctl(create, out, sizeof out), 0, "%s", out);
    out_id(out, id, sizeof id);
    cr_assert_eq(q_int("SELECT count(*) FROM logics WHERE id = '%s' AND name = 'cli-made' AND version = 1", id), 1,
                 "%s", out);
    const char *update[] = {"logics", "update", id, "--file", f2, NULL};
    cr_assert_eq(sfctl(update, out, sizeof out), 0, "%s", out);
    cr_assert_eq(q_int("SELECT version FROM logics WHERE id = '%s'", id), 2, "%s", out);
    const char *show1[] = {"logics", "show", id, "--version", "1", NULL};
    cr_assert_eq(sfctl(show1, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"period\": 2") != NULL || strstr(out, "\"period\":2") != NULL, "version 1: %s", out);
    const char *list[] = {"logics", "list", "--all", NULL};
    cr_assert_eq(sfctl(list, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, id) != NULL && strstr(out, "cli-made") != NULL, "%s", out);
    const char *del[] = {"logics", "delete", id, NULL};
    cr_assert_eq(sfctl(del, out, sizeof out), 0, "%s", out);
    cr_assert_eq(q_int("SELECT count(*) FROM logics WHERE id = '%s' AND deleted_at IS NOT NULL", id), 1);
    const char *show[] = {"logics", "show", id, NULL};
    cr_assert_neq(sfctl(show, out, sizeof out), 0, "a deleted logic is not shown: %s", out);
    const char *bad[] = {"logics", "create", "--file", "/nonexistent/logic.json", NULL};
    cr_assert_neq(sfctl(bad, out, sizeof out), 0);
    unlink(f1);
    unlink(f2);
}

Test(stored, sfctl_schedules_create_list_show_signals_and_delete)
{
    char f1[64], sid[32], out[16384];
    temp_file(LOGIC, f1, sizeof f1);
    const char *create[] = {"schedules",    "create", "--name",     "cli-live", "--cron",
                            "*/15 * * * *", "--file", f1,           "--symbol", "BTC-USD",
                            "--timeframe",  "1d",     "--catch-up", "none",     NULL};
    cr_assert_eq(sfctl(create, out, sizeof out), 0, "%s", out);
    out_id(out, sid, sizeof sid);
    cr_assert_eq(
        q_int("SELECT count(*) FROM schedules WHERE id = %s AND name = 'cli-live' AND cron = '*/15 * * * *'", sid), 1,
        "%s", out);
    const char *show[] = {"schedules", "show", sid, NULL};
    cr_assert_eq(sfctl(show, out, sizeof out), 0, "%s", out);
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(doc, "next_fires")), 5, "the next five firings: %s", out);
    json_decref(doc);
    char job[64];
    seed_firing(strtoll(sid, NULL, 10), 1, "enter", job, sizeof job);
    const char *signals[] = {"schedules", "signals", sid, "--all", NULL};
    cr_assert_eq(sfctl(signals, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, job) != NULL && strstr(out, "enter") != NULL, "%s", out);
    const char *list[] = {"schedules", "list", NULL};
    cr_assert_eq(sfctl(list, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "cli-live") != NULL, "%s", out);
    const char *bad_cron[] = {"schedules", "create",   "--name",  "x",           "--cron", "61 * * * *", "--file",
                              f1,          "--symbol", "BTC-USD", "--timeframe", "1d",     NULL};
    cr_assert_neq(sfctl(bad_cron, out, sizeof out), 0, "a bad cron is refused: %s", out);
    const char *del[] = {"schedules", "delete", sid, NULL};
    cr_assert_eq(sfctl(del, out, sizeof out), 0, "%s", out);
    cr_assert_eq(q_int("SELECT count(*) FROM schedules WHERE id = %s", sid), 0);
    unlink(f1);
}
