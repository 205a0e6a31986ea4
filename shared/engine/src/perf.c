/*
 * perf: backtest metrics from an equity curve and its trades; see sf/perf.h
 * and the README's "Metrics".
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

typedef sf_perf_ksum ksum;

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

/* ---- the curve, in one pass ---------------------------------------------------------------- */

/*
 * DESIGN: the curve is read once. A flat bar (equity unchanged: most bars of
 * most strategies, which sit out of the market part of the time) has r = 0
 * and cannot move the drawdown, so it costs one comparison: no division,
 * nothing summed. Moved bars add r, r^2 and min(r,0)^2 to plain partial sums
 * that are folded into Neumaier accumulators every PERF_BLOCK bars: blocked
 * summation, whose rounding error grows with the block, not the curve; the
 * order is fixed, so results are bit-identical on every run. Sharpe's
 * variance is (S2 - S1^2/m) / (m-1); for per-bar returns |mean| is far below
 * the deviation, so the cancellation is harmless. Returns stop at the first
 * bar whose previous equity is <= 0 (ruin); the drawdown compares by
 * multiplication and divides only when a deeper trough is found.
 */
#define PERF_BLOCK 512

typedef struct partial {
    double r, sq, down;
} partial;

static void fold(sf_perf_curve *c, partial *b)
{
    ksum_add(&c->s1, b->r);
    ksum_add(&c->s2, b->sq);
    ksum_add(&c->down, b->down);
    *b = (partial){0, 0, 0};
}

void sf_perf_curve_init(sf_perf_curve *c, size_t n)
{
    *c = (sf_perf_curve){.n = n, .fold_at = PERF_BLOCK, .floor_ratio = 1.0};
}

/* Point 0: the first peak, and no returns when it is not positive. */
static void curve_first(sf_perf_curve *c, double e0)
{
    c->m = c->n > 1 && e0 > 0 ? c->n - 1 : 0;
    c->peak_v = e0;
    c->prev = e0;
    c->next = 1;
}

/* A deeper drawdown than any so far at point i (peak_v > 0, cur below the floor). */
static void curve_trough(sf_perf_curve *c, double peak_v, double cur, size_t peak, size_t i, double *floor_ratio)
{
    double dd = (peak_v - cur) / peak_v;
    if (dd > c->worst) {
        c->worst = dd;
        *floor_ratio = 1.0 - dd;
        c->best_peak = peak;
        c->best_trough = i;
    }
}

/* The state lives in locals through the loop (registers), and goes back to
 * *c at the end; pts[j] is point start + j. */
void sf_perf_curve_feed(sf_perf_curve *c, const double *pts, size_t len)
{
    if (len > 0 && c->next == 0) {
        curve_first(c, pts[0]);
        pts++;
        len--;
    }
    size_t start = c->next, m = c->m, peak = c->peak, fold_at = c->fold_at;
    double prev = c->prev, peak_v = c->peak_v, floor_ratio = c->floor_ratio;
    partial b = {c->part[0], c->part[1], c->part[2]};
    for (size_t j = 0; j < len; j++) {
        size_t i = start + j;
        if (i >= fold_at) {
            fold(c, &b);
            fold_at += PERF_BLOCK;
        }
        double before = prev, cur = pts[j];
        prev = cur;
        if (cur == before)
            continue;
        if (i <= m) {
            double r = cur / before - 1.0, sq = r * r;
            b.r += r;
            b.sq += sq;
            b.down += r < 0 ? sq : 0.0;
        }
        if (!(cur > 0) && m > i)
            m = i; /* ruin: no return after this bar */
        if (cur > peak_v) {
            peak_v = cur;
            peak = i;
        } else if (cur < floor_ratio * peak_v && peak_v > 0) {
            curve_trough(c, peak_v, cur, peak, i, &floor_ratio);
        }
    }
    c->next = start + len;
    c->m = m;
    c->peak = peak;
    c->fold_at = fold_at;
    c->prev = prev;
    c->peak_v = peak_v;
    c->floor_ratio = floor_ratio;
    c->part[0] = b.r;
    c->part[1] = b.sq;
    c->part[2] = b.down;
}

static void risk_ratios(const sf_perf_curve *p, double ppy, sf_perf *out)
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

void sf_perf_curve_finish(const sf_perf_curve *c, const int64_t *ts, double initial, const sf_trade *trades,
                          size_t n_trades, size_t bars_in_position, double periods_per_year, sf_perf *out)
{
    trade_stats(trades, n_trades, out);
    size_t n = c->n;
    if (n == 0 || c->next < n) {
        out->final_equity = out->total_return = out->cagr = NAN;
        out->sharpe = out->sortino = out->exposure = NAN;
        out->max_drawdown = 0;
        out->drawdown_peak_time = out->drawdown_trough_time = 0;
        return;
    }
    sf_perf_curve pass = *c;
    partial b = {c->part[0], c->part[1], c->part[2]};
    fold(&pass, &b);
    out->final_equity = c->prev;
    out->total_return = initial > 0 ? out->final_equity / initial - 1.0 : NAN;
    out->cagr = cagr(ts, n, initial, out->final_equity);
    risk_ratios(&pass, periods_per_year, out);
    out->max_drawdown = pass.worst;
    out->drawdown_peak_time = ts[pass.best_peak];
    out->drawdown_trough_time = ts[pass.best_trough];
    out->exposure = (double)bars_in_position / (double)n;
}

void sf_perf_compute(const int64_t *ts, const double *equity, size_t n, double initial, const sf_trade *trades,
                     size_t n_trades, size_t bars_in_position, double periods_per_year, sf_perf *out)
{
    sf_perf_curve c;
    sf_perf_curve_init(&c, n);
    sf_perf_curve_feed(&c, equity, n);
    sf_perf_curve_finish(&c, ts, initial, trades, n_trades, bars_in_position, periods_per_year, out);
}
