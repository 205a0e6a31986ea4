/*
 * Security tests of sf-api over real HTTP against a server started on a
 * scratch database (tests/support/apitest.h), driven by the route table
 * (api/ops.c, read as text) and the document (api/openapi.json), so that a
 * route added later is either covered here or fails here by name:
 *
 * - tenants: user 2's key on each of user 1's resources (jobs, results,
 *   batches, logics, schedules, signals; every verb of every route, and the
 *   filters and bodies that name another user's resource) is answered exactly
 *   as for a resource that does not exist (404 on the routes that name one,
 *   never 403, never 2xx), lists and pages show none of user 1's identifiers,
 *   and PostgreSQL is unchanged, row for row;
 * - injection: SQL quotes, "'; DROP TABLE", NUL bytes, long strings, unicode,
 *   invalid UTF-8, JSON of the wrong type, path traversal and CRLF in every
 *   path parameter, query parameter and body property the document declares,
 *   in the headers and in whole bodies: never a 5xx, every 4xx a JSON error
 *   with a code and a message, PostgreSQL unchanged by a refused request, no
 *   injected response header, and the server alive throughout;
 * - no response of any of those carries an API key.
 */
#include "../support/apitest.h"
#include "../support/rawhttp.h"

#include <ctype.h>
#include <stdlib.h>

#define NO_SCHEDULE "987654321"

static void setup(void)
{
    apitest_open("t_sec_", "enterprise", "enterprise"); /* no quota or rate limit in the way */
    apitest_import_dataset();
    apitest_start_api(NULL);
}

TestSuite(security, .init = setup, .fini = apitest_teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert(s && fread(s, 1, (size_t)n, f) == (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The routes of api/ops.c's table, "METHOD /path" each, into out; their count. */
static size_t ops_routes(char out[][128], size_t max)
{
    char *src = slurp(SF_SOURCE_DIR "/api/ops.c");
    const char *p = strstr(src, "api_routes[] = {");
    cr_assert(p, "api/ops.c: no api_routes[] table");
    const char *end = strstr(p, "\n};");
    size_t n = 0;
    for (const char *l = strstr(p, "{\""); l && l < end && n < max; l = strstr(l + 1, "{\"")) {
        char m[16], path[100];
        cr_assert_eq(sscanf(l, "{\"%15[A-Z]\", \"%99[^\"]\"", m, path), 2, "api/ops.c: %.60s", l);
        snprintf(out[n++], 128, "%s %s", m, path);
    }
    free(src);
    cr_assert_gt(n, 20, "api/ops.c: only %zu routes read", n);
    return n;
}

/* One request with any bytes for body (len of them), key (NULL: none) and
 * up to two more headers; fails the test on a transport error. */
static void call_n(reply *r, const char *method, const char *path, const sf_auth_key *key, const char *body, size_t len,
                   const char *h1, const char *h2)
{
    char url[16384], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key->text : "");
    const char *h[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    if (key)
        h[n++] = auth;
    if (h1)
        h[n++] = h1;
    if (h2)
        h[n++] = h2;
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err err = {0};
    sf_status st = sf_http_request(g_http, method, url, h, body, body ? len : 0, &resp, &err);
    cr_assert_eq(st, SF_OK, "%s %.200s: %s", method, path, err.msg);
    r->status = resp.status;
    snprintf(r->text, sizeof r->text, "%s", sf_buf_str(&resp.body));
    r->json = json_loads(r->text, 0, NULL);
    sf_http_response_destroy(&resp);
}

/* Every row of every table of the scratch database, as one digest per
 * table: "table:md5,table:md5,...". */
static char *db_digest(void)
{
    char *q = sf_testenv_query_text(
        g_db, "SELECT string_agg(format('SELECT %L || '':'' || md5(coalesce(string_agg(t::text, ''|'' ORDER BY "
              "t::text), '''')) FROM %I t', table_name, table_name), ' UNION ALL ' ORDER BY table_name) "
              "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'");
    size_t len = strlen(q) + 128;
    char *sql = malloc(len);
    snprintf(sql, len, "SELECT string_agg(x, ',' ORDER BY x) FROM (%s) s(x)", q);
    char *d = sf_testenv_query_text(g_db, sql);
    free(sql);
    free(q);
    cr_assert(strstr(d, "jobs:") && strstr(d, "logics:"), "digest: %s", d);
    return d;
}

static void expect_alive(const char *after)
{
    int status = 0;
    cr_assert_eq(waitpid(g_pid, &status, WNOHANG), 0, "sf-api exited after %s", after);
    reply r;
    call(&r, "GET", "/health", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "after %s: /health %ld", after, r.status);
    json_decref(r.json);
}

/* No API key of either user in text. */
static void expect_no_key(const char *what, const char *text)
{
    cr_assert(!strstr(text, g_key1.text) && !strstr(text, g_key2.text), "%s: an API key in the response", what);
}

/* The whole of /metrics (no key needed: METRICS_TOKEN unset) holds no API key. */
static void expect_no_key_in_metrics(const char *after)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", g_port);
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err err = {0};
    cr_assert_eq(sf_http_request(g_http, "GET", url, NULL, NULL, 0, &resp, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(resp.status, 200);
    cr_assert(strstr(sf_buf_str(&resp.body), "http_request_duration_seconds_count"), "%.300s", sf_buf_str(&resp.body));
    expect_no_key(after, sf_buf_str(&resp.body));
    cr_assert(!strstr(sf_buf_str(&resp.body), g_key1.text + 11), "/metrics after %s: part of a key", after);
    sf_http_response_destroy(&resp);
}

/* ---- user 1's resources -------------------------------------------------------------------- */

typedef struct owned {
    char logic[64], job[64], pending[64], batch[64], sched[32], signal_job[64];
} owned;

#define LOGIC APITEST_LOGIC

static void post_ok(const char *path, const char *body, long want, const char *field, char *out, size_t size)
{
    reply r;
    call(&r, "POST", path, &g_key1, body, NULL);
    cr_assert_eq(r.status, want, "%s: %ld %s", path, r.status, r.text);
    json_t *v = json_object_get(r.json, field);
    if (json_is_integer(v))
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, size, "%s", json_string_value(v));
    json_decref(r.json);
}

/* User 1's stored logic, a succeeded job with its result, a pending job, a
 * sweep of two members, a schedule with a webhook and a signal of it. */
static void make_owned(owned *o)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"name\":\"one-private-logic\",\"logic\":%s}", LOGIC);
    post_ok("/v1/logics", body, 201, "id", o->logic, sizeof o->logic);
    snprintf(body, sizeof body, "{\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", o->logic);
    post_ok("/v1/backtests", body, 202, "id", o->job, sizeof o->job);
    post_ok("/v1/backtests", body, 202, "id", o->pending, sizeof o->pending);
    apitest_sql("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = '%s'", o->job);
    apitest_sql("INSERT INTO results (job_id, metrics, trades, equity) "
                "VALUES ('%s', '{\"sharpe\": 1.5}', '[]', '[]')",
                o->job);
    snprintf(body, sizeof body,
             "{\"logic_id\":\"%s\",\"grid\":{\"indicators.fast.period\":[2,3]},\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\"}",
             o->logic);
    post_ok("/v1/sweeps", body, 202, "id", o->batch, sizeof o->batch);
    snprintf(body, sizeof body,
             "{\"name\":\"one-schedule\",\"cron\":\"*/5 * * * *\",\"logic_id\":\"%s\",\"symbol\":\"BTC-USD\","
             "\"timeframe\":\"1d\",\"webhook_url\":\"https://93.184.216.34/hook\"}",
             o->logic);
    post_ok("/v1/schedules", body, 201, "id", o->sched, sizeof o->sched);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (user_id, kind, status, logic, symbol, timeframe, schedule_id, finished_at) "
             "SELECT user_id, 'logic_execution', 'succeeded', logic, symbol, timeframe, id, now() "
             "FROM schedules WHERE id = %s RETURNING id",
             o->sched);
    char *sj = sf_testenv_query_text(g_db, sql);
    snprintf(o->signal_job, sizeof o->signal_job, "%s", sj);
    free(sj);
    snprintf(sql, sizeof sql,
             "INSERT INTO signals (job_id, schedule_id, symbol, bar_time, signal) "
             "VALUES ('%s', %s, 'BTC-USD', '2024-02-19T00:00:00Z', 'enter')",
             o->signal_job, o->sched);
    sf_testenv_exec(g_db, sql);
}

/* tmpl with {L} {J} {P} {B} {S} {G} replaced by o's logic, job, pending job,
 * batch, schedule and signal's job. */
static void fill(const char *tmpl, const owned *o, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < size; p++) {
        const char *v = NULL;
        if (p[0] == '{' && p[1] && p[2] == '}') {
            switch (p[1]) {
            case 'L': v = o->logic; break;
            case 'J': v = o->job; break;
            case 'P': v = o->pending; break;
            case 'B': v = o->batch; break;
            case 'S': v = o->sched; break;
            case 'G': v = o->signal_job; break;
            default: break;
            }
        }
        if (v) {
            n += (size_t)snprintf(out + n, size - n, "%s", v);
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n < size ? n : size - 1] = '\0';
}

/* ---- tenants ------------------------------------------------------------------------------- */

/* What user 2 tries on user 1's resources, for each route of the table.
 * want: 404 (the route names a resource: answered as a missing one), or 0
 * (the route names none of user 1's: any answer, compared with the one for
 * missing resources and searched for user 1's identifiers). */
typedef struct tenant_case {
    const char *route; /* "METHOD /path" as in api/ops.c */
    const char *path;  /* the request's path, with {L} ... placeholders */
    const char *body;  /* NULL: none */
    long want;
} tenant_case;

#define SWEEP_BODY                                                                                                     \
    "{\"logic_id\":\"{L}\",\"grid\":{\"indicators.fast.period\":[2,3]},\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}"

static const tenant_case TENANT[] = {
    {"GET /health", "/health", NULL, 0},
    {"GET /ready", "/ready", NULL, 0},
    {"GET /metrics", "/metrics", NULL, 0},
    {"GET /v1/datasets", "/v1/datasets", NULL, 0},
    {"POST /v1/backtests", "/v1/backtests", "{\"logic_id\":\"{L}\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", 404},
    {"POST /v1/sweeps", "/v1/sweeps", SWEEP_BODY, 404},
    {"GET /v1/jobs/{id}", "/v1/jobs/{J}", NULL, 404},
    {"GET /v1/jobs/{id}", "/v1/jobs/{G}", NULL, 404},
    {"GET /v1/jobs/{id}/result", "/v1/jobs/{J}/result", NULL, 404},
    {"POST /v1/jobs/{id}/cancel", "/v1/jobs/{P}/cancel", NULL, 404},
    {"GET /v1/batches/{id}", "/v1/batches/{B}", NULL, 404},
    {"GET /v1/batches/{id}", "/v1/batches/{B}?top=5&by=sharpe", NULL, 404},
    {"POST /v1/batches/{id}/cancel", "/v1/batches/{B}/cancel", NULL, 404},
    {"GET /v1/jobs", "/v1/jobs?limit=500", NULL, 0},
    {"GET /v1/jobs", "/v1/jobs?batch={B}", NULL, 404},
    {"GET /v1/jobs", "/v1/jobs?logic={L}", NULL, 0},
    {"GET /v1/batches", "/v1/batches?limit=500", NULL, 0},
    {"POST /v1/jobs/{id}/rerun", "/v1/jobs/{J}/rerun", "{}", 404},
    {"POST /v1/jobs/{id}/rerun", "/v1/jobs/{P}/rerun", "{\"latest\":true}", 404},
    {"POST /v1/batches/{id}/rerun", "/v1/batches/{B}/rerun", "{\"status\":\"pending\"}", 404},
    {"POST /v1/reruns", "/v1/reruns", "{\"batch\":\"{B}\",\"status\":\"pending\"}", 404},
    {"POST /v1/reruns", "/v1/reruns", "{\"logic\":\"{L}\",\"status\":\"pending\"}", 0},
    {"POST /v1/reruns", "/v1/reruns", "{\"status\":\"succeeded\"}", 0},
    {"POST /v1/logics", "/v1/logics", "{\"logic\":{\"name\":\"x\"}}", 0}, /* names no one's: refused as invalid */
    {"GET /v1/logics", "/v1/logics", NULL, 0},
    {"GET /v1/logics/{id}", "/v1/logics/{L}", NULL, 404},
    {"GET /v1/logics/{id}", "/v1/logics/{L}?version=1", NULL, 404},
    {"PUT /v1/logics/{id}", "/v1/logics/{L}", "{\"name\":\"stolen\",\"logic\":" LOGIC "}", 404},
    {"DELETE /v1/logics/{id}", "/v1/logics/{L}", NULL, 404},
    {"POST /v1/schedules", "/v1/schedules",
     "{\"name\":\"x\",\"cron\":\"* * * * *\",\"logic_id\":\"{L}\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}", 404},
    {"GET /v1/schedules", "/v1/schedules", NULL, 0},
    {"GET /v1/schedules/{id}", "/v1/schedules/{S}", NULL, 404},
    {"DELETE /v1/schedules/{id}", "/v1/schedules/{S}", NULL, 404},
    {"GET /v1/schedules/{id}/signals", "/v1/schedules/{S}/signals", NULL, 404},
    {"GET /v1/me", "/v1/me", NULL, 0},
    {"GET /", "/", NULL, 0},
    {"GET /openapi.json", "/openapi.json", NULL, 0},
    {"GET /v1/status", "/v1/status", NULL, 0},
};
#define N_TENANT (sizeof TENANT / sizeof TENANT[0])

/* Identifiers of user 1 that user 2 must never see. */
static void expect_none_of(const owned *o, const char *what, const char *text)
{
    const char *ids[] = {o->logic,       o->job,         o->pending,        o->batch,
                         o->signal_job,  g_user1,        "one@example.com", "one-private-logic",
                         "one-schedule", "93.184.216.34"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        cr_assert(!strstr(text, ids[i]), "%s: user 2 sees user 1's %s: %.400s", what, ids[i], text);
    char sched[64];
    snprintf(sched, sizeof sched, "\"schedule_id\":%s", o->sched);
    cr_assert(!strstr(text, sched), "%s: user 2 sees user 1's schedule: %.400s", what, text);
    expect_no_key(what, text);
}

/* The answer to user 2 naming resources that do not exist: the same case
 * with every placeholder a fresh identifier. */
static void missing_twin(const owned *o, owned *m)
{
    *m = *o;
    snprintf(m->logic, sizeof m->logic, "0a1b2c3d-0000-4000-8000-00000000000a");
    snprintf(m->job, sizeof m->job, "0a1b2c3d-0000-4000-8000-00000000000b");
    snprintf(m->pending, sizeof m->pending, "0a1b2c3d-0000-4000-8000-00000000000c");
    snprintf(m->batch, sizeof m->batch, "0a1b2c3d-0000-4000-8000-00000000000d");
    snprintf(m->sched, sizeof m->sched, NO_SCHEDULE);
    snprintf(m->signal_job, sizeof m->signal_job, "0a1b2c3d-0000-4000-8000-00000000000e");
}

static void tenant_try(const tenant_case *c, const char *method, const owned *o, const owned *missing)
{
    char path[512], body[2048], what[700];
    reply r, twin;
    fill(c->path, o, path, sizeof path);
    if (c->body)
        fill(c->body, o, body, sizeof body);
    snprintf(what, sizeof what, "%s %s (the case of route %s)", method, path, c->route);
    call(&r, method, path, &g_key2, c->body ? body : NULL, NULL);
    fill(c->path, missing, path, sizeof path);
    if (c->body)
        fill(c->body, missing, body, sizeof body);
    call(&twin, method, path, &g_key2, c->body ? body : NULL, NULL);
    int own_verb = strncmp(c->route, method, strlen(method)) == 0 && c->route[strlen(method)] == ' ';
    if (own_verb && c->want)
        cr_assert_eq(r.status, c->want, "%s: %ld %s", what, r.status, r.text);
    cr_assert(r.status != 403, "%s: 403 tells that it exists", what);
    cr_assert_eq(r.status, twin.status, "%s: %ld, but %ld for a missing one", what, r.status, twin.status);
    if (r.status >= 400) {
        cr_assert(error_code(&r) && error_code(&twin), "%s: %s", what, r.text);
        cr_assert_str_eq(error_code(&r), error_code(&twin), "%s: %s, but %s for a missing one", what, r.text,
                         twin.text);
    } else {
        cr_assert(!own_verb || !c->want, "%s: %ld %s", what, r.status, r.text);
    }
    expect_none_of(o, what, r.text);
    json_decref(r.json);
    json_decref(twin.json);
}

Test(security, every_route_and_verb_on_another_users_resources_is_answered_as_for_missing_ones)
{
    char routes[64][128];
    size_t n = ops_routes(routes, 64);
    for (size_t i = 0; i < n; i++) {
        int covered = 0;
        for (size_t k = 0; k < N_TENANT; k++)
            covered |= strcmp(TENANT[k].route, routes[i]) == 0;
        cr_assert(covered, "route %s of api/ops.c has no tenant case in test_api_security.c: add one", routes[i]);
    }
    owned o, missing;
    make_owned(&o);
    missing_twin(&o, &missing);
    char *before = db_digest();
    static const char *const VERBS[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    for (size_t k = 0; k < N_TENANT; k++) {
        for (size_t v = 0; v < sizeof VERBS / sizeof VERBS[0]; v++) /* every verb on every path */
            tenant_try(&TENANT[k], VERBS[v], &o, &missing);
    }
    char *after = db_digest();
    cr_assert_str_eq(after, before, "user 2's requests changed PostgreSQL");
    free(before);
    free(after);
    /* and user 1 still sees every one of them as before */
    char path[256];
    const char *mine[] = {"/v1/jobs/{J}/result", "/v1/jobs/{P}",      "/v1/batches/{B}",
                          "/v1/logics/{L}",      "/v1/schedules/{S}", "/v1/schedules/{S}/signals"};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
        reply r;
        fill(mine[i], &o, path, sizeof path);
        call(&r, "GET", path, &g_key1, NULL, NULL);
        cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.text);
        json_decref(r.json);
    }
    expect_no_key_in_metrics("the tenant checks");
    expect_alive("the tenant checks");
}

/* ---- injection ----------------------------------------------------------------------------- */

/* A valid request of user 1 for each route: what the injections start from. */
typedef struct base_case {
    const char *route, *path, *body;
} base_case;

static const base_case BASE[] = {
    {"GET /health", "/health", NULL},
    {"GET /ready", "/ready", NULL},
    {"GET /metrics", "/metrics", NULL},
    {"GET /v1/datasets", "/v1/datasets", NULL},
    {"POST /v1/backtests", "/v1/backtests", "{\"logic\":" LOGIC ",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\"}"},
    {"POST /v1/sweeps", "/v1/sweeps", SWEEP_BODY},
    {"GET /v1/jobs/{id}", "/v1/jobs/{J}", NULL},
    {"GET /v1/jobs/{id}/result", "/v1/jobs/{J}/result", NULL},
    {"POST /v1/jobs/{id}/cancel", "/v1/jobs/{P}/cancel", NULL},
    {"GET /v1/batches/{id}", "/v1/batches/{B}", NULL},
    {"POST /v1/batches/{id}/cancel", "/v1/batches/{B}/cancel", NULL},
    {"GET /v1/jobs", "/v1/jobs", NULL},
    {"GET /v1/batches", "/v1/batches", NULL},
    {"POST /v1/jobs/{id}/rerun", "/v1/jobs/{J}/rerun", "{\"latest\":false}"},
    {"POST /v1/batches/{id}/rerun", "/v1/batches/{B}/rerun", "{\"status\":\"failed\",\"dry_run\":true}"},
    {"POST /v1/reruns", "/v1/reruns", "{\"batch\":\"{B}\",\"status\":\"failed\",\"dry_run\":true}"},
    {"POST /v1/logics", "/v1/logics", "{\"name\":\"n\",\"logic\":" LOGIC "}"},
    {"GET /v1/logics", "/v1/logics", NULL},
    {"GET /v1/logics/{id}", "/v1/logics/{L}", NULL},
    {"PUT /v1/logics/{id}", "/v1/logics/{L}", "{\"name\":\"n\",\"logic\":" LOGIC "}"},
    {"DELETE /v1/logics/{id}", "/v1/logics/{L}", NULL},
    {"POST /v1/schedules", "/v1/schedules",
     "{\"name\":\"s\",\"cron\":\"*/5 * * * *\",\"logic_id\":\"{L}\",\"symbol\":\"BTC-USD\",\"timeframe\":\"1d\","
     "\"webhook_url\":\"https://93.184.216.34/hook\"}"},
    {"GET /v1/schedules", "/v1/schedules", NULL},
    {"GET /v1/schedules/{id}", "/v1/schedules/{S}", NULL},
    {"DELETE /v1/schedules/{id}", "/v1/schedules/{S}", NULL},
    {"GET /v1/schedules/{id}/signals", "/v1/schedules/{S}/signals", NULL},
    {"GET /v1/me", "/v1/me", NULL},
    {"GET /", "/", NULL},
    {"GET /openapi.json", "/openapi.json", NULL},
    {"GET /v1/status", "/v1/status", NULL},
};
#define N_BASE (sizeof BASE / sizeof BASE[0])

/* Injections into a path segment or a query value (URL-encoded already). */
static const char *const EVIL_URL[] = {"%27%20OR%20%271%27%3D%271",
                                       "x%27%29%3B%20DROP%20TABLE%20jobs%3B%20--",
                                       "%00",
                                       "a%00b",
                                       "..%2F..%2F..%2Fetc%2Fpasswd",
                                       "....//....//etc",
                                       "%0D%0AX-Injected:%201",
                                       "%C3%A9%E2%82%AC%F0%9F%98%80%E2%80%AE",
                                       "%FF%FE",
                                       "%C0%AF",
                                       "-1",
                                       "0",
                                       "99999999999999999999999",
                                       "1e3",
                                       "%20",
                                       "%25s%25n",
                                       "%7B%7D",
                                       "%5B%5D",
                                       "true",
                                       "null",
                                       "*",
                                       "",
                                       "LONG"};
#define N_EVIL_URL (sizeof EVIL_URL / sizeof EVIL_URL[0])

/* Injections as a JSON value in place of a body property (raw text: some are
 * not valid JSON on purpose). */
static const char *const EVIL_JSON[] = {"\"' OR '1'='1\"",
                                        "\"x'); DROP TABLE jobs; --\"",
                                        "\"a\\u0000b\"",
                                        "\"\\u0000\"",
                                        "\"\\ud800\"",
                                        "\"\xff\xfe\"",
                                        "\"\xc0\xaf\"",
                                        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xe2\x80\xae\"",
                                        "\"../../../../etc/passwd\"",
                                        "\"a\\r\\nX-Injected: 1\"",
                                        "\"%s%s%n\"",
                                        "\"\"",
                                        "0",
                                        "-1",
                                        "1.5",
                                        "1e400",
                                        "18446744073709551616",
                                        "-9223372036854775809",
                                        "true",
                                        "null",
                                        "[]",
                                        "{}",
                                        "[\"' OR 1=1 --\"]",
                                        "{\"$ne\":null}",
                                        "LONG"};
#define N_EVIL_JSON (sizeof EVIL_JSON / sizeof EVIL_JSON[0])

/* Whole bodies (with their lengths: one has a NUL byte). */
#define BODY(lit)                                                                                                      \
    {                                                                                                                  \
        lit, sizeof lit - 1                                                                                            \
    }
static const struct {
    const char *text;
    size_t len;
} EVIL_BODY[] = {
    BODY(""),
    BODY("null"),
    BODY("[]"),
    BODY("\"x\""),
    BODY("{"),
    BODY("{\"a\":"),
    BODY("\xff\xfe{}"),
    BODY("{\"a\":\"\0\"}"),
    BODY("{\"name\":\"x\",\"name\":\"y\"}"),
    BODY("DEEP"),
    BODY("{}garbage"),
};
#define N_EVIL_BODY (sizeof EVIL_BODY / sizeof EVIL_BODY[0])

#define LONG_LEN 70000

static char *long_text(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* status never 5xx, a refused request answered by a JSON error and
 * PostgreSQL left as it was; an accepted one moves the digest on. */
static void expect_safe(const char *what, reply *r, char **digest)
{
    cr_assert(r->status >= 200 && r->status < 500, "%.300s: %ld %.300s", what, r->status, r->text);
    expect_no_key(what, r->text);
    if (r->status < 400) {
        free(*digest);
        *digest = db_digest();
        return;
    }
    const char *msg = json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    cr_assert(error_code(r) && *error_code(r) && msg && *msg, "%.300s: %ld without a JSON error: %.300s", what,
              r->status, r->text);
    char *now = db_digest();
    cr_assert_str_eq(now, *digest, "%.300s: refused (%ld) but PostgreSQL changed", what, r->status);
    free(now);
}

static json_t *resolve(json_t *doc, json_t *node)
{
    const char *ref = json_string_value(json_object_get(node, "$ref"));
    if (!ref)
        return node;
    cr_assert(strncmp(ref, "#/components/", 13) == 0, "%s", ref);
    char kind[64], name[128];
    cr_assert_eq(sscanf(ref + 13, "%63[^/]/%127s", kind, name), 2, "%s", ref);
    json_t *t = json_object_get(json_object_get(json_object_get(doc, "components"), kind), name);
    cr_assert(t, "%s not found", ref);
    return resolve(doc, t);
}

/* The property names of a request body schema (through $ref and allOf). */
static void body_props(json_t *doc, json_t *schema, const char **names, size_t *n, size_t max)
{
    schema = resolve(doc, schema);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(schema, "properties"), k, v)
    {
        int seen = 0;
        for (size_t i = 0; i < *n; i++)
            seen |= strcmp(names[i], k) == 0;
        if (!seen && *n < max)
            names[(*n)++] = k;
    }
    json_t *all = json_object_get(schema, "allOf");
    for (size_t i = 0; i < json_array_size(all); i++)
        body_props(doc, json_array_get(all, i), names, n, max);
}

/* The operation of the document for route ("METHOD /path"). */
static json_t *doc_op(json_t *doc, const char *route, json_t **item)
{
    char m[16], path[128];
    cr_assert_eq(sscanf(route, "%15s %127s", m, path), 2);
    for (char *c = m; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *item = json_object_get(json_object_get(doc, "paths"), path);
    json_t *op = json_object_get(*item, m);
    cr_assert(op, "%s is not in api/openapi.json", route);
    return op;
}

/* The '/'-separated segments of s into segs; their count. */
static size_t split(const char *s, char segs[][200], size_t max)
{
    size_t n = 0;
    while (*s == '/' && n < max) {
        const char *e = strchr(s + 1, '/');
        size_t len = e ? (size_t)(e - s - 1) : strlen(s + 1);
        snprintf(segs[n++], 200, "%.*s", (int)len, s + 1);
        s += len + 1;
    }
    return n;
}

/* The URL injection e ("LONG": 8000 characters). */
static const char *url_value(const char *e, const char *lng)
{
    return strcmp(e, "LONG") == 0 ? lng : e;
}

static void send_checked(const char *what, const char *method, const char *path, const char *body, size_t len,
                         const char *h1, char **digest)
{
    reply r;
    call_n(&r, method, path, &g_key1, body, len, h1, NULL);
    expect_safe(what, &r, digest);
    json_decref(r.json);
}

/* Each segment of the route's path that is a parameter, replaced by each URL injection. */
static void inject_path(const base_case *b, const char *method, const char *path, const char *body, char **digest)
{
    char tmpl[16][200], segs[16][200], url[16384], what[1400];
    size_t nt = split(strchr(b->route, ' ') + 1, tmpl, 16), ns = split(path, segs, 16);
    cr_assert_eq(nt, ns, "%s: %s", b->route, path);
    char *lng = long_text('A', 8000);
    for (size_t i = 0; i < nt; i++) {
        if (tmpl[i][0] != '{')
            continue;
        for (size_t e = 0; e < N_EVIL_URL; e++) {
            size_t n = 0;
            for (size_t k = 0; k < ns; k++)
                n += (size_t)snprintf(url + n, sizeof url - n, "/%s", k == i ? url_value(EVIL_URL[e], lng) : segs[k]);
            snprintf(what, sizeof what, "%s %.200s (path parameter %.100s)", method, url, tmpl[i]);
            send_checked(what, method, url, body, body ? strlen(body) : 0, NULL, digest);
        }
    }
    free(lng);
}

/* Each query parameter the document declares for the operation, set to each URL injection. */
static void inject_query(json_t *doc, json_t *item, json_t *op, const char *method, const char *path, const char *body,
                         char **digest)
{
    char *lng = long_text('A', 8000);
    json_t *lists[2] = {json_object_get(op, "parameters"), json_object_get(item, "parameters")};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < json_array_size(lists[l]); i++) {
            json_t *p = resolve(doc, json_array_get(lists[l], i));
            if (strcmp(jstr(p, "in"), "query") != 0)
                continue;
            for (size_t e = 0; e < N_EVIL_URL; e++) {
                char url[16384], what[400];
                snprintf(url, sizeof url, "%s?%s=%s", path, jstr(p, "name"), url_value(EVIL_URL[e], lng));
                snprintf(what, sizeof what, "%s %.200s (query parameter %s)", method, url, jstr(p, "name"));
                send_checked(what, method, url, body, body ? strlen(body) : 0, NULL, digest);
            }
        }
    free(lng);
}

/* body with property prop set to the raw JSON text v (malloc'd). */
static char *with_prop(const char *body, const char *prop, const char *v)
{
    json_t *o = json_loads(body, 0, NULL);
    cr_assert(json_is_object(o), "%s", body);
    json_object_set_new(o, prop, json_integer(777777123456789));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *at = strstr(text, "777777123456789");
    size_t len = strlen(text) + strlen(v) + 1;
    char *out = malloc(len);
    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, v, at + 15);
    free(text);
    return out;
}

/* Each body property the document declares, set to each JSON injection; then whole bad bodies. */
static void inject_body(json_t *doc, json_t *op, const char *method, const char *path, const char *body, char **digest)
{
    const char *props[64];
    size_t n = 0;
    json_t *schema = json_object_get(
        json_object_get(json_object_get(json_object_get(op, "requestBody"), "content"), "application/json"), "schema");
    cr_assert(schema, "%s %s: a body but no requestBody schema in the document", method, path);
    body_props(doc, schema, props, &n, 64);
    cr_assert_gt(n, 0, "%s %s: no body properties", method, path);
    char *lng = long_text('A', LONG_LEN);
    lng[0] = '"';
    lng[LONG_LEN - 1] = '"';
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < N_EVIL_JSON; e++) {
            char *b = with_prop(body, props[i], strcmp(EVIL_JSON[e], "LONG") == 0 ? lng : EVIL_JSON[e]);
            char what[1400];
            snprintf(what, sizeof what, "%s %.200s with %.100s = %.100s", method, path, props[i], EVIL_JSON[e]);
            send_checked(what, method, path, b, strlen(b), NULL, digest);
            free(b);
        }
    free(lng);
    char *deep = long_text('[', 100000);
    for (size_t e = 0; e < N_EVIL_BODY; e++) {
        int is_deep = strcmp(EVIL_BODY[e].text, "DEEP") == 0;
        char what[1400];
        snprintf(what, sizeof what, "%s %.200s with the body %.40s", method, path,
                 is_deep ? "[[[..." : EVIL_BODY[e].text);
        send_checked(what, method, path, is_deep ? deep : EVIL_BODY[e].text, is_deep ? 100000 : EVIL_BODY[e].len, NULL,
                     digest);
    }
    free(deep);
}

/* Injections in the headers the API reads besides the key. */
static void inject_headers(const char *method, const char *path, const char *body, char **digest)
{
    char *lng = long_text('A', 6000);
    const char *vals[] = {
        "' OR '1'='1", "x'); DROP TABLE jobs; --", "\xc3\xa9\xe2\x82\xac", "\xff\xfe", "%00", "../../etc/passwd", lng};
    const char *names[] = {"Idempotency-Key", "X-Request-Id"};
    for (size_t h = 0; h < 2; h++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            char header[7000], what[1400];
            snprintf(header, sizeof header, "%s: %s", names[h], vals[v]);
            snprintf(what, sizeof what, "%s %.200s with %.60s", method, path, header);
            send_checked(what, method, path, body, body ? strlen(body) : 0, header, digest);
        }
    free(lng);
}

Test(security, injection_strings_in_every_input_of_every_route_are_refused_cleanly_and_change_nothing)
{
    char routes[64][128];
    size_t n = ops_routes(routes, 64);
    for (size_t i = 0; i < n; i++) {
        int covered = 0;
        for (size_t k = 0; k < N_BASE; k++)
            covered |= strcmp(BASE[k].route, routes[i]) == 0;
        cr_assert(covered, "route %s of api/ops.c has no injection case in test_api_security.c: add one", routes[i]);
    }
    json_error_t jerr;
    json_t *doc = json_load_file(SF_SOURCE_DIR "/api/openapi.json", 0, &jerr);
    cr_assert(doc, "api/openapi.json: %s", jerr.text);
    owned o;
    make_owned(&o);
    char *digest = db_digest();
    for (size_t k = 0; k < N_BASE; k++) {
        char method[16], path[512], body[4096];
        json_t *item = NULL, *op = doc_op(doc, BASE[k].route, &item);
        sscanf(BASE[k].route, "%15s", method);
        fill(BASE[k].path, &o, path, sizeof path);
        if (BASE[k].body)
            fill(BASE[k].body, &o, body, sizeof body);
        const char *b = BASE[k].body ? body : NULL;
        inject_path(&BASE[k], method, path, b, &digest);
        inject_query(doc, item, op, method, path, b, &digest);
        if (b)
            inject_body(doc, op, method, path, b, &digest);
        inject_headers(method, path, b, &digest);
        expect_alive(BASE[k].route);
    }
    free(digest);
    json_decref(doc);
    expect_no_key_in_metrics("the injections");
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM logics WHERE name = 'x''); DROP TABLE jobs; --'"),
                 sf_testenv_query_int(g_db, "SELECT count(*) FROM logics WHERE name LIKE 'x''); DROP%'"));
}

/* ---- headers ------------------------------------------------------------------------------- */

Test(security, bad_keys_are_401_in_json_and_never_echoed)
{
    char *lng = long_text('A', 6000);
    char quoted[64] = "sf_", withq[80];
    memset(quoted + 3, '\'', 43);
    quoted[46] = '\0';
    snprintf(withq, sizeof withq, "%s'", g_key1.text);
    const char *keys[] = {"' OR '1'='1",      "x'); DROP TABLE api_keys; --", quoted,     withq,
                          "../../etc/passwd", "\xc3\xa9\xe2\x82\xac",         "\xff\xfe", lng};
    const char *schemes[] = {"Bearer ", "bearer ", "Basic ", ""};
    char *digest = db_digest();
    for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            char header[7000], what[200];
            snprintf(header, sizeof header, "Authorization: %s%s", schemes[s], keys[k]);
            snprintf(what, sizeof what, "GET /v1/me with %.60s", header);
            reply r;
            call_n(&r, "GET", "/v1/me", NULL, NULL, 0, header, NULL);
            cr_assert_eq(r.status, 401, "%s: %ld %.300s", what, r.status, r.text);
            expect_safe(what, &r, &digest);
            cr_assert(strlen(keys[k]) < 4 || !strstr(r.text, keys[k]), "%s: the key is echoed: %.300s", what, r.text);
            json_decref(r.json);
        }
    free(digest);
    free(lng);
    expect_alive("bad keys");
}

/* Send len bytes of request and read the answer (may be none: the server
 * may close a malformed request or wait for a body that never comes, 2 s
 * here); "" when none. */
static void raw_exchange(const char *request, size_t len, char *resp, size_t size)
{
    int fd = rawhttp_dial("127.0.0.1", g_port);
    cr_assert(fd >= 0, "connect to sf-api");
    resp[0] = '\0';
    if (rawhttp_send(fd, request, len))
        rawhttp_read(fd, resp, size, 2000);
    close(fd);
}

Test(security, crlf_and_nul_in_the_request_line_and_headers_inject_no_response_header)
{
    char key[96];
    snprintf(key, sizeof key, "Authorization: Bearer %s\r\n", g_key1.text);
    static const char *const HEAD[] = {
        "GET /v1/jobs/%0D%0AX-Injected:%201 HTTP/1.1\r\n",
        "GET /v1/jobs?status=%0D%0AX-Injected:%201 HTTP/1.1\r\n",
        "GET /v1/me HTTP/1.1\r\nX-Request-Id: a\rX-Injected: 1\r\n",
        "GET /v1/me HTTP/1.1\r\nX-Request-Id: a%0D%0AX-Injected: 1\r\n",
        "GET /v1/me HTTP/1.1\r\nX-Request-Id: a\r\n X-Injected: 1\r\n",
        "GET /v1/me HTTP/1.1\r\nX-Request-Id: a\nX-Injected: 1\r\n",
        "GET /v1/me HTTP/1.1\r\nX-Request-Id: a\0X-Injected: 1\r\n",
        "GET /v1/me HTTP/1.1\r\nIdempotency-Key: a\0b\r\n",
        "GET /v1/me\0/x HTTP/1.1\r\n",
        "GET /v1/me HTTP/1.1 x HTTP/1.1\r\n",
        "GET /v1/me HTTP/1.1\r\nX Bad: 1\r\n",
        "GET ../../../etc/passwd HTTP/1.1\r\n",
        "POST /v1/logics HTTP/1.1\r\nContent-Length: -1\r\n",
        "POST /v1/logics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
        "POST /v1/logics HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    };
    char *digest = db_digest();
    for (size_t i = 0; i < sizeof HEAD / sizeof HEAD[0]; i++) {
        /* the templates hold NUL bytes: their length is up to the "\r\n" that ends them */
        size_t hl = 0;
        while (!(HEAD[i][hl] == '\r' && HEAD[i][hl + 1] == '\n' && HEAD[i][hl + 2] == '\0'))
            hl++;
        hl += 2;
        char req[1024], resp[65536];
        size_t n = 0;
        memcpy(req, HEAD[i], hl);
        n = hl;
        n += (size_t)snprintf(req + n, sizeof req - n, "Host: 127.0.0.1\r\n%sConnection: close\r\n\r\n", key);
        raw_exchange(req, n, resp, sizeof resp);
        char what[200];
        snprintf(what, sizeof what, "request %zu (%.40s)", i, HEAD[i]);
        if (resp[0]) {
            int status = 0;
            cr_assert_eq(sscanf(resp, "HTTP/1.%*d %d", &status), 1, "%s: %.200s", what, resp);
            cr_assert(status >= 200 && status < 500, "%s: %d %.300s", what, status, resp);
            char *end = strstr(resp, "\r\n\r\n");
            if (end)
                *end = '\0';
            for (char *c = resp; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            cr_assert(!strstr(resp, "x-injected"), "%s: an injected header: %s", what, resp);
        }
        expect_alive(what);
        char *now = db_digest();
        cr_assert_str_eq(now, digest, "%s changed PostgreSQL", what);
        free(now);
    }
    free(digest);
}
