/*
 * Costly sweep requests and the rest of the API (issue 11, item 2), through a
 * real sf-api with its default configuration (API_THREADS 4, SWEEP_CHECK_MS
 * 200, SWEEP_CONCURRENCY 2) on a scratch database.
 *
 * The costly request is the one of the issue: a 24 KB logic of 64 indicators
 * and 1,000 condition nodes, swept over a 1,000 x 100 grid (100,000 members,
 * a few milliseconds each to compile here). Before the fix each took from 35 s
 * to several minutes of an API thread, and four of them left /health without
 * an answer for minutes. Four clients send such requests back to back, so the
 * API's four threads stay busy with them, while a prober times /health and an
 * authenticated GET of a job every 20 ms: every probe must be answered within
 * 5 s, and every costly request that is refused within 15 s (the compile
 * budget of 200 ms plus parsing take 4-104 ms idle; the bounds leave room for
 * a shared machine at load 10 and are still far below the minutes of the
 * unbounded API).
 *
 * Two variants: an unknown symbol (404: the data set is looked up before
 * anything is compiled) and a known one with an Idempotency-Key already used
 * (409: the answer comes only after the bounded compile, and no member is
 * inserted), with SWEEP_CONCURRENCY 4 so that all four threads compile.
 * When the costly sweeps are accepted, each costs its thread the INSERT of
 * 100,000 member rows (seconds): at most SWEEP_CONCURRENCY (2) run at once,
 * the others are answered 503 at once, and the probes stay within 5 s.
 * A last test shows the other side of the compile bound: with SWEEP_CHECK_MS=0
 * the API compiles member 0 only, and a member that does not compile is
 * failed by the worker, permanently, with its error.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../support/farm.h"
#include "sf/auth.h"
#include "sf/buf.h"

#define CLIENTS 4 /* = API_THREADS */
#define ROUNDS 3  /* costly requests per client, back to back (at most) */
#define PROBE_EVERY_MS 20
/* The bounds sit far from both sides: unbounded, a costly request took 375 s
 * and starved the probes for as long; bounded, they take 4-104 ms on an idle
 * machine. A shared 2-core machine at load 10 stretches those by 10-30x, so the
 * bounds are 5 s and 15 s: never reached by the bounded API, always by the
 * unbounded one. */
#define PROBE_MAX_MS 5000   /* the bound on /health and GET /v1/jobs/{id} */
#define COSTLY_MAX_MS 15000 /* the bound on one costly request */

static char g_base[64];
static char g_auth[256];
static char g_job[64];     /* a pending job of the user's, for the authenticated GET */
static char *g_costly;     /* the request body */
static const char *g_idem; /* an Idempotency-Key header for the costly requests, or NULL */
static int g_rounds;       /* costly requests per client */

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_ALL); /* before any thread makes a handle */
    farm_setup();
}

static void teardown(void)
{
    free(g_costly);
    g_costly = NULL;
    farm_teardown();
}

TestSuite(farm_sweepload, .init = setup, .fini = teardown, .timeout = 300);

typedef struct answer {
    long code;
    double ms;
    char data[4096];
    size_t len;
} answer;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    answer *a = ctx;
    size_t k = size * n, room = sizeof a->data - 1 - a->len;
    memcpy(a->data + a->len, p, k < room ? k : room);
    a->len += k < room ? k : room;
    a->data[a->len] = '\0';
    return k;
}

/* One request (any thread): the status (-1 when none came within 240 s:
 * an accepted 100,000-member sweep took over 60 s on a machine at load 16)
 * and the time to the whole answer. */
static void http(const char *method, const char *path, const char *json, const char *idem, answer *a)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", g_base, path);
    struct curl_slist *h = curl_slist_append(NULL, g_auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (idem)
        h = curl_slist_append(h, idem);
    memset(a, 0, sizeof *a);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 240L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    int64_t t0 = sf_proc_now_ms();
    CURLcode rc = curl_easy_perform(c);
    a->ms = (double)(sf_proc_now_ms() - t0);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->code);
    if (rc != CURLE_OK)
        a->code = -1;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static int api_ready(void *ctx)
{
    answer *a = ctx;
    http("GET", "/ready", NULL, NULL, a);
    return a->code == 200;
}

/* sf-api with extra settings (NULL-terminated, may be NULL), a user with a
 * key, the data set DEMO 1d and one pending job of the user's. */
static void start_api(const char *const *extra)
{
    char *user = farm_user("load");
    sf_auth_key key;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&key, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_auth_key_create(F.db, user, &key, &err), SF_OK, "%s", err.msg);
    snprintf(g_auth, sizeof g_auth, "Authorization: Bearer %s", key.text);
    sf_auth_key_wipe(&key);
    farm_dataset("DEMO", "1d", 300, 7);
    char *job = farm_job(user, FARM_LOGIC_SMA, "DEMO", "1d", 1, 3);
    snprintf(g_job, sizeof g_job, "%s", job);
    free(job);
    free(user);
    int port = sf_proc_free_port();
    char p[32];
    snprintf(p, sizeof p, "PORT=%d", port);
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", port);
    const char *env[FARM_ENV_MAX] = {p, "BIND_ADDRESS=127.0.0.1"};
    for (int i = 0, n = 2; extra && extra[i] && n < FARM_ENV_MAX - 12; i++)
        env[n++] = extra[i];
    farm_start("api", "sf-api", env);
    static answer a;
    FARM_ASSERT(sf_proc_wait_until(api_ready, &a, 15000, 50), "sf-api not ready: %s", a.data);
}

/* ---- the costly request ---------------------------------------------------------- */

/* 64 sma indicators i0..i63; entry all of 499 comparisons and exit any of 499
 * (1,000 condition nodes); grid i0.period 1..1000 x i1.period 1..100. */
static char *costly_body(const char *symbol)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    sf_buf_puts(&b, "{\"logic\":{\"name\":\"big\",\"indicators\":{", NULL);
    for (int i = 0; i < 64; i++)
        sf_buf_printf(&b, NULL, "%s\"i%d\":{\"type\":\"sma\",\"source\":\"close\",\"period\":%d}", i ? "," : "", i,
                      5 + i);
    for (int t = 0; t < 2; t++) {
        sf_buf_puts(&b, t == 0 ? "},\"entry\":{\"all\":[" : "]},\"exit\":{\"any\":[", NULL);
        for (int k = 0; k < 499; k++)
            sf_buf_printf(&b, NULL, "%s{\"lt\":[\"i%d\",\"i%d\"]}", k ? "," : "", k % 64, (k + 1) % 64);
    }
    sf_buf_printf(&b, NULL,
                  "]}},\"grid\":{\"indicators.i0.period\":{\"from\":1,\"to\":1000,\"step\":1},"
                  "\"indicators.i1.period\":{\"from\":1,\"to\":100,\"step\":1}},"
                  "\"symbol\":\"%s\",\"timeframe\":\"1d\"}",
                  symbol);
    cr_assert_gt(b.len, 20000, "the costly request is %zu bytes", b.len);
    size_t n = 0;
    return sf_buf_steal(&b, &n);
}

/* ---- clients and the prober --------------------------------------------------------- */

typedef struct client {
    pthread_t th;
    long codes[ROUNDS];
    double ms[ROUNDS];
} client;

static atomic_int g_clients_left;

static void *client_main(void *arg)
{
    client *c = arg;
    static _Thread_local answer a;
    for (int r = 0; r < g_rounds; r++) {
        http("POST", "/v1/sweeps", g_costly, g_idem, &a);
        c->codes[r] = a.code;
        c->ms[r] = a.ms;
    }
    atomic_fetch_sub(&g_clients_left, 1);
    return NULL;
}

typedef struct prober {
    pthread_t th;
    int probes; /* pairs of probes sent while clients were at work */
    double worst_health, worst_job;
    long bad_code; /* a probe's status other than 200, or 0 */
} prober;

static void *prober_main(void *arg)
{
    prober *p = arg;
    static _Thread_local answer a;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", g_job);
    while (atomic_load(&g_clients_left) > 0) {
        http("GET", "/health", NULL, NULL, &a);
        p->worst_health = a.ms > p->worst_health ? a.ms : p->worst_health;
        p->bad_code = a.code != 200 ? a.code : p->bad_code;
        http("GET", path, NULL, NULL, &a);
        p->worst_job = a.ms > p->worst_job ? a.ms : p->worst_job;
        p->bad_code = a.code != 200 ? a.code : p->bad_code;
        p->probes++;
        sf_proc_sleep_ms(PROBE_EVERY_MS);
    }
    return NULL;
}

/* CLIENTS x rounds costly requests while the prober runs; checks the bounds
 * (each costly answer within max_ms) and that every costly answer is want or
 * also (0: want only). The number answered want. */
static int costly_load(int rounds, long want, long also, double max_ms)
{
    int wanted = 0;
    g_rounds = rounds;
    static client cl[CLIENTS];
    static prober pr;
    memset(cl, 0, sizeof cl);
    memset(&pr, 0, sizeof pr);
    atomic_store(&g_clients_left, CLIENTS);
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(pthread_create(&cl[i].th, NULL, client_main, &cl[i]), 0);
    sf_proc_sleep_ms(50); /* the clients' first requests are in */
    cr_assert_eq(pthread_create(&pr.th, NULL, prober_main, &pr), 0);
    double worst = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i].th, NULL);
        for (int r = 0; r < rounds; r++) {
            FARM_ASSERT(cl[i].codes[r] == want || (also && cl[i].codes[r] == also),
                        "costly request %d.%d: status %ld, want %ld", i, r, cl[i].codes[r], want);
            wanted += cl[i].codes[r] == want;
            worst = cl[i].ms[r] > worst ? cl[i].ms[r] : worst;
        }
    }
    pthread_join(pr.th, NULL);
    fprintf(stderr,
            "costly requests (%ld): slowest %.0f ms; while in flight: %d probes, slowest /health %.0f ms, "
            "slowest GET /v1/jobs/{id} %.0f ms\n",
            want, worst, pr.probes, pr.worst_health, pr.worst_job);
    FARM_ASSERT(worst < max_ms, "a costly request took %.0f ms", worst);
    FARM_ASSERT(pr.probes >= 1, "no probe ran while the costly requests were in flight");
    FARM_ASSERT(pr.bad_code == 0, "a probe was answered %ld", pr.bad_code);
    FARM_ASSERT(pr.worst_health < PROBE_MAX_MS, "/health took %.0f ms", pr.worst_health);
    FARM_ASSERT(pr.worst_job < PROBE_MAX_MS, "GET /v1/jobs/{id} took %.0f ms", pr.worst_job);
    return wanted;
}

Test(farm_sweepload, costly_sweeps_for_an_unknown_data_set_are_404_at_once_and_the_api_stays_responsive)
{
    start_api(NULL);
    g_costly = costly_body("NOPE");
    g_idem = NULL;
    costly_load(ROUNDS, 404, 0, COSTLY_MAX_MS);
    cr_assert_eq(farm_int("SELECT count(*) FROM batches"), 0);
}

Test(farm_sweepload, costly_sweeps_are_compiled_within_a_budget_and_the_api_stays_responsive)
{
    /* every thread may compile (SWEEP_CONCURRENCY = API_THREADS): the
     * compile's own bound is what keeps the probes fast */
    const char *env[] = {"SWEEP_CONCURRENCY=4", NULL};
    start_api(env);
    /* a small sweep takes the key; the costly ones, with the same key and
     * another body, are refused 409 once compiled (nothing inserted) */
    static answer a;
    char small[1024];
    snprintf(small, sizeof small,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[3,4]},\"symbol\":\"DEMO\",\"timeframe\":\"1d\"}",
             FARM_LOGIC_SMA);
    http("POST", "/v1/sweeps", small, "Idempotency-Key: taken", &a);
    FARM_ASSERT(a.code == 202, "small sweep: %ld %s", a.code, a.data);
    g_costly = costly_body("DEMO");
    g_idem = "Idempotency-Key: taken";
    costly_load(ROUNDS, 409, 0, COSTLY_MAX_MS);
    cr_assert_eq(farm_int("SELECT count(*) FROM batches"), 1);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE batch_id IS NOT NULL"), 2);
    /* one more, without the key: accepted, a bounded number of its members compiled */
    http("POST", "/v1/sweeps", g_costly, NULL, &a);
    FARM_ASSERT(a.code == 202, "costly sweep: %ld %s", a.code, a.data);
    json_t *j = json_loads(a.data, 0, NULL);
    json_int_t checked = json_integer_value(json_object_get(j, "checked"));
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 100000, "%s", a.data);
    cr_assert(checked >= 1 && checked < 100000, "%s", a.data);
    json_decref(j);
}

Test(farm_sweepload, accepted_costly_sweeps_take_at_most_sweep_concurrency_threads)
{
    /* Each accepted one inserts 100,000 member rows: seconds of its thread.
     * At most SWEEP_CONCURRENCY (2) at once; the others are 503 busy at
     * once, and the two threads left answer everything else. */
    start_api(NULL);
    g_costly = costly_body("DEMO");
    g_idem = NULL;
    int accepted = costly_load(1, 202, 503, 240000); /* the bound is the 503s being at once, not this */
    cr_assert_geq(accepted, 1);
    cr_assert_eq(farm_int("SELECT count(*) FROM batches"), accepted);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE batch_id IS NOT NULL"), accepted * 100000LL);
}

Test(farm_sweepload, a_member_the_api_did_not_compile_is_failed_by_the_worker_with_its_error)
{
    const char *env[] = {"SWEEP_CHECK_MS=0", NULL};
    start_api(env);
    farm_scheduler("sched", NULL);
    farm_worker("w1", 1, 5, NULL);
    static answer a;
    char req[1024];
    snprintf(req, sizeof req,
             "{\"logic\":%s,\"grid\":{\"indicators.fast.period\":[5,0]},\"symbol\":\"DEMO\",\"timeframe\":\"1d\"}",
             FARM_LOGIC_SMA);
    http("POST", "/v1/sweeps", req, NULL, &a);
    FARM_ASSERT(a.code == 202, "sweep: %ld %s", a.code, a.data);
    json_t *j = json_loads(a.data, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "checked")), 1, "%s", a.data);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 2 FROM jobs WHERE batch_id = $1::uuid AND status IN "
                              "('succeeded', 'failed', 'dead')",
                              id, 30000),
                "the sweep's members did not finish");
    cr_assert_eq(farm_int1("SELECT count(*) FROM jobs WHERE batch_id = $1::uuid AND combo_index = 0 AND "
                           "status = 'succeeded'",
                           id),
                 1);
    char *err = farm_text1("SELECT status || ' ' || attempt || ': ' || error FROM jobs WHERE batch_id = $1::uuid "
                           "AND combo_index = 1",
                           id);
    cr_assert_str_eq(err, "failed 1: indicators.fast.period: must be an integer >= 1");
    free(err);
}
