/*
 * Integration tests of the lists and reruns of sf-api (GET /v1/jobs, GET
 * /v1/batches, POST /v1/jobs/{id}/rerun, POST /v1/batches/{id}/rerun, POST
 * /v1/reruns) over real HTTP, and of the plans of the list's statements on
 * 100,000 jobs. The server is started on a scratch database
 * (tests/support/apitest.h), with RERUN_MAX=10.
 */
#include "../support/apitest.h"
#include "sf/joblist.h"

#define RERUN_MAX 10

static const char LOGIC[] = APITEST_LOGIC;

static void setup(void)
{
    static const char *const env[] = {"MAX_BODY_BYTES=8192",
                                      "SWEEP_MAX_COMBINATIONS=50",
                                      "METRICS_TOKEN=scrape-secret",
                                      "SF_RUN_MAX_MB=1",
                                      "MAX_ATTEMPTS_CAP=7",
                                      "RERUN_MAX=10",
                                      NULL};
    apitest_setup("t_lists_", env);
}

TestSuite(lists, .init = setup, .fini = apitest_teardown, .timeout = 120);

/* ---- helpers of this file ----------------------------------------------------------------- */

static void sweep_3x4(char *id, size_t size)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[2,3,4],\"indicators.slow.period\":[10,20,30,40]},"
             "\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\",\"priority\":\"low\"}",
             LOGIC);
    reply r;
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    json_decref(r.json);
}

/* ---- authentication and tenants ------------------------------------------------------------- */

Test(lists, every_new_route_wants_a_valid_key)
{
    static const char *const ROUTES[][2] = {{"GET", "/v1/jobs"},
                                            {"GET", "/v1/batches"},
                                            {"POST", "/v1/reruns"},
                                            {"POST", "/v1/jobs/00000000-0000-0000-0000-000000000000/rerun"},
                                            {"POST", "/v1/batches/00000000-0000-0000-0000-000000000000/rerun"}};
    sf_auth_key bad = g_key1;
    bad.text[10] = bad.text[10] == 'A' ? 'B' : 'A';
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        reply r;
        call(&r, ROUTES[i][0], ROUTES[i][1], NULL, "{}", NULL);
        cr_assert_eq(r.status, 401, "%s %s: %ld", ROUTES[i][0], ROUTES[i][1], r.status);
        json_decref(r.json);
        call(&r, ROUTES[i][0], ROUTES[i][1], &bad, "{}", NULL);
        cr_assert_eq(r.status, 401, "%s %s with a bad key: %ld", ROUTES[i][0], ROUTES[i][1], r.status);
        json_decref(r.json);
    }
}

Test(lists, another_users_jobs_and_batches_are_never_listed_and_404_on_every_verb)
{
    char job[64], batch[64], path[256];
    apitest_submit_ok(&g_key1, job, sizeof job);
    sweep_3x4(batch, sizeof batch);
    reply r;
    json_t *items = list(&r, "/v1/jobs?limit=500", &g_key2);
    cr_assert_eq(json_array_size(items), 0, "%s", r.text);
    json_decref(r.json);
    items = list(&r, "/v1/batches", &g_key2);
    cr_assert_eq(json_array_size(items), 0, "%s", r.text);
    json_decref(r.json);
    items = list(&r, "/v1/jobs", &g_key1);
    cr_assert(in_items(items, job));
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/jobs?batch=%s", batch);
    call(&r, "GET", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/jobs/%s/rerun", job);
    call(&r, "POST", path, &g_key2, NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/batches/%s/rerun", batch);
    call(&r, "POST", path, &g_key2, "{\"status\":\"pending\"}", NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    char body[256];
    snprintf(body, sizeof body, "{\"batch\":\"%s\",\"status\":\"pending\",\"dry_run\":true}", batch);
    call(&r, "POST", "/v1/reruns", &g_key2, body, NULL);
    cr_assert_eq(r.status, 404, "%s", r.text);
    json_decref(r.json);
    /* a filter rerun of user 2 never touches user 1's jobs */
    call(&r, "POST", "/v1/reruns", &g_key2, "{\"status\":\"pending\",\"dry_run\":true}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "matched")), 0);
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", g_user2, NULL), 0);
}

/* ---- pagination and filters ------------------------------------------------------------------- */

Test(lists, pages_walk_every_job_exactly_once_while_new_jobs_arrive)
{
    enum { N = 13 };
    char ids[N][64], extra[64], path[512];
    for (int i = 0; i < N; i++)
        apitest_submit_ok(&g_key1, ids[i], sizeof ids[i]);
    apitest_submit_ok(&g_key2, extra, sizeof extra);
    int seen[N] = {0}, pages = 0;
    char cursor[256] = "";
    for (;;) {
        snprintf(path, sizeof path, "/v1/jobs?limit=4%s%s", cursor[0] ? "&cursor=" : "", cursor);
        reply r;
        json_t *items = list(&r, path, &g_key1);
        pages++;
        cr_assert_leq(json_array_size(items), 4);
        for (size_t k = 0; k < json_array_size(items); k++) {
            const char *id = jstr(json_array_get(items, k), "id");
            cr_assert_neq(strcmp(id, extra), 0, "another user's job listed");
            int known = 0;
            for (int i = 0; i < N; i++)
                if (strcmp(ids[i], id) == 0) {
                    seen[i]++;
                    known = 1;
                }
            cr_assert(known, "a job submitted after the first page was listed: %s", id);
        }
        char newer[64];
        apitest_submit_ok(&g_key1, newer, sizeof newer); /* newer than every page: never on a later one */
        json_t *next = json_object_get(r.json, "next_cursor");
        if (json_is_null(next)) {
            json_decref(r.json);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(r.json);
        cr_assert_lt(pages, 10);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "job %d seen %d times", i, seen[i]);
    cr_assert_eq(pages, 4);
}

static void expect_400(const char *path, const char *field, const char *needle)
{
    reply r;
    call(&r, "GET", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 400, "%s: %ld %s", path, r.status, r.text);
    if (field)
        cr_assert_str_eq(error_field(&r), field, "%s: %s", path, r.text);
    if (needle)
        cr_assert(strstr(r.text, needle) != NULL, "%s: %s", path, r.text);
    json_decref(r.json);
}

Test(lists, filters_select_and_bad_values_are_400_with_a_clear_message)
{
    char a[64], b[64], c[64], path[512];
    apitest_submit_ok(&g_key1, a, sizeof a);
    apitest_submit_ok(&g_key1, b, sizeof b);
    apitest_submit_ok(&g_key1, c, sizeof c);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '%s'", b);
    reply r;
    json_t *items = list(&r, "/v1/jobs?status=failed", &g_key1);
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "id"), b);
    const char *hash = jstr(json_array_get(items, 0), "logic_hash");
    cr_assert(hash && strlen(hash) == 64, "%s", r.text);
    snprintf(path, sizeof path, "/v1/jobs?logic=%s&symbol=BTC-USD&kind=backtest&since=2020-01-01T00:00:00Z", hash);
    json_decref(r.json);
    items = list(&r, path, &g_key1);
    cr_assert_eq(json_array_size(items), 3);
    json_decref(r.json);
    items = list(&r, "/v1/jobs?until=2020-01-01T00:00:00Z", &g_key1);
    cr_assert_eq(json_array_size(items), 0);
    json_decref(r.json);
    items = list(&r, "/v1/jobs?symbol=ETH-USD", &g_key1);
    cr_assert_eq(json_array_size(items), 0);
    json_decref(r.json);
    expect_400("/v1/jobs?status=finished", "status", "pending, queued, running, succeeded, failed, dead, cancelled");
    expect_400("/v1/jobs?kind=sweep", "kind", "backtest, logic_execution");
    expect_400("/v1/jobs?since=yesterday", "since", "ISO-8601");
    expect_400("/v1/jobs?until=2024-13-01T00:00:00Z", "until", NULL);
    expect_400("/v1/jobs?limit=501", "limit", "1 to 500");
    expect_400("/v1/jobs?limit=0", "limit", NULL);
    expect_400("/v1/jobs?cursor=bm90LWEtY3Vyc29y", "cursor", "next_cursor");
    expect_400("/v1/jobs?logic=abc", "logic", NULL);
    expect_400("/v1/jobs?batch=12", "batch", NULL);
    expect_400("/v1/batches?cursor=%25%25", "cursor", NULL);
}

Test(lists, injection_strings_in_every_filter_are_refused_or_match_nothing)
{
    char a[64];
    apitest_submit_ok(&g_key1, a, sizeof a);
    static const char *const EVIL[] = {"%27%20OR%201%3D1%20--", "%25", "%5C%5C", "%C3%A9t%C3%A9%E2%82%AC",
                                       "x%27%3B%20DROP%20TABLE%20jobs%3B--"};
    static const char *const FILTERS[] = {"status", "kind", "batch", "logic", "symbol", "since", "until", "cursor"};
    for (size_t f = 0; f < sizeof FILTERS / sizeof FILTERS[0]; f++)
        for (size_t e = 0; e < sizeof EVIL / sizeof EVIL[0]; e++) {
            char path[256];
            snprintf(path, sizeof path, "/v1/jobs?%s=%s", FILTERS[f], EVIL[e]);
            reply r;
            call(&r, "GET", path, &g_key1, NULL, NULL);
            cr_assert(r.status == 400 || (r.status == 200 && json_array_size(json_object_get(r.json, "items")) == 0),
                      "%s: %ld %s", path, r.status, r.text);
            json_decref(r.json);
        }
    char body[256];
    snprintf(body, sizeof body, "{\"symbol\":\"' OR 1=1 --\",\"dry_run\":true}");
    reply r;
    call(&r, "POST", "/v1/reruns", &g_key1, body, NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key1, "{\"status\":[\"failed' OR '1'='1\"],\"dry_run\":true}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", g_user1, NULL), 1);
}

/* ---- reruns ---------------------------------------------------------------------------------- */

Test(lists, a_job_rerun_keeps_the_logic_and_data_set_version_and_latest_moves_on)
{
    char a[64], path[256];
    apitest_submit_ok(&g_key1, a, sizeof a);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '%s'", a);
    snprintf(path, sizeof path, "/v1/jobs/%s/rerun", a);
    reply r;
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    char b[64];
    snprintf(b, sizeof b, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(
        apitest_q_int("SELECT count(*) FROM jobs n JOIN jobs o ON o.id = '%s' WHERE n.id = '%s' AND n.rerun_of = o.id "
                      "AND n.logic = o.logic AND n.logic_hash = o.logic_hash AND n.symbol = o.symbol "
                      "AND n.dataset_version = o.dataset_version AND n.dataset_version = 1 AND n.status = 'pending'",
                      a, b),
        1);

    json_t *items = list(&r, "/v1/jobs?status=pending", &g_key1);
    cr_assert(in_items(items, b));
    cr_assert_str_eq(jstr(json_array_get(items, 0), "rerun_of"), a);
    json_decref(r.json);
    apitest_import_dataset(); /* version 2: the bars of version 1 are gone */
    call(&r, "POST", path, &g_key1, "{}", NULL);
    cr_assert_eq(r.status, 409, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "dataset_changed");
    json_decref(r.json);
    call(&r, "POST", path, &g_key1, "{\"latest\":true}", NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    cr_assert_eq(apitest_q_int("SELECT dataset_version FROM jobs WHERE id = '%s'%s", jstr(r.json, "id"), NULL), 2);
    json_decref(r.json);
    call(&r, "POST", path, &g_key1, "{\"latest\":1}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
}

Test(lists, a_batch_rerun_takes_failed_dead_and_cancelled_members_into_one_new_batch)
{
    char batch[64], path[256];
    sweep_3x4(batch, sizeof batch);
    apitest_sql(
        "UPDATE jobs SET status = (ARRAY['failed','failed','dead','cancelled','succeeded','succeeded','succeeded',"
        "'pending','pending','pending','pending','pending'])[combo_index + 1]::job_status WHERE batch_id = '%s'",
        batch);
    snprintf(path, sizeof path, "/v1/batches/%s/rerun", batch);
    reply r;
    call(&r, "POST", path, &g_key1, "{\"dry_run\":true}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "matched")), 4);
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM batches WHERE user_id = '%s'%s", g_user1, NULL), 1);
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    char nb[64];
    snprintf(nb, sizeof nb, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT total FROM batches WHERE id = '%s' AND rerun_of = '%s'", nb, batch), 4);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs n JOIN jobs o ON o.id = n.rerun_of WHERE n.batch_id = '%s' "
                               "AND o.batch_id = '%s' AND n.combo_index = o.combo_index AND o.status IN "
                               "('failed','dead','cancelled') AND n.status = 'pending'",
                               nb, batch),
                 4);
    /* the new batch's members have ids of their own base, numbered by the
     * old members' combo_index (migration 0016) */
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs n JOIN jobs o ON o.id = n.rerun_of WHERE n.batch_id = '%s' "
                               "AND right(n.id::text, 8) = lpad(to_hex(n.combo_index), 8, '0') "
                               "AND left(n.id::text, 28) <> left(o.id::text, 28)",
                               nb, NULL),
                 4);
    call(&r, "POST", path, &g_key1, "{\"status\":[\"succeeded\"],\"dry_run\":true}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "matched")), 3, "%s", r.text);
    json_decref(r.json);
    char body[256];
    snprintf(body, sizeof body, "{\"batch\":\"%s\",\"status\":\"succeeded\"}", batch);
    call(&r, "POST", "/v1/reruns", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    json_decref(r.json);
    json_t *items = list(&r, "/v1/batches", &g_key1);
    cr_assert_eq(json_array_size(items), 3, "%s", r.text);
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/jobs?batch=%s&limit=2", nb);
    items = list(&r, path, &g_key1);
    cr_assert_eq(json_array_size(items), 2);
    cr_assert(json_is_string(json_object_get(r.json, "next_cursor")));
    json_decref(r.json);
    snprintf(path, sizeof path, "/v1/batches/%s/rerun", batch);
    call(&r, "POST", path, &g_key1, "{\"status\":\"queued\"}", NULL);
    cr_assert_eq(r.status, 409, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "nothing_to_rerun");
    json_decref(r.json);
}

/* A sweep submitted by a stored logic with its own overfitting settings is
 * re-run with the same blocks, effective trials, logic and logic version; with
 * latest, the stored logic's current version. */
Test(lists, a_batch_rerun_keeps_the_sweeps_overfitting_settings_and_stored_logic_version)
{
    char body[2048], logic_id[64], batch[64], path[256];
    reply r;
    snprintf(body, sizeof body, "{\"name\":\"rerun-me\",\"logic\":%s}", LOGIC);
    call(&r, "POST", "/v1/logics", &g_key1, body, NULL);
    cr_assert_eq(r.status, 201, "%s", r.text);
    snprintf(logic_id, sizeof logic_id, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    snprintf(body, sizeof body,
             "{\"logic_id\":\"%s\",\"grid\":{\"indicators.fast.period\":[2,3]},\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\",\"blocks\":8,\"effective_trials\":5}",
             logic_id);
    call(&r, "POST", "/v1/sweeps", &g_key1, body, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    snprintf(batch, sizeof batch, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    apitest_sql("UPDATE jobs SET status = 'failed' WHERE batch_id = '%s'", batch);
    /* a new version of the stored logic: only latest takes it */
    snprintf(path, sizeof path, "/v1/logics/%s", logic_id);
    snprintf(body, sizeof body, "{\"logic\":%s}", LOGIC);
    call(&r, "PUT", path, &g_key1, body, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_decref(r.json);

    snprintf(path, sizeof path, "/v1/batches/%s/rerun", batch);
    call(&r, "POST", path, &g_key1, NULL, NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    char nb[64];
    snprintf(nb, sizeof nb, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM batches n JOIN batches o ON o.id = n.rerun_of WHERE n.id = '%s' "
                               "AND n.blocks = 8 AND n.effective_trials = 5 AND n.logic_id = o.logic_id "
                               "AND n.logic_version = 1 AND o.logic_version = 1 AND n.logic = o.logic%s",
                               nb, NULL),
                 1, "the rerun lost the sweep's settings or its logic version");
    cr_assert_eq(apitest_q_int("SELECT total FROM batches WHERE id = '%s'%s", nb, NULL), 2);

    call(&r, "POST", path, &g_key1, "{\"latest\":true}", NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    snprintf(nb, sizeof nb, "%s", jstr(r.json, "id"));
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM batches WHERE id = '%s' AND blocks = 8 AND effective_trials = 5 "
                               "AND logic_id = '%s' AND logic_version = 2",
                               nb, logic_id),
                 1, "latest did not take the stored logic's current version");
}

Test(lists, a_filter_rerun_counts_on_a_dry_run_and_refuses_more_than_the_maximum)
{
    char ids[12][64];
    for (int i = 0; i < 12; i++)
        apitest_submit_ok(&g_key1, ids[i], sizeof ids[i]);
    for (int i = 0; i < 6; i++)
        apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '%s'", ids[i]);
    for (int i = 6; i < 12; i++)
        apitest_sql("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = '%s'", ids[i]);
    reply r;
    call(&r, "POST", "/v1/reruns", &g_key1, "{\"status\":\"failed\",\"dry_run\":true}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "matched")), 6);
    json_decref(r.json);
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", g_user1, NULL), 12);
    call(&r, "POST", "/v1/reruns", &g_key1, "{\"status\":[\"failed\",\"succeeded\"],\"dry_run\":true}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    cr_assert_str_eq(error_code(&r), "rerun_too_large");
    cr_assert(strstr(r.text, "more than 10") != NULL, "%s", r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key1, "{}", NULL);
    cr_assert_eq(r.status, 400, "%s", r.text);
    json_decref(r.json);
    call(&r, "POST", "/v1/reruns", &g_key1, "{\"status\":\"failed\",\"since\":\"2020-01-01T00:00:00Z\"}", NULL);
    cr_assert_eq(r.status, 202, "%s", r.text);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "created")), 6);
    json_decref(r.json);
    cr_assert_eq(
        apitest_q_int("SELECT count(*) FROM jobs n JOIN jobs o ON o.id = n.rerun_of WHERE o.user_id = '%s' "
                      "AND o.status = 'failed' AND n.logic = o.logic AND n.dataset_version = o.dataset_version "
                      "AND n.status = 'pending'%s",
                      g_user1, NULL),
        6);
}

/* ---- plans ----------------------------------------------------------------------------------- */

/* Walk an EXPLAIN (FORMAT JSON) plan: count index scans, fail on a Seq Scan
 * of jobs or batches; the node names (and indexes) go into names. */
static void walk_plan(json_t *node, const char *what, int *index_scans, char *names, size_t size)
{
    const char *type = jstr(node, "Node Type"), *rel = jstr(node, "Relation Name"), *ix = jstr(node, "Index Name");
    snprintf(names + strlen(names), size - strlen(names), "%s%s%s%s", names[0] ? ", " : "", type, ix ? " " : "",
             ix ? ix : "");
    cr_assert(!(strcmp(type, "Seq Scan") == 0 && rel && (strcmp(rel, "jobs") == 0 || strcmp(rel, "batches") == 0)),
              "%s: a Seq Scan on %s", what, rel);
    if (strcmp(type, "Index Scan") == 0 || strcmp(type, "Index Only Scan") == 0 ||
        strcmp(type, "Bitmap Index Scan") == 0)
        (*index_scans)++;
    json_t *kids = json_object_get(node, "Plans");
    for (size_t i = 0; i < json_array_size(kids); i++)
        walk_plan(json_array_get(kids, i), what, index_scans, names, size);
}

static void expect_index_plan(const char *what, const sf_joblist_query *q)
{
    char sql[sizeof q->sql + 32];
    snprintf(sql, sizeof sql, "EXPLAIN (FORMAT JSON) %s", q->sql);
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(g_db, sql, q->nparams, q->params, &res, &err), SF_OK, "%s: %s", what, err.msg);
    json_t *plan = json_loads(sf_db_get(res, 0, 0), 0, NULL);
    sf_db_res_free(res);
    int scans = 0;
    char names[2048] = "";
    walk_plan(json_object_get(json_array_get(plan, 0), "Plan"), what, &scans, names, sizeof names);
    cr_assert_gt(scans, 0, "%s: no index scan", what);
    fprintf(stderr, "plan %-20s %s\n", what, names);
    json_decref(plan);
}

Test(lists, the_plan_of_every_filtered_page_on_100000_jobs_is_an_index_scan)
{
    char batch[64];
    sweep_3x4(batch, sizeof batch);
    apitest_sql(
        "INSERT INTO jobs (user_id, kind, status, logic, symbol, timeframe, logic_hash, dataset_version, created_at) "
        "SELECT CASE WHEN g %% 2 = 0 THEN u.id ELSE v.id END, "
        "CASE WHEN g %% 10 = 0 THEN 'logic_execution' ELSE 'backtest' END::job_kind, "
        "(ARRAY['pending','queued','running','succeeded','failed','dead','cancelled'])[1 + g %% 7]::job_status, "
        "'{}'::jsonb, 'SYM' || (g %% 50), '1d', md5((g %% 100)::text) || md5((g %% 100)::text), 1, "
        "now() - g * interval '1 second' FROM generate_series(1, 100000) g, users u, users v "
        "WHERE u.email = 'one@example.com' AND v.email = 'two@example.com' AND '%s' <> ''",
        batch);
    apitest_sql("INSERT INTO jobs (user_id, batch_id, combo_index, status, symbol, timeframe) SELECT user_id, id, g, "
                "(ARRAY['pending','succeeded','failed'])[1 + g %% 3]::job_status, symbol, timeframe "
                "FROM batches, generate_series(12, 20011) g WHERE id = '%s'",
                batch);
    apitest_sql(
        "INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total, created_at) SELECT user_id, logic, "
        "grid, symbol, timeframe, 0, now() - g * interval '1 minute' FROM batches, generate_series(1, 20000) g "
        "WHERE id = '%s'",
        batch);
    sf_testenv_exec(g_db, "ANALYZE jobs");
    sf_testenv_exec(g_db, "ANALYZE batches");
    cr_assert_geq(sf_testenv_query_int(g_db, "SELECT count(*) FROM jobs"), 120000);
    char hash[65];
    snprintf(hash, sizeof hash, "%s", "c4ca4238a0b923820dcc509a6f75849bc4ca4238a0b923820dcc509a6f75849b");
    sf_joblist_filter base = {.user_id = g_user1, .limit = 50};
    struct {
        const char *what;
        sf_joblist_filter f;
    } cases[14];
    size_t n = 0;
    cases[n].what = "no filter", cases[n++].f = base;
    cases[n].what = "status", cases[n].f = base, cases[n].f.status[0] = "failed", cases[n++].f.n_status = 1;
    cases[n].what = "kind", cases[n].f = base, cases[n++].f.kind = "logic_execution";
    cases[n].what = "symbol", cases[n].f = base, cases[n++].f.symbol = "SYM8";
    cases[n].what = "logic", cases[n].f = base, cases[n++].f.logic_hash = hash;
    cases[n].what = "since", cases[n].f = base, cases[n].f.has_since = 1, cases[n++].f.since_s = time(NULL) - 3600;
    cases[n].what = "until", cases[n].f = base, cases[n].f.has_until = 1, cases[n++].f.until_s = time(NULL) - 90000;
    cases[n].what = "cursor", cases[n].f = base, cases[n].f.has_cursor = 1,
    cases[n].f.cursor_us = (int64_t)(time(NULL) - 50000) * 1000000,
    snprintf(cases[n++].f.cursor_id, 40, "%s", "ffffffff-ffff-ffff-ffff-ffffffffffff");
    cases[n].what = "batch", cases[n].f = base, cases[n++].f.batch_id = batch;
    cases[n].what = "batch+status", cases[n].f = base, cases[n].f.batch_id = batch, cases[n].f.status[0] = "failed",
    cases[n++].f.n_status = 1;
    cases[n].what = "status+symbol+since", cases[n].f = base, cases[n].f.status[0] = "dead", cases[n].f.n_status = 1,
    cases[n].f.symbol = "SYM3", cases[n].f.has_since = 1, cases[n++].f.since_s = time(NULL) - 86400;
    for (size_t i = 0; i < n; i++) {
        sf_joblist_query q;
        sf_err err = {0};
        cr_assert_eq(sf_joblist_jobs(&cases[i].f, &q, &err), SF_OK, "%s: %s", cases[i].what, err.msg);
        expect_index_plan(cases[i].what, &q);
    }
    sf_joblist_query q;
    sf_err err = {0};
    cr_assert_eq(sf_joblist_batches(&base, &q, &err), SF_OK);
    expect_index_plan("batches", &q);
    sf_joblist_filter failed = base;
    failed.status[0] = "failed", failed.n_status = 1;
    failed.kind = "backtest"; /* as POST /v1/reruns counts */
    cr_assert_eq(sf_joblist_count(&failed, RERUN_MAX, &q, &err), SF_OK);
    expect_index_plan("rerun count", &q);
    cr_assert_eq(sf_joblist_count(&failed, 100000, &q, &err), SF_OK);
    expect_index_plan("rerun count 100000", &q);
    /* and the API answers such a page */
    reply r;
    json_t *items = list(&r, "/v1/jobs?status=failed&symbol=SYM4&limit=20", &g_key1);
    cr_assert_gt(json_array_size(items), 0);
    json_decref(r.json);
}

/* ---- sfctl ------------------------------------------------------------------------------------ */

/* Run sfctl with the API's URL and user 1's key; stdout into out, returns the exit status. */
static int sfctl(const char *args, char *out, size_t size)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "SF_API_URL=http://127.0.0.1:%d SF_API_KEY=%s %s/sfctl %s 2>/dev/null", g_port,
             g_key1.text, SF_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(lists, sfctl_jobs_batches_and_rerun_against_the_api)
{
    char ids[3][64], out[16384];
    for (int i = 0; i < 3; i++)
        apitest_submit_ok(&g_key1, ids[i], sizeof ids[i]);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '%s'", ids[0]);
    apitest_sql("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = '%s'", ids[1]);
    cr_assert_eq(sfctl("jobs --limit 1 --all", out, sizeof out), 0);
    for (int i = 0; i < 3; i++)
        cr_assert(strstr(out, ids[i]) != NULL, "%s", out);
    cr_assert(strncmp(out, "id\tstatus\t", 10) == 0, "TSV with a header: %s", out);
    cr_assert_eq(sfctl("jobs --status failed --json --all", out, sizeof out), 0);
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(doc, "items")), 2, "%s", out);
    json_decref(doc);
    cr_assert_eq(sfctl("jobs --status finished", out, sizeof out), 2);
    cr_assert_eq(sfctl("rerun --status failed", out, sizeof out), 1); /* no --yes: the count only */
    cr_assert_str_eq(out, "2\n");
    cr_assert_eq(apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s'%s", g_user1, NULL), 3);
    cr_assert_eq(sfctl("rerun --status failed --dry-run", out, sizeof out), 0);
    cr_assert_eq(sfctl("rerun --status failed --yes", out, sizeof out), 0);
    cr_assert_str_eq(out, "2\n");
    cr_assert_eq(
        apitest_q_int("SELECT count(*) FROM jobs WHERE user_id = '%s' AND rerun_of IS NOT NULL%s", g_user1, NULL), 2);
    char args[128];
    snprintf(args, sizeof args, "rerun %s", ids[2]);
    cr_assert_eq(sfctl(args, out, sizeof out), 0);
    cr_assert_eq(strlen(out), 37, "%s", out);
    cr_assert_eq(sfctl("batches --json", out, sizeof out), 0);
    cr_assert(strstr(out, "\"next_cursor\": null") != NULL, "%s", out);
    cr_assert_eq(sfctl("rerun 00000000-0000-0000-0000-000000000000", out, sizeof out), 5);
}
