/*
 * Integration tests for sf_dataset against the local PostgreSQL: every test
 * gets its own scratch database with the migrations applied.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../support/testenv.h"
#include "sf/dataset.h"

static char g_base_url[1024];
static char g_name[64];
static char g_url[1024];
static sf_db *g_db;

static void setup(void)
{
    g_db = sf_testenv_scratch_migrated(g_base_url, sizeof g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
}

static void teardown(void)
{
    sf_db_close(g_db);
    g_db = NULL;
    sf_testenv_scratch_drop(g_base_url, g_name);
}

TestSuite(dataset, .init = setup, .fini = teardown, .timeout = 60);

/* n bars from start, step seconds apart, with prices derived from seed. */
static sf_bars *make_bars(size_t n, int64_t start, int64_t step, double seed)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        double p = seed + (double)(i % 1000) * 0.1 + 1.0 / 3.0;
        b->ts[i] = start + (int64_t)i * step;
        b->open[i] = p;
        b->high[i] = p + 0.7;
        b->low[i] = p - 0.3;
        b->close[i] = p + 0.01;
        b->volume[i] = (double)i * 1e-3;
    }
    return b;
}

static void assert_same_bars(const sf_bars *a, const sf_bars *b)
{
    cr_assert_eq(a->n, b->n, "%zu bars, want %zu", a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->ts[i], b->ts[i], "bar %zu ts %" PRId64 " want %" PRId64, i, a->ts[i], b->ts[i]);
        const double *ca[] = {a->open, a->high, a->low, a->close, a->volume};
        const double *cb[] = {b->open, b->high, b->low, b->close, b->volume};
        for (int c = 0; c < 5; c++)
            cr_assert(memcmp(&ca[c][i], &cb[c][i], sizeof(double)) == 0, "bar %zu column %d: %.17g want %.17g", i, c,
                      ca[c][i], cb[c][i]);
    }
}

static void import_ok(const char *sym, const char *tf, const sf_bars *b, sf_dataset_info *info)
{
    sf_err err = {0};
    cr_assert_eq(sf_dataset_import(g_db, sym, tf, b, info, &err), SF_OK, "%s", err.msg);
}

static int64_t version_of(const char *sym, const char *tf)
{
    int64_t v = -1;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_version(g_db, sym, tf, &v, &err), SF_OK, "%s", err.msg);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(dataset, first_import_creates_version_1_and_load_returns_the_same_bars)
{
    sf_bars *b = make_bars(500, 1704067200, 86400, 100.0);
    sf_dataset_info info;
    import_ok("BTC-USD", "1d", b, &info);
    cr_assert_eq(info.version, 1);
    cr_assert_eq(info.bars, 500);
    cr_assert_eq(info.first_ts, 1704067200);
    cr_assert_eq(info.last_ts, 1704067200 + 499 * 86400);
    cr_assert_str_eq(info.symbol, "BTC-USD");
    cr_assert_str_eq(info.timeframe, "1d");

    sf_bars *got = NULL;
    int64_t ver = 0;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "BTC-USD", "1d", 0, &got, &ver, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ver, 1);
    assert_same_bars(got, b);
    sf_bars_free(got);
    sf_bars_free(b);
}

Test(dataset, values_and_times_round_trip_bit_for_bit)
{
    /* Times before 1970 and before 2000 (negative microseconds in the wire
     * format), and doubles that have no short decimal form. */
    sf_bars *b = make_bars(4, 0, 1, 1.0);
    int64_t times[] = {-86400 * 365 - 1, 0, 946684799, 946684801};
    double odd[] = {0.1, 1e-300, 123456.78901234567, 5e-324};
    for (int i = 0; i < 4; i++) {
        b->ts[i] = times[i];
        b->open[i] = b->close[i] = b->low[i] = odd[i];
        b->high[i] = odd[i] * 2;
        b->volume[i] = odd[3 - i];
    }
    import_ok("EUR/USD", "1m", b, NULL);
    sf_bars *got = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "EUR/USD", "1m", 0, &got, NULL, &err), SF_OK, "%s", err.msg);
    assert_same_bars(got, b);
    sf_bars_free(got);
    sf_bars_free(b);
}

Test(dataset, import_replaces_the_bars_and_bumps_the_version)
{
    sf_bars *a = make_bars(300, 1704067200, 3600, 50.0);
    sf_bars *b = make_bars(120, 1600000000, 3600, 70.0);
    import_ok("AAPL", "1h", a, NULL);
    sf_dataset_info info;
    import_ok("AAPL", "1h", b, &info);
    cr_assert_eq(info.version, 2);
    cr_assert_eq(info.bars, 120);
    cr_assert_eq(version_of("AAPL", "1h"), 2);
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM bars WHERE symbol = 'AAPL'"), 120);
    import_ok("AAPL", "1h", a, &info);
    cr_assert_eq(info.version, 3);
    sf_bars *got = NULL;
    int64_t ver = 0;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "AAPL", "1h", 0, &got, &ver, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ver, 3);
    assert_same_bars(got, a);
    sf_bars_free(got);
    sf_bars_free(a);
    sf_bars_free(b);
}

Test(dataset, invalid_bars_import_nothing)
{
    sf_bars *good = make_bars(10, 1704067200, 60, 10.0);
    import_ok("X", "1m", good, NULL);
    sf_bars *bad = make_bars(10, 1704067200, 60, 20.0);
    bad->ts[5] = bad->ts[4]; /* not increasing */
    sf_err err = {0};
    cr_assert_eq(sf_dataset_import(g_db, "X", "1m", bad, NULL, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "bar 5") != NULL, "message: %s", err.msg);
    cr_assert_eq(version_of("X", "1m"), 1);

    const char *csv = "timestamp,open,high,low,close,volume\n"
                      "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
                      "2024-01-02T00:00:00Z,1,2,0.5,abc,10\n";
    sf_bars *parsed = NULL;
    cr_assert_neq(sf_bars_parse_csv(csv, strlen(csv), 100, &parsed, &err), SF_OK);
    cr_assert_null(parsed);
    cr_assert_eq(sf_dataset_import(g_db, "X", "1m", parsed, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(version_of("X", "1m"), 1);

    sf_bars *got = NULL;
    cr_assert_eq(sf_dataset_load(g_db, "X", "1m", 0, &got, NULL, &err), SF_OK, "%s", err.msg);
    assert_same_bars(got, good);
    sf_bars_free(got);
    sf_bars_free(good);
    sf_bars_free(bad);
}

Test(dataset, a_failure_inside_the_copy_rolls_everything_back)
{
    sf_bars *good = make_bars(50, 1704067200, 60, 10.0);
    import_ok("Y", "5m", good, NULL);
    /* The server rejects one row in the middle of the COPY, after the
     * datasets row was bumped and the old bars deleted. */
    sf_testenv_exec(g_db, "CREATE FUNCTION reject_bar() RETURNS trigger LANGUAGE plpgsql AS $$ "
                          "BEGIN IF NEW.volume = 4242 THEN RAISE EXCEPTION 'rejected bar'; END IF; "
                          "RETURN NEW; END $$");
    sf_testenv_exec(g_db, "CREATE TRIGGER reject_bar BEFORE INSERT ON bars FOR EACH ROW "
                          "EXECUTE FUNCTION reject_bar()");
    sf_bars *bad = make_bars(5000, 1704067200, 60, 30.0);
    bad->volume[3000] = 4242;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_import(g_db, "Y", "5m", bad, NULL, &err), SF_ERR_DB);
    cr_assert(strstr(err.msg, "rejected bar") != NULL, "message: %s", err.msg);
    cr_assert_eq(version_of("Y", "5m"), 1);
    sf_bars *got = NULL;
    cr_assert_eq(sf_dataset_load(g_db, "Y", "5m", 0, &got, NULL, &err), SF_OK, "%s", err.msg);
    assert_same_bars(got, good);
    sf_bars_free(got);
    sf_bars_free(good);
    sf_bars_free(bad);
}

Test(dataset, names_are_validated)
{
    struct {
        const char *sym, *tf, *msg;
    } cases[] = {
        {"", "1d", "symbol: must not be empty"},
        {"BTC USD", "1d", "symbol: character 4 is not one of A-Z a-z 0-9 . _ : / -"},
        {"A'; DROP TABLE bars; --", "1d", "symbol: character 2 is not one of A-Z a-z 0-9 . _ : / -"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "1d", "symbol: longer than 32 characters"},
        {"BTC", "", "timeframe: must not be empty"},
        {"BTC", "d1", "timeframe: must start with a digit (\"1d\", \"5m\")"},
        {"BTC", "1D", "timeframe: character 2 is not one of a-z 0-9"},
        {"BTC", "12345678901234567", "timeframe: longer than 16 characters"},
    };
    sf_bars *b = make_bars(3, 0, 60, 1.0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sf_err err = {0};
        cr_assert_eq(sf_dataset_import(g_db, cases[i].sym, cases[i].tf, b, NULL, &err), SF_ERR_INVALID, "case %zu", i);
        cr_assert_str_eq(err.msg, cases[i].msg);
    }
    sf_err err = {0};
    cr_assert_eq(sf_dataset_validate_symbol("ES_F:CME.2024/03-x", &err), SF_OK);
    cr_assert_eq(sf_dataset_validate_timeframe("15m", &err), SF_OK);
    sf_bars_free(b);
}

Test(dataset, missing_data_set_is_not_found)
{
    int64_t v = 0;
    sf_bars *got = (sf_bars *)&v;
    sf_dataset_info info;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_version(g_db, "NOPE", "1d", &v, &err), SF_ERR_NOTFOUND);
    cr_assert_str_eq(err.msg, "no data set NOPE 1d");
    cr_assert_eq(sf_dataset_get(g_db, "NOPE", "1d", &info, &err), SF_ERR_NOTFOUND);
    cr_assert_eq(sf_dataset_load(g_db, "NOPE", "1d", 0, &got, NULL, &err), SF_ERR_NOTFOUND);
    cr_assert_null(got);
    /* the failed load left no transaction open */
    cr_assert_eq(sf_testenv_query_int(g_db, "SELECT count(*) FROM datasets"), 0);
}

Test(dataset, load_over_max_bars_is_a_limit_error)
{
    sf_bars *b = make_bars(100, 1704067200, 60, 1.0);
    import_ok("Z", "1m", b, NULL);
    sf_bars *got = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "Z", "1m", 99, &got, NULL, &err), SF_ERR_LIMIT);
    cr_assert_str_eq(err.msg, "data set Z 1m has 100 bars (most 99)");
    cr_assert_null(got);
    sf_bars_free(b);
}

Test(dataset, list_is_ordered_and_bounded)
{
    sf_bars *b = make_bars(5, 1704067200, 60, 1.0);
    import_ok("MSFT", "1d", b, NULL);
    import_ok("AAPL", "1h", b, NULL);
    import_ok("AAPL", "1d", b, NULL);
    import_ok("AAPL", "1d", b, NULL);
    sf_dataset_info out[2];
    size_t n = 0;
    int more = 0;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_list(g_db, out, 2, &n, &more, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(more, 1);
    cr_assert_str_eq(out[0].symbol, "AAPL");
    cr_assert_str_eq(out[0].timeframe, "1d");
    cr_assert_eq(out[0].version, 2);
    cr_assert_str_eq(out[1].timeframe, "1h");
    cr_assert_eq(out[1].version, 1);
    cr_assert_eq(out[1].bars, 5);
    sf_dataset_info all[10];
    cr_assert_eq(sf_dataset_list(g_db, all, 10, &n, &more, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(more, 0);
    cr_assert_str_eq(all[2].symbol, "MSFT");
    sf_bars_free(b);
}

Test(dataset, slice_selects_the_inclusive_time_range)
{
    sf_bars *b = make_bars(10, 1000, 10, 1.0); /* ts 1000, 1010, ..., 1090 */
    sf_bars v;
    sf_dataset_slice(b, 1015, 1050, &v);
    cr_assert_eq(v.n, 4);
    cr_assert_eq(v.ts[0], 1020);
    cr_assert_eq(v.close, b->close + 2);
    sf_dataset_slice(b, 1010, 1010, &v);
    cr_assert_eq(v.n, 1);
    cr_assert_eq(v.ts[0], 1010);
    sf_dataset_slice(b, INT64_MIN, INT64_MAX, &v);
    cr_assert_eq(v.n, 10);
    sf_dataset_slice(b, 2000, 3000, &v);
    cr_assert_eq(v.n, 0);
    sf_dataset_slice(b, 1050, 1040, &v);
    cr_assert_eq(v.n, 0);
    sf_bars_free(b);
}

Test(dataset, a_million_bars_import_and_load, .timeout = 120)
{
    size_t n = 1000000;
    sf_bars *b = make_bars(n, 1000000000, 60, 100.0);
    double t0 = now_s();
    import_ok("BIG", "1m", b, NULL);
    double t1 = now_s();
    sf_bars *got = NULL;
    int64_t ver = 0;
    sf_err err = {0};
    cr_assert_eq(sf_dataset_load(g_db, "BIG", "1m", 0, &got, &ver, &err), SF_OK, "%s", err.msg);
    double t2 = now_s();
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    sf_bars *again = NULL;
    cr_assert_eq(sf_dataset_load(g_db, "BIG", "1m", 0, &again, NULL, &err), SF_OK, "%s", err.msg);
    double t2b = now_s();
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    fprintf(stderr, "client cpu %.3f\n", (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9);
    sf_bars_free(again);
    fprintf(stderr, "dataset: second load %.3f s\n", t2b - t2);
    t2 = now_s();
    int64_t v2 = version_of("BIG", "1m");
    double t3 = now_s();
    fprintf(stderr, "dataset: import %zu bars %.3f s, load %.3f s, version check %.6f s\n", n, t1 - t0, t2 - t1,
            t3 - t2);
    cr_assert_eq(ver, 1);
    cr_assert_eq(v2, 1);
    assert_same_bars(got, b);
    sf_bars_free(got);
    sf_bars_free(b);
}
