/* Tests for the backtest engine: the execution rules of the README one by one
 * on small hand-built series, no look-ahead, cancellation, progress and runs
 * that give the same answer with or without an indicator cache (the cache
 * itself: test_indcache.c). Expected trades and equity are computed here by
 * hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/engine.h"
#include "sf/logic.h"
#include "sf/overfit.h"
#include "sf/perf.h"
#include "sf/time.h"

#define T0 1704067200 /* 2024-01-01T00:00:00Z */
#define DAY 86400

/* The signal channel: volume 2 = entry signal, volume 3 = exit signal. */
#define VOL_ENTRY "{\"all\": [{\"gt\": [\"volume\", 1.5]}, {\"lt\": [\"volume\", 2.5]}]}"
#define VOL_EXIT "{\"gt\": [\"volume\", 2.5]}"

typedef struct ohlcv {
    double o, h, l, c, v;
} ohlcv;

static sf_bars *make_bars(const ohlcv *rows, size_t n)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(n, &b, NULL), SF_OK);
    for (size_t i = 0; i < n; i++) {
        b->ts[i] = T0 + (int64_t)i * DAY;
        b->open[i] = rows[i].o;
        b->high[i] = rows[i].h;
        b->low[i] = rows[i].l;
        b->close[i] = rows[i].c;
        b->volume[i] = rows[i].v;
    }
    return b;
}

static sf_logic *parse(const char *json)
{
    sf_logic *lg = NULL;
    sf_logic_errors errs;
    sf_err err;
    sf_status st = sf_logic_parse(json, strlen(json), &lg, &errs, &err);
    cr_assert_eq(st, SF_OK, "logic rejected: %s", err.msg);
    return lg;
}

/* A logic on the volume channel with the given extra sections. */
static sf_logic *vol_logic(const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json, "{\"name\": \"t\", \"entry\": " VOL_ENTRY ", \"exit\": " VOL_EXIT "%s%s}",
             extra[0] ? ", " : "", extra);
    return parse(json);
}

static sf_result *run(const sf_logic *lg, const sf_bars *b)
{
    sf_result *r = NULL;
    sf_err err;
    sf_status st = sf_engine_run(lg, b, NULL, &r, &err);
    cr_assert_eq(st, SF_OK, "run failed: %s", err.msg);
    return r;
}

static void assert_close(double got, double want, const char *what)
{
    double tol = 1e-9 * fmax(1.0, fabs(want));
    cr_assert(fabs(got - want) <= tol, "%s: got %.17g, want %.17g", what, got, want);
}

static void assert_trade(const sf_result *r, size_t k, size_t entry_bar, double entry_px, size_t exit_bar,
                         double exit_px, sf_exit_reason why)
{
    cr_assert(k < r->n_trades, "trade %zu missing (have %zu)", k, r->n_trades);
    const sf_trade *t = &r->trades[k];
    cr_assert_eq(t->entry_time, T0 + (int64_t)entry_bar * DAY, "trade %zu entry bar", k);
    cr_assert_eq(t->exit_time, T0 + (int64_t)exit_bar * DAY, "trade %zu exit bar", k);
    assert_close(t->entry_price, entry_px, "entry price");
    assert_close(t->exit_price, exit_px, "exit price");
    cr_assert_eq(t->exit_reason, why, "trade %zu exit reason %d, want %d", k, (int)t->exit_reason, (int)why);
}

/* ---- fills ---- */

static const ohlcv basic[] = {
    {100, 101, 99, 100, 2},  /* entry signal */
    {102, 103, 101, 102, 1}, /* next_open entry at 102 */
    {104, 106, 103, 105, 3}, /* exit signal */
    {103, 104, 100, 101, 1}, /* next_open exit at 103 */
    {100, 101, 99, 100, 1},
};

Test(engine, next_open_fills_at_the_following_bars_open)
{
    sf_bars *b = make_bars(basic, 5);
    sf_logic *lg = vol_logic("");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 102, 3, 103, SF_EXIT_SIGNAL);
    double qty = 10000.0 / 102.0;
    assert_close(r->trades[0].qty, qty, "qty");
    assert_close(r->trades[0].pnl, qty * 1.0, "pnl");
    double want_eq[5] = {10000, qty * 102, qty * 105, qty * 103, qty * 103};
    for (int i = 0; i < 5; i++)
        assert_close(r->equity[i], want_eq[i], "equity");
    assert_close(r->perf.final_equity, qty * 103, "final equity");
    assert_close(r->perf.exposure, 2.0 / 5.0, "exposure (held at the close of bars 1 and 2)");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, fill_close_fills_at_the_signal_bars_close)
{
    sf_bars *b = make_bars(basic, 5);
    sf_logic *lg = vol_logic("\"execution\": {\"fill\": \"close\"}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 0, 100, 2, 105, SF_EXIT_SIGNAL);
    double qty = 100.0;
    /* bar 0: marked before the entry at its close */
    double want_eq[5] = {10000, qty * 102, qty * 105, qty * 105, qty * 105};
    for (int i = 0; i < 5; i++)
        assert_close(r->equity[i], want_eq[i], "equity");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, fees_are_paid_on_both_fills_and_sizing_includes_the_fee)
{
    sf_bars *b = make_bars(basic, 5);
    sf_logic *lg = vol_logic("\"execution\": {\"fee_bps\": 10}");
    sf_result *r = run(lg, b);
    double f = 0.001;
    double qty = 10000.0 / (102.0 * (1 + f));
    double fee_in = qty * 102 * f, fee_out = qty * 103 * f;
    cr_assert_eq(r->n_trades, 1);
    assert_close(r->trades[0].qty, qty, "qty");
    assert_close(r->trades[0].fees, fee_in + fee_out, "trade fees");
    assert_close(r->trades[0].pnl, qty * (103 - 102) - fee_in - fee_out, "pnl");
    double cash_after_entry = 10000 - qty * 102 - fee_in;
    assert_close(r->equity[1], cash_after_entry + qty * 102, "equity on entry bar");
    assert_close(r->perf.final_equity, cash_after_entry + qty * 103 - fee_out, "final");
    assert_close(r->perf.fees, fee_in + fee_out, "total fees");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, slippage_moves_both_fills_against_the_trade)
{
    sf_bars *b = make_bars(basic, 5);
    sf_logic *lg = vol_logic("\"execution\": {\"slippage_bps\": 50}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 102 * 1.005, 3, 103 * 0.995, SF_EXIT_SIGNAL);
    double qty = 10000.0 / (102 * 1.005);
    assert_close(r->perf.final_equity, qty * 103 * 0.995, "final");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, position_pct_spends_that_share_of_cash)
{
    sf_bars *b = make_bars(basic, 5);
    sf_logic *lg = vol_logic("\"capital\": {\"initial\": 1000, \"position_pct\": 50}");
    sf_result *r = run(lg, b);
    double qty = 500.0 / 102.0;
    assert_close(r->trades[0].qty, qty, "qty");
    assert_close(r->equity[2], 500 + qty * 105, "equity with half in cash");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- stops and targets (long: stop 95, target 110 on an entry at 100) ---- */

#define RISK "\"risk\": {\"stop_loss_pct\": 5, \"take_profit_pct\": 10}"

static sf_result *stop_case(const ohlcv *bar2, const char *extra, sf_logic **lg_out, sf_bars **b_out)
{
    ohlcv rows[4] = {
        {100, 100, 100, 100, 2}, /* entry signal */
        {100, 101, 99, 100, 1},  /* entry at 100 */
        *bar2,
        {100, 100, 100, 100, 1},
    };
    *b_out = make_bars(rows, 4);
    *lg_out = vol_logic(extra);
    return run(*lg_out, *b_out);
}

static void check_stop_at(ohlcv bar2, const char *extra, double entry_px, double exit_px, sf_exit_reason why)
{
    sf_logic *lg;
    sf_bars *b;
    sf_result *r = stop_case(&bar2, extra, &lg, &b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, entry_px, 2, exit_px, why);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

static void check_stop(ohlcv bar2, const char *extra, double exit_px, sf_exit_reason why)
{
    check_stop_at(bar2, extra, 100, exit_px, why);
}

Test(engine, open_gapping_through_the_stop_exits_at_the_open)
{
    check_stop((ohlcv){94, 96, 90, 92, 1}, RISK, 94, SF_EXIT_STOP_LOSS);
}

Test(engine, open_gapping_over_the_target_exits_at_the_open)
{
    check_stop((ohlcv){115, 120, 112, 118, 1}, RISK, 115, SF_EXIT_TAKE_PROFIT);
}

Test(engine, stop_and_target_in_one_bar_exits_at_the_stop)
{
    check_stop((ohlcv){100, 111, 94, 105, 1}, RISK, 95, SF_EXIT_STOP_LOSS);
}

Test(engine, touching_the_stop_exactly_counts)
{
    check_stop((ohlcv){100, 101, 95, 100, 1}, RISK, 95, SF_EXIT_STOP_LOSS);
}

Test(engine, touching_the_target_exactly_exits_at_the_target)
{
    check_stop((ohlcv){101, 110, 100, 105, 1}, RISK, 110, SF_EXIT_TAKE_PROFIT);
}

Test(engine, stop_exit_pays_slippage)
{
    check_stop_at((ohlcv){100, 101, 90, 92, 1},
                  "\"risk\": {\"stop_loss_pct\": 5}, \"execution\": {\"slippage_bps\": 100}",
                  /* bought at 101, stop 101 * 0.95, sold at stop * 0.99 */ 101, 101 * 0.95 * 0.99, SF_EXIT_STOP_LOSS);
}

Test(engine, next_open_entry_bar_is_checked_against_its_low_not_its_open)
{
    ohlcv rows[3] = {
        {100, 100, 100, 100, 2},
        {100, 101, 94, 99, 1}, /* entry at 100, low 94 touches the stop 95 */
        {99, 99, 99, 99, 1},
    };
    sf_bars *b = make_bars(rows, 3);
    sf_logic *lg = vol_logic(RISK);
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 100, 1, 95, SF_EXIT_STOP_LOSS);
    cr_assert_eq(r->perf.exposure, 0.0, "closed before the close of its entry bar");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, fill_close_checks_stops_from_the_next_bar_with_gaps)
{
    ohlcv rows[3] = {
        {100, 100, 80, 100, 2}, /* entry at the close 100; its own low does not count */
        {93, 96, 90, 92, 1},    /* open below the stop 95 */
        {92, 92, 92, 92, 1},
    };
    sf_bars *b = make_bars(rows, 3);
    sf_logic *lg = vol_logic(RISK ", \"execution\": {\"fill\": \"close\"}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 0, 100, 1, 93, SF_EXIT_STOP_LOSS);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- shorts: entry 100, stop 105, target 90 ---- */

static void check_short(ohlcv bar2, double exit_px, sf_exit_reason why)
{
    sf_logic *lg;
    sf_bars *b;
    sf_result *r = stop_case(&bar2, RISK ", \"side\": \"short\"", &lg, &b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 100, 2, exit_px, why);
    cr_assert_eq(r->trades[0].side, -1);
    assert_close(r->trades[0].pnl, 100.0 * (100 - exit_px), "short pnl");
    assert_close(r->perf.final_equity, 10000 + 100.0 * (100 - exit_px), "final");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, short_gap_above_the_stop_exits_at_the_open)
{
    check_short((ohlcv){106, 108, 104, 107, 1}, 106, SF_EXIT_STOP_LOSS);
}

Test(engine, short_stop_and_target_in_one_bar_exits_at_the_stop)
{
    check_short((ohlcv){100, 106, 89, 95, 1}, 105, SF_EXIT_STOP_LOSS);
}

Test(engine, short_touching_the_target_exits_at_the_target)
{
    check_short((ohlcv){99, 101, 89, 92, 1}, 90, SF_EXIT_TAKE_PROFIT);
}

Test(engine, short_gap_below_the_target_exits_at_the_open)
{
    check_short((ohlcv){85, 87, 84, 86, 1}, 85, SF_EXIT_TAKE_PROFIT);
}

Test(engine, short_equity_is_cash_minus_the_bought_back_value)
{
    ohlcv rows[4] = {
        {100, 100, 100, 100, 2},
        {100, 101, 99, 98, 1}, /* short 100 units at 100, fee 10 bps */
        {98, 99, 96, 97, 3},   /* exit signal */
        {96, 96, 96, 96, 1},   /* bought back at 96 */
    };
    sf_bars *b = make_bars(rows, 4);
    sf_logic *lg = vol_logic("\"side\": \"short\", \"execution\": {\"fee_bps\": 10}");
    sf_result *r = run(lg, b);
    double f = 0.001, qty = 10000 / (100 * (1 + f));
    double cash = 10000 + qty * 100 - qty * 100 * f;
    assert_close(r->equity[1], cash - qty * 98, "equity bar 1");
    assert_close(r->equity[2], cash - qty * 97, "equity bar 2");
    double fee_out = qty * 96 * f;
    assert_close(r->perf.final_equity, cash - qty * 96 - fee_out, "final");
    assert_close(r->trades[0].pnl, qty * (100 - 96) - qty * 100 * f - fee_out, "pnl");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- end of data, last-bar signals, re-entry, ruin ---- */

Test(engine, open_position_is_closed_at_the_last_close)
{
    ohlcv rows[3] = {{100, 100, 100, 100, 2}, {101, 102, 100, 101, 1}, {103, 104, 102, 104, 1}};
    sf_bars *b = make_bars(rows, 3);
    sf_logic *lg = vol_logic("\"execution\": {\"fee_bps\": 20}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 101, 2, 104, SF_EXIT_END_OF_DATA);
    double f = 0.002, qty = 10000 / (101 * (1 + f));
    assert_close(r->perf.final_equity, 10000 - qty * 101 * (1 + f) + qty * 104 * (1 - f),
                 "final equity includes the exit fee");
    assert_close(r->perf.exposure, 1.0 / 3.0, "flat at the last close");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, a_signal_on_the_last_bar_does_nothing)
{
    ohlcv rows[3] = {{100, 100, 100, 100, 1}, {100, 100, 100, 100, 1}, {100, 100, 100, 100, 2}};
    sf_bars *b = make_bars(rows, 3);
    const char *fills[2] = {"", "\"execution\": {\"fill\": \"close\"}"};
    for (int k = 0; k < 2; k++) {
        sf_logic *lg = vol_logic(fills[k]);
        sf_result *r = run(lg, b);
        cr_assert_eq(r->n_trades, 0, "fill variant %d traded", k);
        cr_assert_eq(r->perf.final_equity, 10000.0);
        sf_result_free(r);
        sf_logic_free(lg);
    }
    sf_bars_free(b);
}

/* ---- entry after an exit: the decision at bar i's close sees the position
 * after bar i's fills and exits ---- */

/* o, h, l, c with the high and low half a point outside the body. */
#define BAR(o, c)                                                                                                      \
    {                                                                                                                  \
        (o), ((o) > (c) ? (o) : (c)) + 0.5, ((o) < (c) ? (o) : (c)) - 0.5, (c), 1                                      \
    }

/* close crossing 100: a cross down at bar 3, the exit at bar 4's open, a
 * fresh cross up at bar 4's close, the entry at bar 5's open */
static const ohlcv whipsaw[7] = {
    BAR(99, 99),   BAR(99, 101), /* cross up */
    BAR(102, 101),               /* entry 1 at 102 */
    BAR(101, 99),                /* cross down */
    BAR(98, 103),                /* exit at 98; cross up at this close */
    BAR(104, 105),               /* entry 2 at 104 */
    BAR(106, 107),               /* end of data at 107 */
};

#define CROSS_LOGIC                                                                                                    \
    "{\"name\": \"t\", \"entry\": {\"crosses_above\": [\"close\", 100]},"                                              \
    " \"exit\": {\"crosses_below\": [\"close\", 100]}%s}"

static sf_logic *cross_logic(const char *extra)
{
    char json[1024];
    snprintf(json, sizeof json, CROSS_LOGIC, extra);
    return parse(json);
}

Test(engine, whipsaw_exit_at_the_open_and_a_cross_up_at_that_close_enters_at_the_next_open)
{
    sf_bars *b = make_bars(whipsaw, 7);
    sf_logic *lg = cross_logic("");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 2, 102, 4, 98, SF_EXIT_SIGNAL);
    assert_trade(r, 1, 5, 104, 6, 107, SF_EXIT_END_OF_DATA);
    double q1 = 10000.0 / 102, cash = q1 * 98, q2 = cash / 104;
    double want_eq[7] = {10000, 10000, q1 * 101, q1 * 99, cash, q2 * 105, q2 * 107};
    for (int i = 0; i < 7; i++)
        assert_close(r->equity[i], want_eq[i], "equity");
    assert_close(r->perf.exposure, 3.0 / 7.0, "held at the closes of bars 2, 3 and 5");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, whipsaw_short_mirrors_the_long)
{
    ohlcv rows[7];
    for (int i = 0; i < 7; i++) /* mirror around 100: cross down, up, down */
        rows[i] = (ohlcv){200 - whipsaw[i].o, 200 - whipsaw[i].l, 200 - whipsaw[i].h, 200 - whipsaw[i].c, 1};
    sf_bars *b = make_bars(rows, 7);
    sf_logic *lg = parse("{\"name\": \"t\", \"side\": \"short\","
                         " \"entry\": {\"crosses_below\": [\"close\", 100]},"
                         " \"exit\": {\"crosses_above\": [\"close\", 100]}}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 2, 98, 4, 102, SF_EXIT_SIGNAL);
    assert_trade(r, 1, 5, 96, 6, 93, SF_EXIT_END_OF_DATA);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* Long, stop 95 and target 110 on the entry at 100; bar 2 closes the trade
 * inside the bar and carries an entry signal at its close. */
static void check_exit_then_entry(ohlcv bar2, double exit_px, sf_exit_reason why)
{
    ohlcv rows[5] = {
        {100, 100, 100, 100, 2}, /* entry signal */
        {100, 101, 99, 100, 1},  /* entry 1 at 100 */
        bar2,                    /* stop or target inside; entry signal at the close */
        {97, 98, 96, 97, 1},     /* entry 2 at 97 */
        {98, 98, 98, 98, 1},     /* end of data */
    };
    sf_bars *b = make_bars(rows, 5);
    sf_logic *lg = vol_logic(RISK);
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 1, 100, 2, exit_px, why);
    assert_trade(r, 1, 3, 97, 4, 98, SF_EXIT_END_OF_DATA);
    double cash = 100 * exit_px;
    assert_close(r->equity[2], cash, "flat at the close of the exit bar");
    assert_close(r->perf.final_equity, cash / 97 * 98, "final");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, a_stop_or_target_inside_a_bar_leaves_its_close_free_to_enter)
{
    check_exit_then_entry((ohlcv){99, 99, 94, 96, 2}, 95, SF_EXIT_STOP_LOSS);
    check_exit_then_entry((ohlcv){94, 96, 90, 92, 2}, 94, SF_EXIT_STOP_LOSS); /* gap */
    check_exit_then_entry((ohlcv){101, 111, 100, 105, 2}, 110, SF_EXIT_TAKE_PROFIT);
}

Test(engine, a_level_entry_that_stays_true_decides_again_at_the_stops_close)
{
    /* entry "close > 50" holds on every bar; the stop exits inside bar 2 */
    ohlcv rows[6] = {
        {100, 100, 100, 100, 1}, {100, 101, 99, 100, 1}, /* entry 1 at 100, stop 95 */
        {96, 97, 94, 95, 1},                             /* stop 95 touched; the signal at this close enters */
        {95, 96, 94, 95, 1},                             /* entry 2 at 95, stop 90.25 */
        {97, 98, 96, 97, 1},     {98, 98, 98, 98, 1},
    };
    sf_bars *b = make_bars(rows, 6);
    sf_logic *lg = parse("{\"name\": \"t\", \"entry\": {\"gt\": [\"close\", 50]}, "
                         "\"risk\": {\"stop_loss_pct\": 5}}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 1, 100, 2, 95, SF_EXIT_STOP_LOSS);
    assert_trade(r, 1, 3, 95, 5, 98, SF_EXIT_END_OF_DATA);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, fill_close_does_not_reopen_at_the_close_of_a_signal_exit)
{
    /* entry "close > 50" holds everywhere; volume 3 is the exit */
    ohlcv rows[5] = {
        {100, 100, 100, 100, 1},                          /* entry 1 at the close 100 */
        {101, 101, 101, 101, 1}, {102, 102, 102, 102, 3}, /* exit at the close 102; the entry there does not count */
        {103, 103, 103, 103, 1},                          /* entry 2 at the close 103 */
        {104, 104, 104, 104, 1},                          /* end of data */
    };
    sf_bars *b = make_bars(rows, 5);
    sf_logic *lg = parse("{\"name\": \"t\", \"entry\": {\"gt\": [\"close\", 50]},"
                         " \"exit\": " VOL_EXIT ", \"execution\": {\"fill\": \"close\"}}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 0, 100, 2, 102, SF_EXIT_SIGNAL);
    assert_trade(r, 1, 3, 103, 4, 104, SF_EXIT_END_OF_DATA);
    assert_close(r->equity[2], 10200, "flat at the close of the exit");
    assert_close(r->perf.exposure, 3.0 / 5.0, "held at the closes of bars 0, 1 and 3, not 2");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, fill_close_enters_at_the_close_of_a_bar_whose_stop_was_hit_inside_it)
{
    ohlcv rows[4] = {
        {100, 100, 100, 100, 2}, /* entry 1 at the close 100: stop 95 */
        {100, 101, 94, 96, 2},   /* stop 95 inside; entry 2 at the close 96 */
        {97, 98, 96, 97, 1},     /* stop 91.2 untouched */
        {98, 98, 98, 98, 1},     /* end of data */
    };
    sf_bars *b = make_bars(rows, 4);
    sf_logic *lg = vol_logic(RISK ", \"execution\": {\"fill\": \"close\"}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 2);
    assert_trade(r, 0, 0, 100, 1, 95, SF_EXIT_STOP_LOSS);
    assert_trade(r, 1, 1, 96, 3, 98, SF_EXIT_END_OF_DATA);
    assert_close(r->equity[1], 9500, "entered at the close it is marked at");
    assert_close(r->perf.final_equity, 9500.0 / 96 * 98, "final");
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, equity_reaching_zero_stops_trading)
{
    ohlcv rows[6] = {
        {100, 100, 100, 100, 2}, {100, 100, 100, 100, 1}, /* short 100 units at 100: cash 20000 */
        {150, 200, 150, 200, 1},                          /* equity 20000 - 100 * 200 = 0 */
        {100, 100, 100, 100, 2},                          /* entry signals are ignored from now on */
        {100, 100, 100, 100, 2}, {100, 100, 100, 100, 1},
    };
    sf_bars *b = make_bars(rows, 6);
    sf_logic *lg = vol_logic("\"side\": \"short\"");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 1, 100, 2, 200, SF_EXIT_END_OF_DATA);
    for (int i = 2; i < 6; i++)
        cr_assert_eq(r->equity[i], 0.0, "equity[%d] = %g", i, r->equity[i]);
    cr_assert_eq(r->perf.final_equity, 0.0);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, exit_signal_only_counts_in_a_position_and_entry_only_when_flat)
{
    ohlcv rows[6] = {
        {100, 100, 100, 100, 3}, /* exit while flat: nothing */
        {100, 100, 100, 100, 2}, /* entry signal */
        {101, 101, 101, 101, 2}, /* entry 101; a second entry signal while in: nothing */
        {102, 102, 102, 102, 3}, /* exit signal */
        {103, 103, 103, 103, 1}, /* exit 103 */
        {104, 104, 104, 104, 1},
    };
    sf_bars *b = make_bars(rows, 6);
    sf_logic *lg = vol_logic("");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 2, 101, 4, 103, SF_EXIT_SIGNAL);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- conditions ---- */

Test(engine, crosses_need_both_bars_defined_and_offsets_read_earlier_bars)
{
    /* close against itself two bars back, through an sma(1) indicator */
    ohlcv rows[6] = {
        {10, 10, 10, 10, 1}, {9, 9, 9, 9, 1},     {8, 8, 8, 8, 1},
        {12, 12, 12, 12, 1}, {13, 13, 13, 13, 1}, {13, 13, 13, 13, 1},
    };
    sf_bars *b = make_bars(rows, 6);
    /* a = close, b = close two bars back (defined from bar 2). Bar 3: a = 12 >
     * b = 9 and the bar before a = 8 <= b = 10, so it crosses; bar 4 does not
     * (12 > 9 the bar before). fill=close: entry at 12 on bar 3. */
    sf_logic *lg = parse("{\"name\": \"t\", \"indicators\": {\"c\": {\"type\": \"sma\", \"period\": 1}},"
                         " \"entry\": {\"crosses_above\": [\"c\", {\"ref\": \"c\", \"offset\": 2}]},"
                         " \"execution\": {\"fill\": \"close\"}}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 3, 12, 5, 13, SF_EXIT_END_OF_DATA);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, comparisons_with_warm_up_values_are_false)
{
    ohlcv rows[5] = {
        {1, 1, 1, 1, 1}, {2, 2, 2, 2, 1}, {3, 3, 3, 3, 1}, {4, 4, 4, 4, 1}, {5, 5, 5, 5, 1},
    };
    sf_bars *b = make_bars(rows, 5);
    /* sma(3) is undefined on bars 0-1, so "close > sma" first holds on bar 2;
     * "not (sma < 0)" holds from bar 0 (not of a false comparison). */
    sf_logic *lg = parse("{\"name\": \"t\", \"indicators\": {\"s\": {\"type\": \"sma\", \"period\": 3}},"
                         " \"entry\": {\"gt\": [\"close\", \"s\"]},"
                         " \"execution\": {\"fill\": \"close\"}}");
    sf_result *r = run(lg, b);
    cr_assert_eq(r->n_trades, 1);
    assert_trade(r, 0, 2, 3, 4, 5, SF_EXIT_END_OF_DATA);
    sf_result_free(r);
    sf_logic_free(lg);
    lg = parse("{\"name\": \"t\", \"indicators\": {\"s\": {\"type\": \"sma\", \"period\": 3}},"
               " \"entry\": {\"not\": {\"lt\": [\"s\", 0]}},"
               " \"execution\": {\"fill\": \"close\"}}");
    r = run(lg, b);
    assert_trade(r, 0, 0, 1, 4, 5, SF_EXIT_END_OF_DATA);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- random series for the property tests ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static void fill_walk(sf_bars *b, size_t from, uint64_t seed)
{
    double px = from > 0 ? b->close[from - 1] : 100.0;
    for (size_t i = from; i < b->n; i++) {
        double o = px * (1 + (rng_unit(&seed) - 0.5) * 0.02);
        double c = o * (1 + (rng_unit(&seed) - 0.5) * 0.04);
        b->ts[i] = T0 + (int64_t)i * DAY;
        b->open[i] = o;
        b->close[i] = c;
        b->high[i] = fmax(o, c) * (1 + rng_unit(&seed) * 0.01);
        b->low[i] = fmin(o, c) * (1 - rng_unit(&seed) * 0.01);
        b->volume[i] = 1000 + 1000 * rng_unit(&seed);
        px = c;
    }
}

static sf_bars *walk_bars(size_t n, uint64_t seed)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(n, &b, NULL), SF_OK);
    fill_walk(b, 0, seed);
    return b;
}

static sf_bars *copy_bars(const sf_bars *src)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(src->n, &b, NULL), SF_OK);
    size_t n = src->n;
    memcpy(b->ts, src->ts, n * sizeof *b->ts);
    memcpy(b->open, src->open, n * sizeof(double));
    memcpy(b->high, src->high, n * sizeof(double));
    memcpy(b->low, src->low, n * sizeof(double));
    memcpy(b->close, src->close, n * sizeof(double));
    memcpy(b->volume, src->volume, n * sizeof(double));
    return b;
}

static const char *busy_logic(const char *fill, const char *side)
{
    static char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"busy\", \"indicators\": {"
             " \"fast\": {\"type\": \"ema\", \"period\": 5},"
             " \"slow\": {\"type\": \"sma\", \"period\": 15},"
             " \"rsi\": {\"type\": \"rsi\", \"period\": 7}},"
             " \"entry\": {\"any\": [{\"crosses_above\": [\"fast\", \"slow\"]}, {\"lt\": [\"rsi\", 30]}]},"
             " \"exit\": {\"any\": [{\"crosses_below\": [\"fast\", \"slow\"]},"
             "  {\"gt\": [\"close\", {\"ref\": \"slow\", \"offset\": 3}]}]},"
             " \"side\": \"%s\","
             " \"risk\": {\"stop_loss_pct\": 2, \"take_profit_pct\": 3},"
             " \"execution\": {\"fill\": \"%s\", \"fee_bps\": 5, \"slippage_bps\": 2}}",
             side, fill);
    return json;
}

static int trade_eq(const sf_trade *a, const sf_trade *b)
{
    return a->side == b->side && a->entry_time == b->entry_time && a->exit_time == b->exit_time &&
           a->entry_price == b->entry_price && a->exit_price == b->exit_price && a->qty == b->qty && a->pnl == b->pnl &&
           a->fees == b->fees && a->exit_reason == b->exit_reason;
}

static void check_no_lookahead(const char *fill, const char *side)
{
    const size_t n = 400;
    sf_bars *base = walk_bars(n, 42);
    sf_logic *lg = parse(busy_logic(fill, side));
    sf_result *r0 = run(lg, base);
    cr_assert_gt(r0->n_trades, 5, "the series should trade (%zu trades)", r0->n_trades);
    const size_t ks[] = {0, 1, 17, 50, 123, 200, 333, 398};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
        size_t k = ks[q];
        sf_bars *p = copy_bars(base);
        fill_walk(p, k + 1, 1000 + k); /* every field of bars k+1.. changes */
        sf_result *r1 = run(lg, p);
        for (size_t i = 0; i <= k; i++)
            cr_assert_eq(memcmp(&r0->equity[i], &r1->equity[i], sizeof(double)), 0,
                         "%s/%s: equity[%zu] changed when bars after %zu changed", fill, side, i, k);
        int64_t tk = base->ts[k];
        size_t closed0 = 0, closed1 = 0;
        while (closed0 < r0->n_trades && r0->trades[closed0].exit_time <= tk)
            closed0++;
        while (closed1 < r1->n_trades && r1->trades[closed1].exit_time <= tk)
            closed1++;
        cr_assert_eq(closed0, closed1, "%s/%s: trades closed by bar %zu differ", fill, side, k);
        for (size_t t = 0; t < closed0; t++)
            cr_assert(trade_eq(&r0->trades[t], &r1->trades[t]), "trade %zu differs (k=%zu)", t, k);
        /* a trade open at bar k was entered identically */
        int open0 = closed0 < r0->n_trades && r0->trades[closed0].entry_time <= tk;
        int open1 = closed1 < r1->n_trades && r1->trades[closed1].entry_time <= tk;
        cr_assert_eq(open0, open1);
        if (open0) {
            cr_assert_eq(r0->trades[closed0].entry_price, r1->trades[closed1].entry_price);
            cr_assert_eq(r0->trades[closed0].qty, r1->trades[closed1].qty);
        }
        sf_result_free(r1);
        sf_bars_free(p);
    }
    sf_result_free(r0);
    sf_logic_free(lg);
    sf_bars_free(base);
}

Test(engine, changing_later_bars_never_changes_earlier_decisions)
{
    check_no_lookahead("next_open", "long");
    check_no_lookahead("close", "long");
    check_no_lookahead("next_open", "short");
    check_no_lookahead("close", "short");
}

Test(engine, runs_are_deterministic_and_the_cache_changes_nothing)
{
    sf_bars *b = walk_bars(10000, 7);
    sf_logic *lg = parse(busy_logic("next_open", "long"));
    sf_result *a = run(lg, b), *c = run(lg, b);
    cr_assert_eq(memcmp(&a->perf, &c->perf, sizeof a->perf), 0);
    sf_indcache *cache = NULL;
    cr_assert_eq(sf_indcache_new(b, SF_INDCACHE_MAX_DEFAULT, &cache, NULL), SF_OK);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.cache = cache;
    for (int k = 0; k < 2; k++) {
        sf_result *r = NULL;
        cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_OK);
        cr_assert_eq(memcmp(&a->perf, &r->perf, sizeof a->perf), 0, "cached run %d differs", k);
        cr_assert_eq(memcmp(a->equity, r->equity, b->n * sizeof(double)), 0);
        sf_result_free(r);
    }
    sf_indcache_stats st;
    sf_indcache_get_stats(cache, &st);
    cr_assert_eq(st.computed, 3, "three distinct specs computed once each");
    cr_assert_eq(st.hits, 3);
    sf_indcache_free(cache);
    /* a cache too small for anything still gives the same answer */
    cr_assert_eq(sf_indcache_new(b, 1000, &cache, NULL), SF_OK);
    o.cache = cache;
    sf_result *r = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_OK);
    cr_assert_eq(memcmp(&a->perf, &r->perf, sizeof a->perf), 0);
    sf_indcache_get_stats(cache, &st);
    cr_assert_eq(st.uncached, 3);
    cr_assert_eq(st.bytes, 0);
    sf_result_free(r);
    sf_indcache_free(cache);
    sf_result_free(a);
    sf_result_free(c);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* A run's metrics are fed each chunk's equity while it is in cache, and a
 * run that keeps neither the curve nor block statistics holds one chunk of
 * it: its metrics and blocks are still those sf_perf_compute and
 * sf_blocks_compute give on its whole curve, bit for bit. */
static void check_fed_metrics(const sf_logic *lg, const sf_bars *b)
{
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.blocks = 16;
    sf_result *full = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &full, NULL), SF_OK);
    size_t held = (size_t)llround(full->perf.exposure * (double)b->n);
    sf_perf p;
    sf_blocks bl;
    sf_perf_compute(b->ts, full->equity, b->n, lg->initial_capital, full->trades, full->n_trades, held,
                    lg->periods_per_year, &p);
    sf_blocks_compute(full->equity, b->n, 16, &bl);
    cr_assert_eq(memcmp(&p, &full->perf, sizeof p), 0, "%zu bars: metrics of the whole curve", b->n);
    cr_assert_eq(memcmp(&bl, &full->blocks, sizeof bl), 0, "%zu bars: blocks of the whole curve", b->n);
    sf_indcache *cache = NULL;
    cr_assert_eq(sf_indcache_new(b, SF_INDCACHE_MAX_DEFAULT, &cache, NULL), SF_OK);
    for (int k = 0; k < 3; k++) { /* chunk-sized curve; the cache's scratch, as a sweep member; no cache */
        o.keep_equity = o.keep_trades = 0;
        o.blocks = k == 0 ? 0 : 16;
        o.cache = k == 1 ? cache : NULL;
        sf_result *r = NULL;
        cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_OK);
        cr_assert_eq(memcmp(&p, &r->perf, sizeof p), 0, "%zu bars, run %d: metrics", b->n, k);
        if (k > 0)
            cr_assert_eq(memcmp(&bl, &r->blocks, sizeof bl), 0, "%zu bars, run %d: blocks", b->n, k);
        sf_result_free(r);
    }
    sf_indcache_free(cache);
    sf_result_free(full);
}

Test(engine, metrics_fed_chunk_by_chunk_equal_those_of_the_whole_curve)
{
    const size_t sizes[] = {1, 2, SF_ENGINE_CHUNK - 1, SF_ENGINE_CHUNK, SF_ENGINE_CHUNK + 1, 3 * SF_ENGINE_CHUNK + 5};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        sf_bars *b = walk_bars(sizes[z], 3 + z);
        for (int f = 0; f < 2; f++)
            for (int side = 0; side < 2; side++) {
                sf_logic *lg = parse(busy_logic(f ? "close" : "next_open", side ? "short" : "long"));
                check_fed_metrics(lg, b);
                sf_logic_free(lg);
            }
        sf_bars_free(b);
    }
    /* a short held through a rise that ruins it part way */
    sf_bars *b = walk_bars(3 * SF_ENGINE_CHUNK, 5);
    for (size_t i = 0; i < b->n; i++) {
        double k = exp(0.002 * (double)i);
        b->open[i] *= k, b->high[i] *= k, b->low[i] *= k, b->close[i] *= k;
    }
    sf_logic *lg = parse("{\"name\": \"ruin\", \"side\": \"short\", \"entry\": {\"gt\": [\"close\", 0]},"
                         " \"execution\": {\"fill\": \"close\"}}");
    check_fed_metrics(lg, b);
    sf_result *r = run(lg, b);
    cr_assert_eq(r->perf.final_equity, 0.0, "ruined");
    cr_assert(r->perf.exposure > 0 && r->perf.exposure < 0.5, "held until the ruin only: %g", r->perf.exposure);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- threads: cancellation, progress ---- */

typedef struct cancel_ctx {
    atomic_int flag;
    atomic_int started;
    uint64_t last_done, total, calls;
    int monotone;
} cancel_ctx;

/* First progress report: wait until the other thread has raised the flag. */
static void progress_blocking(void *user, uint64_t done, uint64_t total)
{
    cancel_ctx *c = user;
    c->monotone &= done > c->last_done;
    c->last_done = done;
    c->total = total;
    c->calls++;
    atomic_store(&c->started, 1);
    while (atomic_load(&c->flag) == 0)
        sched_yield();
}

static void *canceller(void *p)
{
    cancel_ctx *c = p;
    while (atomic_load(&c->started) == 0)
        sched_yield();
    atomic_store(&c->flag, 1);
    return NULL;
}

Test(engine, cancel_from_another_thread_stops_the_run)
{
    sf_bars *b = walk_bars(100000, 9);
    sf_logic *lg = parse(busy_logic("next_open", "long"));
    cancel_ctx c = {.monotone = 1};
    atomic_init(&c.flag, 0);
    atomic_init(&c.started, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, canceller, &c), 0);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.cancel = &c.flag;
    o.progress = progress_blocking;
    o.progress_user = &c;
    sf_result *r = NULL;
    sf_err err;
    sf_status st = sf_engine_run(lg, b, &o, &r, &err);
    pthread_join(th, NULL);
    cr_assert_eq(st, SF_ERR_CANCELLED, "status %s", sf_status_name(st));
    cr_assert_null(r);
    cr_assert_eq(c.calls, 1, "stopped at the next chunk");
    cr_assert_eq(c.last_done, SF_ENGINE_CHUNK);
    sf_logic_free(lg);
    sf_bars_free(b);
}

static void progress_record(void *user, uint64_t done, uint64_t total)
{
    cancel_ctx *c = user;
    c->monotone &= done > c->last_done;
    c->last_done = done;
    c->total = total;
    c->calls++;
}

Test(engine, progress_rises_to_the_bar_count)
{
    const size_t n = 3 * SF_ENGINE_CHUNK + 17;
    sf_bars *b = walk_bars(n, 11);
    sf_logic *lg = parse(busy_logic("close", "long"));
    cancel_ctx c = {.monotone = 1};
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.progress = progress_record;
    o.progress_user = &c;
    sf_result *r = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_OK);
    cr_assert_eq(c.last_done, n);
    cr_assert_eq(c.total, n);
    cr_assert_eq(c.calls, 4);
    cr_assert(c.monotone);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, a_raised_flag_cancels_before_any_work)
{
    sf_bars *b = walk_bars(100, 1);
    sf_logic *lg = parse(busy_logic("close", "long"));
    atomic_int flag;
    atomic_init(&flag, 1);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.cancel = &flag;
    sf_result *r = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_ERR_CANCELLED);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, keep_flags_leave_out_equity_and_trades)
{
    sf_bars *b = walk_bars(500, 2);
    sf_logic *lg = parse(busy_logic("close", "long"));
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.keep_equity = 0;
    o.keep_trades = 0;
    sf_result *r = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &r, NULL), SF_OK);
    cr_assert_null(r->equity);
    cr_assert_null(r->trades);
    cr_assert_eq(r->n_equity, 0);
    cr_assert_gt(r->n_trades, 0);
    cr_assert_eq(r->perf.trades, r->n_trades);
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}

Test(engine, empty_series_is_an_error_not_a_crash)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(1, &b, NULL), SF_OK);
    b->n = 0;
    sf_logic *lg = vol_logic("");
    sf_result *r = NULL;
    sf_err err;
    cr_assert_eq(sf_engine_run(lg, b, NULL, &r, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "empty") != NULL, "%s", err.msg);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- signal kernels against a plain evaluator ---- */

typedef struct opd_case {
    const char *json; /* operand as logic JSON */
    int ind;          /* -1: close, -2: number, else indicator index (0 f, 1 s) */
    int offset;
    double number;
} opd_case;

static const opd_case opds[] = {
    {"\"f\"", 0, 0, 0},      {"\"s\"", 1, 0, 0},  {"{\"ref\": \"f\", \"offset\": 3}", 0, 3, 0},
    {"\"close\"", -1, 0, 0}, {"100", -2, 0, 100},
};
static const char *const ops[] = {"gt", "gte", "lt", "lte", "crosses_above", "crosses_below"};

static double opd_value(const opd_case *o, const sf_bars *b, double *const *ind, long i)
{
    if (o->ind == -2)
        return o->number;
    long k = i - o->offset;
    if (k < 0)
        return NAN;
    return o->ind == -1 ? b->close[k] : ind[o->ind][k];
}

static int plain_cmp(int op, double x, double y)
{
    return op == 0 ? x > y : op == 1 ? x >= y : op == 2 ? x < y : x <= y;
}

/* What the README says, written the slow way. */
static int plain_eval(int op, const opd_case *a, const opd_case *bo, const sf_bars *b, double *const *ind, long i)
{
    double x = opd_value(a, b, ind, i), y = opd_value(bo, b, ind, i);
    if (op < 4)
        return plain_cmp(op, x, y);
    if (i < 1)
        return 0;
    double px = opd_value(a, b, ind, i - 1), py = opd_value(bo, b, ind, i - 1);
    if (isnan(x) || isnan(y) || isnan(px) || isnan(py))
        return 0;
    return op == 4 ? (x > y && px <= py) : (x < y && px >= py);
}

Test(engine, signal_kernels_match_a_plain_evaluation_for_every_op_and_operand)
{
    const size_t n = 2 * SF_ENGINE_CHUNK + 101; /* chunk edges and a ragged tail */
    sf_bars *b = walk_bars(n, 77);
    double *ind[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
    sf_ind_spec sp;
    sf_ind_spec_default(SF_IND_SMA, &sp);
    sp.param[SF_IP_PERIOD] = 3;
    cr_assert_eq(sf_ind_compute(&sp, b, &ind[0], NULL), SF_OK);
    sp.param[SF_IP_PERIOD] = 7;
    cr_assert_eq(sf_ind_compute(&sp, b, &ind[1], NULL), SF_OK);
    uint8_t *en = malloc(n), *ex = malloc(n);
    size_t n_opd = sizeof opds / sizeof opds[0], checked = 0;
    for (int op = 0; op < 6; op++)
        for (size_t ia = 0; ia < n_opd; ia++)
            for (size_t ib = 0; ib < n_opd; ib++) {
                char json[1024];
                /* exit: the negation, to test "not" as well */
                snprintf(json, sizeof json,
                         "{\"name\": \"k\", \"indicators\": {\"f\": {\"type\": \"sma\", \"period\": 3},"
                         " \"s\": {\"type\": \"sma\", \"period\": 7}},"
                         " \"entry\": {\"%s\": [%s, %s]}, \"exit\": {\"not\": {\"%s\": [%s, %s]}}}",
                         ops[op], opds[ia].json, opds[ib].json, ops[op], opds[ia].json, opds[ib].json);
                sf_logic *lg = NULL;
                if (sf_logic_parse(json, strlen(json), &lg, NULL, NULL) != SF_OK)
                    continue; /* e.g. two constants may be refused by the parser */
                cr_assert_eq(sf_engine_signals(lg, b, NULL, en, ex, NULL), SF_OK);
                for (size_t i = 0; i < n; i++) {
                    int want = plain_eval(op, &opds[ia], &opds[ib], b, ind, (long)i);
                    cr_assert_eq(en[i], want, "%s(%s, %s) at bar %zu: %d, want %d", ops[op], opds[ia].json,
                                 opds[ib].json, i, en[i], want);
                    cr_assert_eq(ex[i], !want, "not %s at bar %zu", ops[op], i);
                }
                checked++;
                sf_logic_free(lg);
            }
    cr_assert_geq(checked, 6 * (n_opd * n_opd - 1), "only %zu combinations parsed", checked);
    free(en);
    free(ex);
    free(ind[0]);
    free(ind[1]);
    sf_bars_free(b);
}

Test(engine, all_and_any_combine_their_children)
{
    const size_t n = SF_ENGINE_CHUNK + 33;
    sf_bars *b = walk_bars(n, 5);
    const char *json =
        "{\"name\": \"k\", \"entry\": {\"all\": [{\"gt\": [\"close\", \"open\"]}, {\"gt\": [\"volume\", 1500]},"
        " {\"any\": [{\"lt\": [\"close\", 100]}, {\"gt\": [\"high\", 101]}]}]},"
        " \"exit\": {\"any\": [{\"lt\": [\"close\", \"open\"]}, {\"lt\": [\"volume\", 1100]}]}}";
    sf_logic *lg = parse(json);
    uint8_t *en = malloc(n), *ex = malloc(n);
    cr_assert_eq(sf_engine_signals(lg, b, NULL, en, ex, NULL), SF_OK);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        int want_en = b->close[i] > b->open[i] && b->volume[i] > 1500 && (b->close[i] < 100 || b->high[i] > 101);
        int want_ex = b->close[i] < b->open[i] || b->volume[i] < 1100;
        cr_assert_eq(en[i], want_en, "entry at %zu", i);
        cr_assert_eq(ex[i], want_ex, "exit at %zu", i);
        hits += (size_t)want_en;
    }
    cr_assert_gt(hits, 10);
    free(en);
    free(ex);
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* ---- the live decision (sf_engine_decide) ---- */

static sf_decision decide(const sf_logic *lg, const sf_bars *b)
{
    sf_decision d;
    sf_err err;
    sf_status st = sf_engine_decide(lg, b, NULL, &d, &err);
    cr_assert_eq(st, SF_OK, "decide failed: %s", err.msg);
    return d;
}

static void check_decision_of(const sf_logic *lg, const ohlcv *rows, size_t n, sf_signal want, int side,
                              sf_exit_reason why)
{
    sf_bars *b = make_bars(rows, n);
    sf_decision d = decide(lg, b);
    cr_assert_eq(d.signal, want, "signal %s, want %s", sf_signal_name(d.signal), sf_signal_name(want));
    cr_assert_eq(d.side, side, "side %d, want %d", d.side, side);
    cr_assert_eq(d.bar, n - 1);
    cr_assert_eq(d.bar_time, T0 + (int64_t)(n - 1) * DAY);
    cr_assert_eq(d.close, rows[n - 1].c);
    if (want == SF_SIGNAL_EXIT || want == SF_SIGNAL_ENTER)
        cr_assert_eq(d.exit_reason, why, "exit reason %d, want %d", (int)d.exit_reason, (int)why);
    sf_bars_free(b);
}

static void check_decision(const ohlcv *rows, size_t n, const char *extra, sf_signal want, int side, sf_exit_reason why)
{
    sf_logic *lg = vol_logic(extra);
    check_decision_of(lg, rows, n, want, side, why);
    sf_logic_free(lg);
}

Test(engine, decide_reports_enter_for_an_entry_signal_on_the_last_bar_that_a_backtest_ignores)
{
    ohlcv rows[3] = {{100, 100, 100, 100, 1}, {100, 100, 100, 100, 1}, {100, 100, 100, 101, 2}};
    check_decision(rows, 3, "", SF_SIGNAL_ENTER, 1, SF_EXIT_SIGNAL);
    check_decision(rows, 3, "\"side\": \"short\"", SF_SIGNAL_ENTER, -1, SF_EXIT_SIGNAL);
    check_decision(rows, 3, "\"execution\": {\"fill\": \"close\"}", SF_SIGNAL_ENTER, 1, SF_EXIT_SIGNAL);
}

Test(engine, decide_reports_flat_without_a_position_or_an_entry)
{
    ohlcv rows[3] = {{100, 100, 100, 100, 1}, {100, 100, 100, 100, 3}, {100, 100, 100, 100, 1}};
    check_decision(rows, 3, "", SF_SIGNAL_FLAT, 0, SF_EXIT_SIGNAL);
    ohlcv one[1] = {{100, 100, 100, 100, 1}};
    check_decision(one, 1, "", SF_SIGNAL_FLAT, 0, SF_EXIT_SIGNAL);
}

Test(engine, decide_reports_hold_for_an_open_position_without_an_exit)
{
    /* the entry from bar 0 fills at bar 1's open; an entry signal while
     * holding changes nothing */
    ohlcv rows[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {100, 101, 99, 100, 2}};
    check_decision(rows, 3, "", SF_SIGNAL_HOLD, 1, SF_EXIT_SIGNAL);
    check_decision(rows, 3, "\"side\": \"short\"", SF_SIGNAL_HOLD, -1, SF_EXIT_SIGNAL);
    /* a signal on the second-to-last bar fills on the last bar's open */
    ohlcv late[3] = {{100, 100, 100, 100, 1}, {100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}};
    check_decision(late, 3, "", SF_SIGNAL_HOLD, 1, SF_EXIT_SIGNAL);
    /* with fill: close, the entry at bar 1's close is held at bar 2 */
    check_decision(late, 3, "\"execution\": {\"fill\": \"close\"}", SF_SIGNAL_HOLD, 1, SF_EXIT_SIGNAL);
}

Test(engine, decide_reports_exit_for_the_exit_condition_at_the_last_close)
{
    ohlcv rows[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {100, 101, 99, 100, 3}};
    check_decision(rows, 3, "", SF_SIGNAL_EXIT, 1, SF_EXIT_SIGNAL);
    check_decision(rows, 3, "\"side\": \"short\"", SF_SIGNAL_EXIT, -1, SF_EXIT_SIGNAL);
}

Test(engine, decide_reports_exit_when_the_last_bar_hits_the_stop_or_the_target)
{
    ohlcv stop[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {99, 99, 94, 96, 1}};
    check_decision(stop, 3, RISK, SF_SIGNAL_EXIT, 1, SF_EXIT_STOP_LOSS);
    ohlcv target[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {101, 111, 100, 105, 1}};
    check_decision(target, 3, RISK, SF_SIGNAL_EXIT, 1, SF_EXIT_TAKE_PROFIT);
    /* no touch: hold */
    ohlcv quiet[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {100, 109, 96, 105, 1}};
    check_decision(quiet, 3, RISK, SF_SIGNAL_HOLD, 1, SF_EXIT_SIGNAL);
}

Test(engine, decide_reports_enter_after_an_exit_filled_at_the_last_open)
{
    /* exit signal at bar 1 fills at bar 2's open; flat at bar 2's close, its
     * entry signal enters (a backtest would enter at bar 3's open) */
    ohlcv rows[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 3}, {100, 101, 99, 100, 2}};
    check_decision(rows, 3, "", SF_SIGNAL_ENTER, 1, SF_EXIT_SIGNAL);
    check_decision(rows, 3, "\"side\": \"short\"", SF_SIGNAL_ENTER, -1, SF_EXIT_SIGNAL);
    /* the whipsaw: exit at bar 4's open, a cross up at its close */
    sf_logic *lg = cross_logic("");
    check_decision_of(lg, whipsaw, 5, SF_SIGNAL_ENTER, 1, SF_EXIT_SIGNAL);
    check_decision_of(lg, whipsaw, 4, SF_SIGNAL_EXIT, 1, SF_EXIT_SIGNAL); /* the cross down */
    sf_logic_free(lg);
}

Test(engine, decide_reports_enter_when_the_entry_holds_after_a_stop_inside_the_last_bar)
{
    ohlcv stop[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {99, 99, 94, 96, 2}};
    check_decision(stop, 3, RISK, SF_SIGNAL_ENTER, 1, SF_EXIT_STOP_LOSS);
    ohlcv target[3] = {{100, 100, 100, 100, 2}, {100, 101, 99, 100, 1}, {101, 111, 100, 105, 2}};
    check_decision(target, 3, RISK, SF_SIGNAL_ENTER, 1, SF_EXIT_TAKE_PROFIT);
    /* fill: close: entered at bar 0's close, stopped inside bar 2, enters at its close */
    check_decision(stop, 3, RISK ", \"execution\": {\"fill\": \"close\"}", SF_SIGNAL_ENTER, 1, SF_EXIT_STOP_LOSS);
}

Test(engine, decide_with_fill_close_reports_the_exit_not_a_reentry_at_the_same_close)
{
    /* in a position at the last close, both conditions hold: the exit */
    ohlcv rows[3] = {{100, 100, 100, 100, 1}, {101, 101, 101, 101, 1}, {102, 102, 102, 102, 3}};
    sf_logic *lg = parse("{\"name\": \"t\", \"entry\": {\"gt\": [\"close\", 50]},"
                         " \"exit\": " VOL_EXIT ", \"execution\": {\"fill\": \"close\"}}");
    check_decision_of(lg, rows, 3, SF_SIGNAL_EXIT, 1, SF_EXIT_SIGNAL);
    sf_logic_free(lg);
}

/* The decision at bar k of prefix 0..k, read off the full backtest's trades:
 * an entry decided at k's close (filled at k+1's open, or at k's close with
 * fill: close) wins; else an exit inside bar k (stop or target, or a signal
 * at its close with fill: close); else an exit ordered at k's close; else
 * holding or flat. *why: the reason of an exit inside bar k, else signal. */
static sf_signal expected_at(const sf_result *r, const sf_bars *b, size_t k, int fill_close, sf_exit_reason *why)
{
    int64_t tk = b->ts[k], tn = b->ts[k + 1];
    int exited = 0;
    *why = SF_EXIT_SIGNAL;
    for (size_t t = 0; t < r->n_trades; t++) {
        const sf_trade *tr = &r->trades[t];
        if (tr->exit_time == tk && (fill_close || tr->exit_reason != SF_EXIT_SIGNAL)) {
            exited = 1;
            *why = tr->exit_reason;
        }
    }
    for (size_t t = 0; t < r->n_trades; t++)
        if (r->trades[t].entry_time == (fill_close ? tk : tn))
            return SF_SIGNAL_ENTER;
    if (exited)
        return SF_SIGNAL_EXIT;
    for (size_t t = 0; t < r->n_trades; t++) {
        const sf_trade *tr = &r->trades[t];
        if (!fill_close && tr->exit_time == tn && tr->exit_reason == SF_EXIT_SIGNAL && tr->entry_time <= tk)
            return SF_SIGNAL_EXIT; /* ordered at k's close, filled at k+1's open */
        if (tr->entry_time <= tk && tr->exit_time > tk)
            return SF_SIGNAL_HOLD;
    }
    return SF_SIGNAL_FLAT;
}

static int exit_at(const sf_result *r, int64_t t)
{
    for (size_t k = 0; k < r->n_trades; k++)
        if (r->trades[k].exit_time == t)
            return 1;
    return 0;
}

/* Returns how many entries were decided on the bar of an exit. */
static size_t check_decide_matches_backtest(const char *fill, const char *side)
{
    const size_t n = 300;
    sf_bars *b = walk_bars(n, 77);
    sf_logic *lg = parse(busy_logic(fill, side));
    sf_result *r = run(lg, b);
    cr_assert_gt(r->n_trades, 5);
    int fill_close = strcmp(fill, "close") == 0;
    size_t seen[SF_SIGNAL__COUNT] = {0}, reentries = 0;
    for (size_t k = 1; k + 2 < n; k++) {
        sf_bars view = *b;
        view.n = k + 1;
        sf_decision d = decide(lg, &view);
        sf_exit_reason why = SF_EXIT_SIGNAL;
        sf_signal want = expected_at(r, b, k, fill_close, &why);
        cr_assert_eq(d.signal, want, "%s/%s bar %zu: %s, backtest says %s", fill, side, k, sf_signal_name(d.signal),
                     sf_signal_name(want));
        if (want == SF_SIGNAL_EXIT || want == SF_SIGNAL_ENTER)
            cr_assert_eq(d.exit_reason, why, "%s/%s bar %zu: exit reason", fill, side, k);
        reentries += want == SF_SIGNAL_ENTER && exit_at(r, b->ts[k]);
        cr_assert_eq(d.side, want == SF_SIGNAL_FLAT ? 0 : (side[0] == 's' ? -1 : 1));
        seen[want]++;
    }
    for (int s = 0; s < SF_SIGNAL__COUNT; s++)
        cr_assert_gt(seen[s], 0, "%s/%s: no %s decision in the series", fill, side, sf_signal_name((sf_signal)s));
    sf_result_free(r);
    sf_logic_free(lg);
    sf_bars_free(b);
    return reentries;
}

Test(engine, decide_at_every_bar_agrees_with_the_backtests_trades)
{
    const char *cases[4][2] = {{"next_open", "long"}, {"next_open", "short"}, {"close", "long"}, {"close", "short"}};
    for (int c = 0; c < 4; c++) {
        size_t reentries = check_decide_matches_backtest(cases[c][0], cases[c][1]);
        cr_assert_gt(reentries, 0, "%s/%s: no entry on the bar of an exit", cases[c][0], cases[c][1]);
    }
}

Test(engine, decide_checks_its_inputs_and_the_cancel_flag)
{
    ohlcv rows[2] = {{100, 100, 100, 100, 1}, {100, 100, 100, 100, 2}};
    sf_bars *b = make_bars(rows, 2);
    sf_logic *lg = vol_logic("");
    sf_decision d;
    sf_err err;
    atomic_int flag = 1;
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.cancel = &flag;
    cr_assert_eq(sf_engine_decide(lg, b, &o, &d, &err), SF_ERR_CANCELLED);
    sf_bars empty = *b;
    empty.n = 0;
    cr_assert_eq(sf_engine_decide(lg, &empty, NULL, &d, &err), SF_ERR_INVALID);
    cr_assert_str_eq(sf_signal_name(SF_SIGNAL_HOLD), "hold");
    cr_assert_str_eq(sf_signal_name((sf_signal)99), "unknown");
    sf_logic_free(lg);
    sf_bars_free(b);
}

/* 64 macd (three outputs each) over 300,000 bars: the 477 MB the issue
 * measured, known before the run. */
Test(engine, working_set_counts_every_indicator_output_before_the_run)
{
    char json[8192] = "{\"name\": \"w\", \"indicators\": {";
    size_t len = strlen(json);
    for (int i = 0; i < 64; i++)
        len += (size_t)snprintf(json + len, sizeof json - len, "%s\"m%d\": {\"type\": \"macd\"}", i ? ", " : "", i);
    snprintf(json + len, sizeof json - len, "}, \"entry\": {\"gt\": [\"m0.macd\", 0]}}");
    sf_logic *lg = parse(json);
    size_t n = 300000, ws = sf_engine_working_set(lg, n, 1);
    size_t series = (64 * 3 + 1) * sizeof(double) * n + sizeof(int64_t) * n;
    cr_assert_geq(ws, series);
    cr_assert_lt(ws, series + ((size_t)1 << 20), "%zu bytes for %zu of series", ws, series);
    cr_assert_eq(sf_engine_working_set(lg, n, 0), ws - sizeof(int64_t) * n);
    cr_assert_eq(sf_engine_working_set(lg, SIZE_MAX / 2, 1), SIZE_MAX, "overflow saturates");
    cr_assert_eq(sf_engine_working_set(NULL, n, 1), SIZE_MAX);
    sf_logic_free(lg);
}

/* An indicator's scratch counts: cci(100000) holds a tree over every bar
 * (64 bytes a bar), cci(2) its window. */
Test(engine, working_set_counts_the_largest_indicator_scratch)
{
    sf_logic *small = parse("{\"name\": \"s\", \"indicators\": {\"c\": {\"type\": \"cci\", \"period\": 2}},"
                            " \"entry\": {\"gt\": [\"c\", 0]}}");
    sf_logic *big = parse("{\"name\": \"b\", \"indicators\": {\"c\": {\"type\": \"cci\", \"period\": 100000}},"
                          " \"entry\": {\"gt\": [\"c\", 0]}}");
    size_t d = sf_engine_working_set(big, 300000, 1) - sf_engine_working_set(small, 300000, 1);
    cr_assert_geq(d, (size_t)300000 * 64);
    cr_assert_eq(sf_engine_working_set(big, SIZE_MAX / 2, 1), SIZE_MAX);
    sf_logic_free(small);
    sf_logic_free(big);
}

/* A deadline inside long indicators (eight cci over 300,000 bars: seconds
 * of work) ends the run within milliseconds of work of it (the bound allows
 * for a loaded machine), as a timeout. */
Test(engine, a_deadline_inside_a_long_indicator_ends_the_run_as_a_timeout, .timeout = 60)
{
    size_t n = 300000;
    ohlcv *rows = malloc(n * sizeof *rows);
    cr_assert_not_null(rows);
    for (size_t i = 0; i < n; i++) {
        double p = 100.0 + (double)(i % 97) * 0.25;
        rows[i] = (ohlcv){p, p + 1, p - 1, p, 10};
    }
    sf_bars *b = make_bars(rows, n);
    free(rows);
    char json[1024] = "{\"name\": \"slow\", \"indicators\": {";
    size_t len = strlen(json);
    for (int i = 0; i < 8; i++)
        len += (size_t)snprintf(json + len, sizeof json - len, "%s\"c%d\": {\"type\": \"cci\", \"period\": %d}",
                                i ? ", " : "", i, 100000 - i);
    snprintf(json + len, sizeof json - len, "}, \"entry\": {\"gt\": [\"c0\", 0]}}");
    sf_logic *lg = parse(json);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.deadline_ms = sf_time_mono_ms() + 30;
    sf_result *r = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_engine_run(lg, b, &o, &r, &err), SF_ERR_TIMEOUT, "%s", err.msg);
    long long late = (long long)(sf_time_mono_ms() - o.deadline_ms);
    cr_assert_lt(late, 300, "ended %lld ms after the deadline", late);
    cr_assert_str_eq(err.msg, "backtest ran past its deadline");
    cr_assert_null(r);
    sf_logic_free(lg);
    sf_bars_free(b);
}
