/*
 * perf: backtest metrics from an equity curve and its trades; see sf/perf.h
 * and DESIGN.md "Metrics".
 *
 * Every sum goes through a Neumaier (improved Kahan) accumulator, so the
 * result does not depend on the magnitude mix of the terms and long curves do
 * not drift. Per-bar returns stop at the first bar whose previous equity is
 * <= 0: a run that lost everything has no meaningful returns after that, and
 * dividing by (near) zero would only produce Inf or denormal noise.
 */
#include "sf/perf.h"

#include <math.h>

static const char *const EXIT_NAMES[] = {
    [SF_EXIT_SIGNAL] = "signal",
    [SF_EXIT_STOP_LOSS] = "stop_loss",
    [SF_EXIT_TAKE_PROFIT] = "take_profit",
    [SF_EXIT_END_OF_DATA] = "end_of_data",
};

#define SECS_PER_YEAR (365.2425 * 86400.0)

const char *sf_exit_reason_name(sf_exit_reason r)
{
    if ((unsigned)r >= sizeof EXIT_NAMES / sizeof EXIT_NAMES[0])
        return "unknown";
    return EXIT_NAMES[r];
}

/* ---- compensated summation ---------------------------------------------------------- */

typedef struct ksum {
    double s, c;
} ksum;

static void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    if (fabs(k->s) >= fabs(x))
        k->c += (k->s - t) + x;
    else
        k->c += (x - t) + k->s;
    k->s = t;
}

static double ksum_get(const ksum *k)
{
    return k->s + k->c;
}

/* ---- returns ---------------------------------------------------------------------------- */

/* Number of usable returns: r_i for i = 1.. while equity[i-1] > 0. */
static size_t n_returns(const double *equity, size_t n)
{
    size_t m = 0;
    while (m + 1 < n && equity[m] > 0)
        m++;
    return m;
}

static double ret(const double *equity, size_t i)
{
    return equity[i] / equity[i - 1] - 1.0;
}

static void risk_ratios(const double *equity, size_t n, double ppy, sf_perf *out)
{
    size_t m = n_returns(equity, n);
    out->sharpe = NAN;
    out->sortino = NAN;
    if (m == 0 || !(ppy > 0))
        return;
    ksum sum = {0, 0}, down = {0, 0};
    for (size_t i = 1; i <= m; i++) {
        double r = ret(equity, i);
        ksum_add(&sum, r);
        if (r < 0)
            ksum_add(&down, r * r);
    }
    double mean = ksum_get(&sum) / (double)m;
    double dd = ksum_get(&down) / (double)m;
    if (dd > 0)
        out->sortino = mean / sqrt(dd) * sqrt(ppy);
    if (m < 2)
        return;
    ksum var = {0, 0};
    for (size_t i = 1; i <= m; i++) {
        double d = ret(equity, i) - mean;
        ksum_add(&var, d * d);
    }
    double sd = sqrt(ksum_get(&var) / (double)(m - 1));
    if (sd > 0)
        out->sharpe = mean / sd * sqrt(ppy);
}

/* ---- drawdown ----------------------------------------------------------------------------- */

/* Deepest fall from a running peak; the first one wins ties. Peak and trough
 * times are ts[0] when the curve never falls. */
static void drawdown(const int64_t *ts, const double *equity, size_t n, sf_perf *out)
{
    size_t peak = 0, best_peak = 0, best_trough = 0;
    double worst = 0;
    for (size_t i = 1; i < n; i++) {
        if (equity[i] > equity[peak]) {
            peak = i;
            continue;
        }
        if (!(equity[peak] > 0))
            continue;
        double dd = (equity[peak] - equity[i]) / equity[peak];
        if (dd > worst) {
            worst = dd;
            best_peak = peak;
            best_trough = i;
        }
    }
    out->max_drawdown = worst;
    out->drawdown_peak_time = ts[best_peak];
    out->drawdown_trough_time = ts[best_trough];
}

/* ---- trades --------------------------------------------------------------------------------- */

static void trade_stats(const sf_trade *trades, size_t n_trades, sf_perf *out)
{
    ksum gain = {0, 0}, loss = {0, 0}, fees = {0, 0};
    size_t wins = 0;
    for (size_t i = 0; i < n_trades; i++) {
        double pnl = trades[i].pnl;
        if (pnl > 0) {
            wins++;
            ksum_add(&gain, pnl);
        } else if (pnl < 0) {
            ksum_add(&loss, -pnl);
        }
        ksum_add(&fees, trades[i].fees);
    }
    double g = ksum_get(&gain), l = ksum_get(&loss);
    out->trades = n_trades;
    out->fees = ksum_get(&fees);
    out->win_rate = n_trades ? (double)wins / (double)n_trades : NAN;
    if (n_trades == 0 || (g == 0 && l == 0))
        out->profit_factor = NAN;
    else
        out->profit_factor = l > 0 ? g / l : INFINITY;
}

/* ---- all together ------------------------------------------------------------------------- */

static double cagr(const int64_t *ts, size_t n, double initial, double final)
{
    double years = (double)(ts[n - 1] - ts[0]) / SECS_PER_YEAR;
    if (!(years > 0) || !(initial > 0))
        return NAN;
    if (final <= 0)
        return -1.0;
    return pow(final / initial, 1.0 / years) - 1.0;
}

void sf_perf_compute(const int64_t *ts, const double *equity, size_t n,
                     double initial, const sf_trade *trades, size_t n_trades,
                     size_t bars_in_position, double periods_per_year,
                     sf_perf *out)
{
    trade_stats(trades, n_trades, out);
    if (n == 0) {
        out->final_equity = out->total_return = out->cagr = NAN;
        out->sharpe = out->sortino = out->exposure = NAN;
        out->max_drawdown = 0;
        out->drawdown_peak_time = out->drawdown_trough_time = 0;
        return;
    }
    out->final_equity = equity[n - 1];
    out->total_return = initial > 0 ? out->final_equity / initial - 1.0 : NAN;
    out->cagr = cagr(ts, n, initial, out->final_equity);
    risk_ratios(equity, n, periods_per_year, out);
    drawdown(ts, equity, n, out);
    out->exposure = (double)bars_in_position / (double)n;
}
