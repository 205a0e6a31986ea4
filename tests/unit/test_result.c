/* Tests for result JSON: it parses back with jansson, has every field, reads
 * back bit for bit, writes NaN/Inf as null and respects the buffer maximum. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/result.h"

static const char *metric_keys[] = {
    "final_equity",
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_peak_time",
    "max_drawdown_trough_time",
    "win_rate",
    "profit_factor",
    "trades",
    "exposure",
    "fees",
};

static sf_result *sample(void)
{
    sf_result *r = calloc(1, sizeof *r);
    r->perf = (sf_perf){
        .final_equity = 10123.456789012345,
        .total_return = 0.1 + 0.2,
        .cagr = NAN,
        .sharpe = 1.0 / 3.0,
        .sortino = -INFINITY,
        .max_drawdown = 0.25,
        .drawdown_peak_time = 1704067200,
        .drawdown_trough_time = 1704153600,
        .win_rate = 0.5,
        .profit_factor = INFINITY,
        .trades = 2,
        .exposure = 0.4,
        .fees = 12.5,
    };
    r->n_trades = 2;
    r->trades = calloc(2, sizeof *r->trades);
    r->trades[0] = (sf_trade){1, 1704067200, 100.5, 1704153600, 101.25, 3.0, 2.25 - 0.1, 0.1, SF_EXIT_TAKE_PROFIT};
    r->trades[1] = (sf_trade){-1, 1704240000, 99.0, 1704326400, 98.0, 1e-7, 1e-7, 0, SF_EXIT_END_OF_DATA};
    r->n_equity = 3;
    r->ts = calloc(3, sizeof *r->ts);
    r->equity = calloc(3, sizeof *r->equity);
    for (int i = 0; i < 3; i++) {
        r->ts[i] = 1704067200 + i * 86400;
        r->equity[i] = 10000 + i * 0.1;
    }
    return r;
}

static json_t *to_json(const sf_result *r, int trades, int equity)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    cr_assert_eq(sf_result_to_json(r, trades, equity, &b, NULL), SF_OK);
    json_error_t je;
    json_t *root = json_loads(sf_buf_str(&b), 0, &je);
    cr_assert_not_null(root, "not JSON (%s): %s", je.text, sf_buf_str(&b));
    sf_buf_destroy(&b);
    return root;
}

Test(result, backtest_json_parses_back_with_every_field)
{
    sf_result *r = sample();
    json_t *root = to_json(r, 1, 1);
    json_t *m = json_object_get(root, "metrics");
    cr_assert(json_is_object(m));
    for (size_t i = 0; i < sizeof metric_keys / sizeof metric_keys[0]; i++)
        cr_assert_not_null(json_object_get(m, metric_keys[i]), "metrics.%s missing", metric_keys[i]);
    cr_assert_eq(json_object_size(m), sizeof metric_keys / sizeof metric_keys[0]);
    cr_assert_eq(json_real_value(json_object_get(m, "final_equity")), r->perf.final_equity,
                 "doubles read back bit for bit");
    cr_assert_eq(json_real_value(json_object_get(m, "total_return")), 0.1 + 0.2);
    cr_assert_eq(json_real_value(json_object_get(m, "sharpe")), 1.0 / 3.0);
    cr_assert_eq(json_integer_value(json_object_get(m, "trades")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(m, "max_drawdown_peak_time")), "2024-01-01T00:00:00Z");
    cr_assert_str_eq(json_string_value(json_object_get(m, "max_drawdown_trough_time")), "2024-01-02T00:00:00Z");

    json_t *tr = json_object_get(root, "trades");
    cr_assert_eq(json_array_size(tr), 2);
    json_t *t0 = json_array_get(tr, 0), *t1 = json_array_get(tr, 1);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "entry_time")), "2024-01-01T00:00:00Z");
    cr_assert_str_eq(json_string_value(json_object_get(t0, "exit_time")), "2024-01-02T00:00:00Z");
    cr_assert_eq(json_number_value(json_object_get(t0, "entry_price")), 100.5);
    cr_assert_eq(json_number_value(json_object_get(t0, "exit_price")), 101.25);
    cr_assert_eq(json_number_value(json_object_get(t0, "qty")), 3.0);
    cr_assert_eq(json_number_value(json_object_get(t0, "pnl")), 2.25 - 0.1);
    cr_assert_eq(json_number_value(json_object_get(t0, "fees")), 0.1);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "exit_reason")), "take_profit");
    cr_assert_str_eq(json_string_value(json_object_get(t0, "side")), "long");
    cr_assert_str_eq(json_string_value(json_object_get(t1, "side")), "short");
    cr_assert_str_eq(json_string_value(json_object_get(t1, "exit_reason")), "end_of_data");
    cr_assert_eq(json_number_value(json_object_get(t1, "qty")), 1e-7);

    json_t *eq = json_object_get(root, "equity");
    cr_assert_eq(json_array_size(eq), 3);
    json_t *e2 = json_array_get(eq, 2);
    cr_assert_str_eq(json_string_value(json_object_get(e2, "time")), "2024-01-03T00:00:00Z");
    cr_assert_eq(json_number_value(json_object_get(e2, "equity")), 10000 + 2 * 0.1);
    json_decref(root);
    sf_result_free(r);
}

Test(result, nan_and_infinities_are_null)
{
    sf_result *r = sample();
    json_t *root = to_json(r, 0, 0);
    json_t *m = json_object_get(root, "metrics");
    cr_assert(json_is_null(json_object_get(m, "cagr")));
    cr_assert(json_is_null(json_object_get(m, "sortino")));
    cr_assert(json_is_null(json_object_get(m, "profit_factor")));
    json_decref(root);
    sf_result_free(r);
}

Test(result, trades_and_equity_are_empty_arrays_when_left_out)
{
    sf_result *r = sample();
    json_t *root = to_json(r, 0, 0);
    cr_assert_eq(json_object_size(root), 3);
    cr_assert(json_is_array(json_object_get(root, "trades")));
    cr_assert_eq(json_array_size(json_object_get(root, "trades")), 0);
    cr_assert_eq(json_array_size(json_object_get(root, "equity")), 0);
    json_decref(root);
    sf_result_free(r);
}

Test(result, a_full_buffer_is_a_limit_error)
{
    sf_result *r = sample();
    sf_buf b;
    sf_buf_init(&b, 100);
    sf_err err;
    cr_assert_eq(sf_result_to_json(r, 1, 1, &b, &err), SF_ERR_LIMIT);
    sf_buf_destroy(&b);
    sf_result_free(r);
}

Test(result, sweep_leaderboard_json_parses_back)
{
    sf_sweep_member mem[2] = {
        {.rank = 1, .index = 7, .params_json = (char[]){"{\"indicators.fast.period\": 5}"}},
        {.rank = 2, .index = 3, .params_json = (char[]){"{\"indicators.fast.period\": 10}"}},
    };
    mem[0].perf.sharpe = 1.5;
    mem[1].perf.sharpe = NAN;
    sf_sweep_result s = {.n_combos = 12, .rank_by = "sharpe", .n_members = 2, .members = mem};
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    cr_assert_eq(sf_sweep_to_json(&s, &b, NULL), SF_OK);
    json_t *root = json_loads(sf_buf_str(&b), 0, NULL);
    cr_assert_not_null(root, "%s", sf_buf_str(&b));
    cr_assert_eq(json_integer_value(json_object_get(root, "combinations")), 12);
    cr_assert_str_eq(json_string_value(json_object_get(root, "rank_by")), "sharpe");
    json_t *ms = json_object_get(root, "members");
    cr_assert_eq(json_array_size(ms), 2);
    json_t *m0 = json_array_get(ms, 0);
    cr_assert_eq(json_integer_value(json_object_get(m0, "rank")), 1);
    cr_assert_eq(json_integer_value(json_object_get(m0, "index")), 7);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m0, "params"), "indicators.fast.period")), 5);
    cr_assert_eq(json_real_value(json_object_get(json_object_get(m0, "metrics"), "sharpe")), 1.5);
    cr_assert(json_is_null(json_object_get(json_object_get(json_array_get(ms, 1), "metrics"), "sharpe")));
    json_decref(root);
    sf_buf_destroy(&b);
}

/* sfctl shows the farm's stored metrics as a local run's: what sf_perf_to_json
 * writes reads back bit for bit, null as NaN (so +-Inf too), absent keys as
 * NaN or 0, and a wrong type is a parse error. */
Test(result, metrics_read_back_bit_for_bit_and_null_as_nan)
{
    sf_result *r = sample();
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_err err;
    cr_assert_eq(sf_perf_to_json(&r->perf, &b, &err), SF_OK, "%s", err.msg);
    sf_perf p;
    cr_assert_eq(sf_perf_from_json(sf_buf_str(&b), b.len, &p, &err), SF_OK, "%s", err.msg);
    const double want[] = {r->perf.final_equity, r->perf.total_return, r->perf.sharpe, r->perf.max_drawdown,
                           r->perf.win_rate,     r->perf.exposure,     r->perf.fees};
    const double got[] = {p.final_equity, p.total_return, p.sharpe, p.max_drawdown, p.win_rate, p.exposure, p.fees};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(memcmp(&want[i], &got[i], sizeof got[i]) == 0, "field %zu: %.17g, want %.17g", i, got[i], want[i]);
    cr_assert(isnan(p.cagr) && isnan(p.sortino) && isnan(p.profit_factor), "null reads as NaN");
    cr_assert_eq(p.trades, 2);
    cr_assert_eq(p.drawdown_peak_time, 1704067200);
    cr_assert_eq(p.drawdown_trough_time, 1704153600);
    sf_buf_destroy(&b);
    sf_result_free(r);

    const char *partial = "{\"sharpe\": 1.5, \"extra\": \"ignored\"}";
    cr_assert_eq(sf_perf_from_json(partial, strlen(partial), &p, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(p.sharpe, 1.5);
    cr_assert(isnan(p.final_equity) && isnan(p.fees));
    cr_assert_eq(p.trades, 0);
    cr_assert_eq(p.drawdown_peak_time, 0);
    const char *bad[] = {"[1]", "{\"sharpe\": \"high\"}", "{\"max_drawdown_peak_time\": \"yesterday\"}", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(sf_perf_from_json(bad[i], strlen(bad[i]), &p, &err), SF_ERR_PARSE, "%s accepted", bad[i]);
}

/* PostgreSQL's jsonb prints 1e20 as an integer of 21 digits (beyond int64). */
Test(result, metrics_at_or_above_2_63_as_postgresql_prints_them_read_back)
{
    const char *pg = "{\"final_equity\": 100000000000000000000, \"fees\": -9223372036854775809, \"trades\": 3}";
    sf_perf p;
    sf_err err = {0};
    cr_assert_eq(sf_perf_from_json(pg, strlen(pg), &p, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(p.final_equity, 1e20);
    cr_assert_eq(p.fees, -9223372036854775809.0);
    cr_assert_eq(p.trades, 3);
}
