/* Tests for sf_perf: metrics on hand-computed equity curves and trades. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sf/perf.h"

#define DAY 86400
#define YEAR_SECS 31556952 /* 365.2425 * 86400 */

static void close_to(double got, double want, const char *what)
{
    double tol = 1e-9 * (fabs(want) > 1 ? fabs(want) : 1);
    cr_assert(fabs(got - want) <= tol, "%s: got %.17g, want %.17g", what, got, want);
}

static void daily(int64_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ts[i] = 1704067200 + (int64_t)i * DAY;
}

Test(perf, constant_curve_has_no_return_risk_or_drawdown)
{
    int64_t ts[4];
    double eq[4] = {100, 100, 100, 100};
    daily(ts, 4);
    sf_perf p;
    sf_perf_compute(ts, eq, 4, 100, NULL, 0, 0, 252, &p);
    cr_assert_eq(p.final_equity, 100.0);
    cr_assert_eq(p.total_return, 0.0);
    cr_assert_eq(p.cagr, 0.0);
    cr_assert(isnan(p.sharpe), "zero deviation: %g", p.sharpe);
    cr_assert(isnan(p.sortino), "no negative return: %g", p.sortino);
    cr_assert_eq(p.max_drawdown, 0.0);
    cr_assert_eq(p.drawdown_peak_time, ts[0]);
    cr_assert_eq(p.drawdown_trough_time, ts[0]);
    cr_assert(isnan(p.win_rate));
    cr_assert(isnan(p.profit_factor));
    cr_assert_eq(p.trades, 0);
    cr_assert_eq(p.exposure, 0.0);
    cr_assert_eq(p.fees, 0.0);
}

Test(perf, finds_the_deepest_drawdown_with_its_times)
{
    int64_t ts[7];
    /* 120 -> 90 is -25 %; the later 130 -> 117 is only -10 %. */
    double eq[7] = {100, 120, 110, 90, 95, 130, 117};
    daily(ts, 7);
    sf_perf p;
    sf_perf_compute(ts, eq, 7, 100, NULL, 0, 3, 252, &p);
    cr_assert_eq(p.max_drawdown, 0.25);
    cr_assert_eq(p.drawdown_peak_time, ts[1]);
    cr_assert_eq(p.drawdown_trough_time, ts[3]);
    cr_assert_eq(p.final_equity, 117.0);
    close_to(p.total_return, 0.17, "total_return");
    close_to(p.exposure, 3.0 / 7.0, "exposure");
}

Test(perf, reports_the_first_of_equal_drawdowns)
{
    int64_t ts[5];
    double eq[5] = {100, 50, 100, 50, 60};
    daily(ts, 5);
    sf_perf p;
    sf_perf_compute(ts, eq, 5, 100, NULL, 0, 0, 252, &p);
    cr_assert_eq(p.max_drawdown, 0.5);
    cr_assert_eq(p.drawdown_peak_time, ts[0]);
    cr_assert_eq(p.drawdown_trough_time, ts[1]);
}

Test(perf, sharpe_and_sortino_match_a_hand_computation)
{
    /* returns +2 %, -1 %, +3 %, -2 %: mean 0.005; deviations +-0.015, +-0.025, whose
     * squares sum to 0.0017 (sample variance 0.0017 / 3); downside squares 0.0001 +
     * 0.0004 over all 4 returns = 0.000125. */
    int64_t ts[5];
    double eq[5] = {100, 100 * 1.02, 100 * 1.02 * 0.99, 100 * 1.02 * 0.99 * 1.03, 100 * 1.02 * 0.99 * 1.03 * 0.98};
    daily(ts, 5);
    sf_perf p;
    sf_perf_compute(ts, eq, 5, 100, NULL, 0, 0, 252, &p);
    close_to(p.sharpe, 0.005 / sqrt(0.0017 / 3) * sqrt(252), "sharpe");
    close_to(p.sharpe, 3.334313581357268, "sharpe (decimal)"); /* sqrt(0.0189 / 0.0017) */
    close_to(p.sortino, 0.005 / sqrt(0.000125) * sqrt(252), "sortino");
    close_to(p.sortino, sqrt(50.4), "sortino (closed form)");
}

Test(perf, counts_flat_bars_as_zero_returns)
{
    int64_t ts[3];
    double eq[3] = {100, 100, 110}; /* returns 0, 0.1: mean 0.05, sample sd 0.05 * sqrt(2) */
    daily(ts, 3);
    sf_perf p;
    sf_perf_compute(ts, eq, 3, 100, NULL, 0, 0, 252, &p);
    close_to(p.sharpe, 1 / sqrt(2) * sqrt(252), "sharpe");
    cr_assert(isnan(p.sortino));
}

Test(perf, annualises_cagr_over_calendar_years)
{
    int64_t ts[3] = {0, YEAR_SECS, 2 * YEAR_SECS};
    double eq[3] = {100, 110, 121};
    sf_perf p;
    sf_perf_compute(ts, eq, 3, 100, NULL, 0, 0, 252, &p);
    close_to(p.cagr, 0.1, "cagr over two years");
    close_to(p.total_return, 0.21, "total_return");

    int64_t half[2] = {0, YEAR_SECS / 2};
    double eq2[2] = {100, 121};
    sf_perf_compute(half, eq2, 2, 100, NULL, 0, 0, 252, &p);
    close_to(p.cagr, 1.21 * 1.21 - 1, "cagr over half a year");
}

Test(perf, single_point_and_zero_span_give_nan)
{
    int64_t ts[1] = {1704067200};
    double eq[1] = {105};
    sf_perf p;
    sf_perf_compute(ts, eq, 1, 100, NULL, 0, 1, 252, &p);
    cr_assert_eq(p.final_equity, 105.0);
    close_to(p.total_return, 0.05, "total_return");
    cr_assert(isnan(p.cagr));
    cr_assert(isnan(p.sharpe));
    cr_assert(isnan(p.sortino));
    cr_assert_eq(p.max_drawdown, 0.0);
    cr_assert_eq(p.exposure, 1.0);
}

Test(perf, stops_returns_when_equity_reaches_zero)
{
    /* returns -0.5 and -1, then equity[i-1] == 0 stops them: no Inf, no NaN. */
    int64_t ts[4];
    double eq[4] = {100, 50, 0, 0};
    daily(ts, 4);
    sf_perf p;
    sf_perf_compute(ts, eq, 4, 100, NULL, 0, 2, 252, &p);
    cr_assert_eq(p.final_equity, 0.0);
    cr_assert_eq(p.total_return, -1.0);
    cr_assert_eq(p.cagr, -1.0);
    close_to(p.sharpe, -0.75 / sqrt(0.125) * sqrt(252), "sharpe");
    close_to(p.sortino, -0.75 / sqrt(0.625) * sqrt(252), "sortino");
    cr_assert_eq(p.max_drawdown, 1.0);
    cr_assert_eq(p.drawdown_peak_time, ts[0]);
    cr_assert_eq(p.drawdown_trough_time, ts[2]);
}

Test(perf, win_rate_profit_factor_and_fees_from_three_trades)
{
    int64_t ts[2] = {0, DAY};
    double eq[2] = {100, 125};
    sf_trade t[3] = {
        {.side = 1, .pnl = 30, .fees = 1, .exit_reason = SF_EXIT_SIGNAL},
        {.side = -1, .pnl = -10, .fees = 2, .exit_reason = SF_EXIT_STOP_LOSS},
        {.side = 1, .pnl = 5, .fees = 0.5, .exit_reason = SF_EXIT_TAKE_PROFIT},
    };
    sf_perf p;
    sf_perf_compute(ts, eq, 2, 100, t, 3, 1, 252, &p);
    close_to(p.win_rate, 2.0 / 3.0, "win_rate");
    cr_assert_eq(p.profit_factor, 3.5);
    cr_assert_eq(p.fees, 3.5);
    cr_assert_eq(p.trades, 3);
    cr_assert_eq(p.exposure, 0.5);
}

Test(perf, profit_factor_is_infinite_without_losses_and_nan_without_trades)
{
    int64_t ts[2] = {0, DAY};
    double eq[2] = {100, 101};
    sf_trade win = {.side = 1, .pnl = 1, .fees = 0.1};
    sf_perf p;
    sf_perf_compute(ts, eq, 2, 100, &win, 1, 1, 252, &p);
    cr_assert(isinf(p.profit_factor) && p.profit_factor > 0);
    cr_assert_eq(p.win_rate, 1.0);

    sf_trade flat = {.side = 1, .pnl = 0, .fees = 0};
    sf_perf_compute(ts, eq, 2, 100, &flat, 1, 1, 252, &p);
    cr_assert(isnan(p.profit_factor), "0 / 0 is undefined");
    cr_assert_eq(p.win_rate, 0.0);

    sf_perf_compute(ts, eq, 2, 100, NULL, 0, 0, 252, &p);
    cr_assert(isnan(p.profit_factor));
    cr_assert(isnan(p.win_rate));
}

Test(perf, compensated_sum_of_fees_does_not_drift)
{
    /* 1 + a million times 1e-16: each naive addition rounds back to 1. */
    size_t n = 1000001;
    sf_trade *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    t[0].fees = 1.0;
    for (size_t i = 1; i < n; i++)
        t[i].fees = 1e-16;
    volatile double naive = 0;
    for (size_t i = 0; i < n; i++)
        naive += t[i].fees;
    int64_t ts[1] = {0};
    double eq[1] = {100};
    sf_perf p;
    sf_perf_compute(ts, eq, 1, 100, t, n, 0, 252, &p);
    cr_assert_eq(naive, 1.0, "naive summation should lose every small term");
    close_to(p.fees, 1.0000000001, "compensated fees");
    cr_assert_neq(p.fees, naive);
    free(t);
}

Test(perf, names_exit_reasons)
{
    cr_assert_str_eq(sf_exit_reason_name(SF_EXIT_SIGNAL), "signal");
    cr_assert_str_eq(sf_exit_reason_name(SF_EXIT_STOP_LOSS), "stop_loss");
    cr_assert_str_eq(sf_exit_reason_name(SF_EXIT_TAKE_PROFIT), "take_profit");
    cr_assert_str_eq(sf_exit_reason_name(SF_EXIT_END_OF_DATA), "end_of_data");
    cr_assert_str_eq(sf_exit_reason_name((sf_exit_reason)42), "unknown");
}

Test(perf, results_are_deterministic)
{
    enum { N = 5000 };
    int64_t *ts = malloc(N * sizeof *ts);
    double *eq = malloc(N * sizeof *eq);
    cr_assert(ts && eq);
    double e = 1000;
    for (size_t i = 0; i < N; i++) {
        ts[i] = (int64_t)i * 3600;
        e *= 1 + 0.01 * sin((double)i * 0.37);
        eq[i] = e;
    }
    sf_perf a, b;
    sf_perf_compute(ts, eq, N, 1000, NULL, 0, N / 2, 8760, &a);
    sf_perf_compute(ts, eq, N, 1000, NULL, 0, N / 2, 8760, &b);
    cr_assert_eq(a.sharpe, b.sharpe);
    cr_assert_eq(a.sortino, b.sortino);
    cr_assert(isfinite(a.sharpe) && isfinite(a.sortino) && a.max_drawdown > 0);
    free(ts);
    free(eq);
}

/* A curve fed in pieces of any size (the engine feeds chunks) gives the
 * metrics of the whole curve bit for bit: flat stretches, a drawdown, and a
 * ruin, split in pieces of 1, 7, 512 (the fold period) and 4096 points. */
Test(perf, a_curve_fed_in_pieces_gives_the_whole_curves_metrics)
{
    enum { N = 20000 };
    int64_t *ts = malloc(N * sizeof *ts);
    double *eq = malloc(N * sizeof *eq);
    cr_assert(ts && eq);
    daily(ts, N);
    for (int ruined = 0; ruined < 2; ruined++) {
        double e = 1000;
        for (size_t i = 0; i < N; i++) {
            if (i % 300 >= 100) /* in the market two bars in three */
                e *= 1 + 0.02 * sin((double)i * 0.37) + (ruined ? 0.0004 * (double)(i / 5000) : 0.0);
            eq[i] = ruined && i > 3 * N / 4 ? 0.0 : e;
        }
        sf_perf whole;
        sf_perf_compute(ts, eq, N, 1000, NULL, 0, N / 3, 252, &whole);
        const size_t pieces[] = {1, 7, 512, 4096, N};
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            sf_perf_curve c;
            sf_perf_curve_init(&c, N);
            sf_perf_curve_feed(&c, eq, 0);
            for (size_t i = 0; i < N; i += pieces[p])
                sf_perf_curve_feed(&c, eq + i, N - i < pieces[p] ? N - i : pieces[p]);
            sf_perf got;
            sf_perf_curve_finish(&c, ts, 1000, NULL, 0, N / 3, 252, &got);
            cr_assert_eq(memcmp(&got, &whole, sizeof got), 0, "pieces of %zu, ruined %d", pieces[p], ruined);
        }
    }
    free(ts);
    free(eq);
}
