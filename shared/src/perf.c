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

/* Branch-free Neumaier step: the compiler turns the selects into blends. */
static inline void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    int s_big = fabs(k->s) >= fabs(x);
    double big = s_big ? k->s : x;
    double small = s_big ? x : k->s;
    k->c += (big - t) + small;
    k->s = t;
}

static double ksum_get(const ksum *k)
{
    return k->s + k->c;
}

/* ---- the curve, in blocks ---------------------------------------------------------------- */

/*
 * DESIGN: returns are computed a block at a time into a small stack array
 * (independent divisions, so they pipeline and vectorise), then summed in
 * four interleaved lanes (sum r, sum r^2, sum min(r,0)^2); each block's
 * partial sums go into Neumaier accumulators. That is blocked (pairwise-like)
 * summation: the rounding error grows with the block length, not the curve
 * length, and the order is fixed, so results are bit-identical on every run.
 * Flat bars give r = 0 exactly and add nothing. Sharpe's variance is
 * (S2 - S1^2/m) / (m-1); for per-bar returns |mean| is far below the
 * deviation, so the cancellation is harmless. The drawdown scan compares by
 * multiplication and divides only when a deeper trough is found.
 */
#define PERF_BLOCK 512
#define PERF_LANES 4

typedef struct curve_pass {
    size_t m;             /* usable returns: i = 1.. while equity[i-1] > 0 */
    ksum s1, s2, down;    /* sum r, sum r^2, sum min(r,0)^2 */
    size_t best_peak, best_trough;
    double worst;         /* deepest drawdown fraction */
} curve_pass;

/* Returns r_i for i in [from, from + len), summed into the pass. */
static void sum_block(const double *equity, size_t from, size_t len, curve_pass *p)
{
    double r[PERF_BLOCK];
    for (size_t j = 0; j < len; j++)
        r[j] = equity[from + j] / equity[from + j - 1] - 1.0;
    for (size_t j = len; j % PERF_LANES; j++)
        r[j] = 0.0;
    double a1[PERF_LANES] = {0}, a2[PERF_LANES] = {0}, a3[PERF_LANES] = {0};
    for (size_t j = 0; j < len; j += PERF_LANES) {
        for (size_t k = 0; k < PERF_LANES; k++) {
            double x = r[j + k], sq = x * x;
            a1[k] += x;
            a2[k] += sq;
            a3[k] += x < 0 ? sq : 0.0;
        }
    }
    ksum_add(&p->s1, (a1[0] + a1[1]) + (a1[2] + a1[3]));
    ksum_add(&p->s2, (a2[0] + a2[1]) + (a2[2] + a2[3]));
    ksum_add(&p->down, (a3[0] + a3[1]) + (a3[2] + a3[3]));
}

static void scan_drawdown(const double *equity, size_t n, curve_pass *p)
{
    size_t peak = 0;
    double peak_v = equity[0];
    double floor_ratio = 1.0; /* 1 - worst: below floor_ratio * peak is deeper */
    for (size_t i = 1; i < n; i++) {
        double cur = equity[i];
        if (cur > peak_v) {
            peak_v = cur;
            peak = i;
        } else if (cur < floor_ratio * peak_v && peak_v > 0) {
            double dd = (peak_v - cur) / peak_v;
            if (dd > p->worst) {
                p->worst = dd;
                floor_ratio = 1.0 - dd;
                p->best_peak = peak;
                p->best_trough = i;
            }
        }
    }
}

static void scan_curve(const double *equity, size_t n, curve_pass *p)
{
    *p = (curve_pass){0};
    while (p->m + 1 < n && equity[p->m] > 0)
        p->m++;
    for (size_t i = 1; i <= p->m; i += PERF_BLOCK) {
        size_t len = p->m + 1 - i < PERF_BLOCK ? p->m + 1 - i : PERF_BLOCK;
        sum_block(equity, i, len, p);
    }
    scan_drawdown(equity, n, p);
}

static void risk_ratios(const curve_pass *p, double ppy, sf_perf *out)
{
    out->sharpe = NAN;
    out->sortino = NAN;
    if (p->m == 0 || !(ppy > 0))
        return;
    double m = (double)p->m;
    double s1 = ksum_get(&p->s1);
    double mean = s1 / m;
    double dd = ksum_get(&p->down) / m;
    if (dd > 0)
        out->sortino = mean / sqrt(dd) * sqrt(ppy);
    if (p->m < 2)
        return;
    double ss = ksum_get(&p->s2) - s1 * mean;
    double sd = ss > 0 ? sqrt(ss / (m - 1)) : 0;
    if (sd > 0)
        out->sharpe = mean / sd * sqrt(ppy);
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
    curve_pass pass;
    scan_curve(equity, n, &pass);
    risk_ratios(&pass, periods_per_year, out);
    out->max_drawdown = pass.worst;
    out->drawdown_peak_time = ts[pass.best_peak];
    out->drawdown_trough_time = ts[pass.best_trough];
    out->exposure = (double)bars_in_position / (double)n;
}
