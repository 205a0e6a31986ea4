/*
 * indicator tests: every type against a naive O(n * period) reference written
 * here (a different code path: windows re-summed at every bar, two-pass
 * deviations, full intermediate arrays), on a deterministic pseudo-random
 * OHLCV series; the warm-up (NaN exactly before the lookback, finite from
 * it); properties; small series checked by hand; the info table and
 * validation messages.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/indicator.h"
#include "sf/time.h"

#define N_BARS 400
#define TOL 1e-9

/* ---- the series -------------------------------------------------------- */

typedef struct series {
    int64_t ts[N_BARS];
    double open[N_BARS], high[N_BARS], low[N_BARS], close[N_BARS], volume[N_BARS];
    sf_bars bars;
} series;

static uint64_t rng_state;

static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double cents(double v)
{
    return round(v * 100.0) / 100.0;
}

/* A random walk around 100 in whole cents (so highs, lows and closes tie now
 * and then), with a flat stretch at bars 200..205. */
static void make_series(series *s, size_t n)
{
    rng_state = 42;
    double prev = 100.0;
    for (size_t i = 0; i < n; i++) {
        double o = cents(prev + (rnd() - 0.5) * 0.4);
        double c = cents(o * (1.0 + (rnd() - 0.5) * 0.04));
        double h = cents(fmax(o, c) + rnd()), l = cents(fmin(o, c) - rnd());
        if (i >= 200 && i <= 205)
            o = c = h = l = prev;
        s->ts[i] = 1700000000 + (int64_t)i * 86400;
        s->open[i] = o;
        s->high[i] = h;
        s->low[i] = l;
        s->close[i] = c;
        s->volume[i] = floor(1000.0 + rnd() * 9000.0);
        prev = c;
    }
    s->bars = (sf_bars){n, s->ts, s->open, s->high, s->low, s->close, s->volume};
}

static series S;

static void setup(void)
{
    make_series(&S, N_BARS);
}

/* ---- helpers ------------------------------------------------------------- */

static double out0[N_BARS], out1[N_BARS], out2[N_BARS];
static double *const outs[3] = {out0, out1, out2};

static void compute(const sf_ind_spec *spec, const sf_bars *bars)
{
    sf_err err = {0};
    for (size_t i = 0; i < N_BARS; i++)
        out0[i] = out1[i] = out2[i] = -12345.0; /* poison */
    sf_status st = sf_ind_compute(spec, bars, outs, &err);
    cr_assert_eq(st, SF_OK, "compute failed: %s", err.msg);
}

static sf_ind_spec spec_with(sf_ind_type type, sf_ind_param_id id, double v)
{
    sf_ind_spec s;
    sf_ind_spec_default(type, &s);
    s.param[id] = v;
    return s;
}

static int close_enough(double a, double b)
{
    return fabs(a - b) <= TOL * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static void fill_nan(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

/* got must be NaN exactly before lb, finite from lb and close to want. */
static void check_series(const char *what, const double *got, const double *want, size_t n, size_t lb)
{
    for (size_t i = 0; i < n; i++) {
        if (i < lb) {
            cr_assert(isnan(got[i]), "%s: bar %zu before lookback %zu is %.17g", what, i, lb, got[i]);
            continue;
        }
        cr_assert(isfinite(got[i]), "%s: bar %zu (lookback %zu) not finite", what, i, lb);
        cr_assert(close_enough(got[i], want[i]), "%s: bar %zu: got %.17g, want %.17g", what, i, got[i], want[i]);
    }
}

/* ---- naive references ---------------------------------------------------- */

static double window_sum(const double *x, size_t end, size_t p)
{
    double s = 0.0;
    for (size_t j = end + 1 - p; j <= end; j++)
        s += x[j];
    return s;
}

static double window_max(const double *x, size_t end, size_t p)
{
    double m = x[end];
    for (size_t j = end + 1 - p; j <= end; j++)
        m = fmax(m, x[j]);
    return m;
}

static double window_min(const double *x, size_t end, size_t p)
{
    double m = x[end];
    for (size_t j = end + 1 - p; j <= end; j++)
        m = fmin(m, x[j]);
    return m;
}

static void naive_sma(const double *x, size_t from, size_t n, size_t p, double *out)
{
    fill_nan(out, n);
    for (size_t i = from + p - 1; i < n; i++)
        out[i] = window_sum(x, i, p) / (double)p;
}

/* EMA of x defined from `from`: seeded with the mean of its first p values. */
static void naive_ema(const double *x, size_t from, size_t n, size_t p, double *out)
{
    fill_nan(out, n);
    size_t seed = from + p - 1;
    if (seed >= n)
        return;
    double k = 2.0 / (double)(p + 1);
    out[seed] = window_sum(x, seed, p) / (double)p;
    for (size_t i = seed + 1; i < n; i++)
        out[i] = out[i - 1] + k * (x[i] - out[i - 1]);
}

static void naive_wma(const double *x, size_t n, size_t p, double *out)
{
    fill_nan(out, n);
    for (size_t i = p - 1; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < p; j++)
            s += (double)(j + 1) * x[i + 1 - p + j];
        out[i] = s / ((double)p * (double)(p + 1) / 2.0);
    }
}

static void naive_rsi(const double *x, size_t n, size_t p, double *out)
{
    fill_nan(out, n);
    double ag = 0.0, al = 0.0;
    for (size_t i = 1; i < n; i++) {
        double g = fmax(x[i] - x[i - 1], 0.0), l = fmax(x[i - 1] - x[i], 0.0);
        if (i <= p) {
            ag += g / (double)p;
            al += l / (double)p;
        } else {
            ag = (ag * (double)(p - 1) + g) / (double)p;
            al = (al * (double)(p - 1) + l) / (double)p;
        }
        if (i >= p)
            out[i] = al == 0.0 ? (ag == 0.0 ? 0.0 : 100.0) : 100.0 - 100.0 / (1.0 + ag / al);
    }
}

static void naive_atr(const sf_bars *b, size_t p, double *out)
{
    double tr[N_BARS];
    fill_nan(out, b->n);
    for (size_t i = 1; i < b->n; i++)
        tr[i] = fmax(b->high[i], b->close[i - 1]) - fmin(b->low[i], b->close[i - 1]);
    out[p] = window_sum(tr, p, p) / (double)p;
    for (size_t i = p + 1; i < b->n; i++)
        out[i] = (out[i - 1] * (double)(p - 1) + tr[i]) / (double)p;
}

/* Wilder: the first smoothed value (bar p-1) is the sum of bars 1..p-1, as
 * TA-Lib seeds it, then S[i] = S[i-1] - S[i-1]/p + v[i]. */
static void naive_adx(const sf_bars *b, size_t p, double *out)
{
    size_t n = b->n;
    double pdm[N_BARS] = {0}, mdm[N_BARS] = {0}, tr[N_BARS] = {0};
    double sp[N_BARS], sm[N_BARS], st[N_BARS], dx[N_BARS];
    fill_nan(out, n);
    for (size_t i = 1; i < n; i++) {
        double up = b->high[i] - b->high[i - 1], down = b->low[i - 1] - b->low[i];
        pdm[i] = (up > down && up > 0) ? up : 0.0;
        mdm[i] = (down > up && down > 0) ? down : 0.0;
        tr[i] = fmax(b->high[i], b->close[i - 1]) - fmin(b->low[i], b->close[i - 1]);
    }
    sp[p - 1] = window_sum(pdm, p - 1, p - 1);
    sm[p - 1] = window_sum(mdm, p - 1, p - 1);
    st[p - 1] = window_sum(tr, p - 1, p - 1);
    for (size_t i = p; i < n; i++) {
        sp[i] = sp[i - 1] - sp[i - 1] / (double)p + pdm[i];
        sm[i] = sm[i - 1] - sm[i - 1] / (double)p + mdm[i];
        st[i] = st[i - 1] - st[i - 1] / (double)p + tr[i];
        double pdi = 100.0 * sp[i] / st[i], mdi = 100.0 * sm[i] / st[i];
        dx[i] = 100.0 * fabs(pdi - mdi) / (pdi + mdi);
    }
    out[2 * p - 1] = window_sum(dx, 2 * p - 1, p) / (double)p;
    for (size_t i = 2 * p; i < n; i++)
        out[i] = (out[i - 1] * (double)(p - 1) + dx[i]) / (double)p;
}

static void naive_cci(const sf_bars *b, size_t p, double *out)
{
    double tp[N_BARS];
    fill_nan(out, b->n);
    for (size_t i = 0; i < b->n; i++)
        tp[i] = (b->high[i] + b->low[i] + b->close[i]) / 3.0;
    for (size_t i = p - 1; i < b->n; i++) {
        double mean = window_sum(tp, i, p) / (double)p, md = 0.0;
        for (size_t j = i + 1 - p; j <= i; j++)
            md += fabs(tp[j] - mean) / (double)p;
        out[i] = md == 0.0 ? 0.0 : (tp[i] - mean) / (0.015 * md);
    }
}

static void naive_stoch(const sf_bars *b, size_t k, size_t ks, size_t d, double *slow_k, double *slow_d)
{
    double fast[N_BARS];
    fill_nan(fast, b->n);
    for (size_t i = k - 1; i < b->n; i++) {
        double hh = window_max(b->high, i, k), ll = window_min(b->low, i, k);
        fast[i] = hh == ll ? 0.0 : 100.0 * (b->close[i] - ll) / (hh - ll);
    }
    naive_sma(fast, k - 1, b->n, ks, slow_k);
    naive_sma(slow_k, k - 1 + ks - 1, b->n, d, slow_d);
}

static void naive_willr(const sf_bars *b, size_t p, double *out)
{
    fill_nan(out, b->n);
    for (size_t i = p - 1; i < b->n; i++) {
        double hh = window_max(b->high, i, p), ll = window_min(b->low, i, p);
        out[i] = hh == ll ? 0.0 : -100.0 * (hh - b->close[i]) / (hh - ll);
    }
}

static void naive_mfi(const sf_bars *b, size_t p, double *out)
{
    double tp[N_BARS];
    fill_nan(out, b->n);
    for (size_t i = 0; i < b->n; i++)
        tp[i] = (b->high[i] + b->low[i] + b->close[i]) / 3.0;
    for (size_t i = p; i < b->n; i++) {
        double pos = 0.0, neg = 0.0;
        for (size_t j = i + 1 - p; j <= i; j++) {
            if (tp[j] > tp[j - 1])
                pos += tp[j] * b->volume[j];
            if (tp[j] < tp[j - 1])
                neg += tp[j] * b->volume[j];
        }
        out[i] = pos + neg < 1.0 ? 0.0 : 100.0 * pos / (pos + neg);
    }
}

/* Wilder's SAR with TA-Lib's start: direction from bar 1's directional
 * movement, first SAR = bar 0's extreme, first EP = bar 1's extreme. */
static void naive_psar(const sf_bars *b, double accel, double max_accel, double *out)
{
    const double *hi = b->high, *lo = b->low;
    fill_nan(out, b->n);
    double down = lo[0] - lo[1], up = hi[1] - hi[0];
    int is_long = !(down > 0 && down > up);
    double sar = is_long ? lo[0] : hi[0], ep = is_long ? hi[1] : lo[1], af = accel;
    for (size_t i = 1; i < b->n; i++) {
        size_t y = i == 1 ? 1 : i - 1; /* yesterday; bar 1 has none in TA-Lib */
        if (is_long && lo[i] <= sar) {
            is_long = 0;
            out[i] = fmax(fmax(ep, hi[y]), hi[i]);
            af = accel;
            ep = lo[i];
            sar = fmax(fmax(out[i] + af * (ep - out[i]), hi[y]), hi[i]);
        } else if (!is_long && hi[i] >= sar) {
            is_long = 1;
            out[i] = fmin(fmin(ep, lo[y]), lo[i]);
            af = accel;
            ep = hi[i];
            sar = fmin(fmin(out[i] + af * (ep - out[i]), lo[y]), lo[i]);
        } else {
            out[i] = sar;
            if (is_long ? hi[i] > ep : lo[i] < ep) {
                ep = is_long ? hi[i] : lo[i];
                af = fmin(af + accel, max_accel);
            }
            sar += af * (ep - sar);
            sar = is_long ? fmin(fmin(sar, lo[y]), lo[i]) : fmax(fmax(sar, hi[y]), hi[i]);
        }
    }
}

/* ---- against the references ---------------------------------------------- */

TestSuite(indicator_values, .init = setup);

Test(indicator_values, sma_matches_window_mean)
{
    static const size_t periods[] = {1, 2, 5, 20, 50};
    double want[N_BARS];
    for (size_t t = 0; t < 5; t++) {
        sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_sma(S.close, 0, N_BARS, periods[t], want);
        check_series("sma", out0, want, N_BARS, periods[t] - 1);
        cr_assert_eq(sf_ind_lookback(&s), periods[t] - 1);
    }
}

Test(indicator_values, sma_of_open_uses_the_source)
{
    double want[N_BARS];
    sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, 7);
    s.source = SF_FIELD_OPEN;
    compute(&s, &S.bars);
    naive_sma(S.open, 0, N_BARS, 7, want);
    check_series("sma(open)", out0, want, N_BARS, 6);
}

Test(indicator_values, ema_is_seeded_with_the_sma)
{
    static const size_t periods[] = {1, 3, 10, 30};
    double want[N_BARS];
    for (size_t t = 0; t < 4; t++) {
        sf_ind_spec s = spec_with(SF_IND_EMA, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_ema(S.close, 0, N_BARS, periods[t], want);
        check_series("ema", out0, want, N_BARS, periods[t] - 1);
    }
}

Test(indicator_values, wma_weights_one_to_period)
{
    static const size_t periods[] = {1, 2, 9, 30};
    double want[N_BARS];
    for (size_t t = 0; t < 4; t++) {
        sf_ind_spec s = spec_with(SF_IND_WMA, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_wma(S.close, N_BARS, periods[t], want);
        check_series("wma", out0, want, N_BARS, periods[t] - 1);
    }
}

Test(indicator_values, rsi_matches_wilder_averages)
{
    static const size_t periods[] = {2, 14, 30};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_RSI, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_rsi(S.close, N_BARS, periods[t], want);
        check_series("rsi", out0, want, N_BARS, periods[t]);
    }
}

static void check_macd(size_t fast, size_t slow, size_t sig)
{
    double fe[N_BARS], se[N_BARS], m[N_BARS], g[N_BARS], h[N_BARS];
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_MACD, &s);
    s.param[SF_IP_FAST] = (double)fast;
    s.param[SF_IP_SLOW] = (double)slow;
    s.param[SF_IP_SIGNAL] = (double)sig;
    compute(&s, &S.bars);
    if (slow < fast) {
        size_t t = fast;
        fast = slow;
        slow = t;
    }
    naive_ema(S.close, 0, N_BARS, slow, se);
    naive_ema(S.close, slow - fast, N_BARS, fast, fe); /* TA-Lib's late seed */
    for (size_t i = 0; i < N_BARS; i++)
        m[i] = fe[i] - se[i];
    naive_ema(m, slow - 1, N_BARS, sig, g);
    for (size_t i = 0; i < N_BARS; i++)
        h[i] = m[i] - g[i];
    size_t lb = slow - 1 + sig - 1;
    cr_assert_eq(sf_ind_lookback(&s), lb);
    check_series("macd.macd", out0, m, N_BARS, lb);
    check_series("macd.signal", out1, g, N_BARS, lb);
    check_series("macd.hist", out2, h, N_BARS, lb);
}

Test(indicator_values, macd_seeds_fast_ema_at_the_slow_start)
{
    check_macd(12, 26, 9);
    check_macd(3, 10, 1);
    check_macd(5, 5, 4);
}

Test(indicator_values, macd_swaps_fast_and_slow_when_reversed)
{
    check_macd(26, 12, 9);
}

Test(indicator_values, bbands_use_population_deviation)
{
    static const double devs[] = {2.0, 1.0, 0.5};
    static const size_t periods[] = {20, 2, 5};
    double lo[N_BARS], mid[N_BARS], up[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        size_t p = periods[t];
        sf_ind_spec s = spec_with(SF_IND_BBANDS, SF_IP_PERIOD, (double)p);
        s.param[SF_IP_STDDEV] = devs[t];
        compute(&s, &S.bars);
        naive_sma(S.close, 0, N_BARS, p, mid);
        fill_nan(lo, N_BARS);
        fill_nan(up, N_BARS);
        for (size_t i = p - 1; i < N_BARS; i++) {
            double var = 0.0;
            for (size_t j = i + 1 - p; j <= i; j++)
                var += (S.close[j] - mid[i]) * (S.close[j] - mid[i]) / (double)p;
            up[i] = mid[i] + devs[t] * sqrt(var);
            lo[i] = mid[i] - devs[t] * sqrt(var);
        }
        check_series("bbands.lower", out0, lo, N_BARS, p - 1);
        check_series("bbands.middle", out1, mid, N_BARS, p - 1);
        check_series("bbands.upper", out2, up, N_BARS, p - 1);
    }
}

Test(indicator_values, atr_is_wilder_smoothed_true_range)
{
    static const size_t periods[] = {1, 5, 14};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_ATR, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_atr(&S.bars, periods[t], want);
        check_series("atr", out0, want, N_BARS, periods[t]);
    }
}

Test(indicator_values, adx_matches_wilder_with_talib_seeding)
{
    static const size_t periods[] = {2, 14, 25};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_ADX, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_adx(&S.bars, periods[t], want);
        check_series("adx", out0, want, N_BARS, 2 * periods[t] - 1);
    }
}

Test(indicator_values, cci_uses_mean_deviation)
{
    static const size_t periods[] = {2, 20, 40};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_CCI, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_cci(&S.bars, periods[t], want);
        check_series("cci", out0, want, N_BARS, periods[t] - 1);
    }
}

Test(indicator_values, stoch_smooths_fast_k_twice)
{
    static const size_t ks[][3] = {{14, 3, 3}, {5, 1, 1}, {1, 2, 4}, {20, 5, 2}};
    double k[N_BARS], d[N_BARS];
    for (size_t t = 0; t < 4; t++) {
        sf_ind_spec s;
        sf_ind_spec_default(SF_IND_STOCH, &s);
        s.param[SF_IP_K] = (double)ks[t][0];
        s.param[SF_IP_K_SMOOTH] = (double)ks[t][1];
        s.param[SF_IP_D] = (double)ks[t][2];
        compute(&s, &S.bars);
        naive_stoch(&S.bars, ks[t][0], ks[t][1], ks[t][2], k, d);
        size_t lb = ks[t][0] + ks[t][1] + ks[t][2] - 3;
        cr_assert_eq(sf_ind_lookback(&s), lb);
        check_series("stoch.k", out0, k, N_BARS, lb);
        check_series("stoch.d", out1, d, N_BARS, lb);
    }
}

Test(indicator_values, roc_is_percent_change)
{
    static const size_t periods[] = {1, 10, 50};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        size_t p = periods[t];
        sf_ind_spec s = spec_with(SF_IND_ROC, SF_IP_PERIOD, (double)p);
        compute(&s, &S.bars);
        fill_nan(want, N_BARS);
        for (size_t i = p; i < N_BARS; i++)
            want[i] = (S.close[i] - S.close[i - p]) / S.close[i - p] * 100.0;
        check_series("roc", out0, want, N_BARS, p);
    }
}

Test(indicator_values, highest_and_lowest_scan_their_window)
{
    static const size_t periods[] = {1, 2, 10, 60};
    double want[N_BARS];
    for (size_t t = 0; t < 4; t++) {
        size_t p = periods[t];
        sf_ind_spec s = spec_with(SF_IND_HIGHEST, SF_IP_PERIOD, (double)p);
        compute(&s, &S.bars);
        fill_nan(want, N_BARS);
        for (size_t i = p - 1; i < N_BARS; i++)
            want[i] = window_max(S.high, i, p);
        check_series("highest", out0, want, N_BARS, p - 1);
        s = spec_with(SF_IND_LOWEST, SF_IP_PERIOD, (double)p);
        compute(&s, &S.bars);
        for (size_t i = p - 1; i < N_BARS; i++)
            want[i] = window_min(S.low, i, p);
        check_series("lowest", out0, want, N_BARS, p - 1);
    }
}

Test(indicator_values, obv_accumulates_signed_volume)
{
    double want[N_BARS];
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_OBV, &s);
    compute(&s, &S.bars);
    want[0] = S.volume[0];
    for (size_t i = 1; i < N_BARS; i++) {
        double sign = S.close[i] > S.close[i - 1] ? 1.0 : S.close[i] < S.close[i - 1] ? -1.0 : 0.0;
        want[i] = want[i - 1] + sign * S.volume[i];
    }
    check_series("obv", out0, want, N_BARS, 0);
}

Test(indicator_values, dema_and_tema_compose_emas)
{
    static const size_t periods[] = {2, 5, 30};
    double e1[N_BARS], e2[N_BARS], e3[N_BARS], want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        size_t p = periods[t];
        naive_ema(S.close, 0, N_BARS, p, e1);
        naive_ema(e1, p - 1, N_BARS, p, e2);
        naive_ema(e2, 2 * (p - 1), N_BARS, p, e3);
        sf_ind_spec s = spec_with(SF_IND_DEMA, SF_IP_PERIOD, (double)p);
        compute(&s, &S.bars);
        for (size_t i = 0; i < N_BARS; i++)
            want[i] = 2.0 * e1[i] - e2[i];
        check_series("dema", out0, want, N_BARS, 2 * (p - 1));
        s = spec_with(SF_IND_TEMA, SF_IP_PERIOD, (double)p);
        compute(&s, &S.bars);
        for (size_t i = 0; i < N_BARS; i++)
            want[i] = 3.0 * e1[i] - 3.0 * e2[i] + e3[i];
        check_series("tema", out0, want, N_BARS, 3 * (p - 1));
    }
}

Test(indicator_values, willr_is_distance_from_the_high)
{
    static const size_t periods[] = {2, 14, 50};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_WILLR, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_willr(&S.bars, periods[t], want);
        check_series("willr", out0, want, N_BARS, periods[t] - 1);
    }
}

Test(indicator_values, mfi_splits_money_flow_by_typical_price_direction)
{
    static const size_t periods[] = {2, 14, 40};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s = spec_with(SF_IND_MFI, SF_IP_PERIOD, (double)periods[t]);
        compute(&s, &S.bars);
        naive_mfi(&S.bars, periods[t], want);
        check_series("mfi", out0, want, N_BARS, periods[t]);
    }
}

Test(indicator_values, psar_follows_wilder)
{
    static const double acc[][2] = {{0.02, 0.2}, {0.05, 0.1}, {0.3, 0.2}};
    double want[N_BARS];
    for (size_t t = 0; t < 3; t++) {
        sf_ind_spec s;
        sf_ind_spec_default(SF_IND_PSAR, &s);
        s.param[SF_IP_ACCEL] = acc[t][0];
        s.param[SF_IP_MAX_ACCEL] = acc[t][1];
        compute(&s, &S.bars);
        naive_psar(&S.bars, fmin(acc[t][0], acc[t][1]), acc[t][1], want);
        check_series("psar", out0, want, N_BARS, 1);
    }
}

/* ---- properties ------------------------------------------------------------ */

TestSuite(indicator_properties, .init = setup);

Test(indicator_properties, sma_of_a_constant_is_the_constant)
{
    for (size_t i = 0; i < N_BARS; i++)
        S.close[i] = 42.5;
    sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, 13);
    compute(&s, &S.bars);
    for (size_t i = 12; i < N_BARS; i++)
        cr_assert_float_eq(out0[i], 42.5, 1e-12, "bar %zu: %.17g", i, out0[i]);
}

Test(indicator_properties, rsi_stays_within_0_and_100)
{
    sf_ind_spec s = spec_with(SF_IND_RSI, SF_IP_PERIOD, 3);
    compute(&s, &S.bars);
    for (size_t i = 3; i < N_BARS; i++)
        cr_assert(out0[i] >= 0.0 && out0[i] <= 100.0, "bar %zu: %g", i, out0[i]);
}

Test(indicator_properties, rsi_of_a_rising_series_is_100)
{
    for (size_t i = 0; i < N_BARS; i++)
        S.close[i] = 10.0 + (double)i * 0.5;
    sf_ind_spec s = spec_with(SF_IND_RSI, SF_IP_PERIOD, 14);
    compute(&s, &S.bars);
    for (size_t i = 14; i < N_BARS; i++)
        cr_assert_eq(out0[i], 100.0, "bar %zu: %.17g", i, out0[i]);
}

Test(indicator_properties, bollinger_middle_is_sma_and_bands_are_symmetric)
{
    double sma[N_BARS];
    sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, 20);
    compute(&s, &S.bars);
    memcpy(sma, out0, sizeof sma);
    s = spec_with(SF_IND_BBANDS, SF_IP_PERIOD, 20);
    compute(&s, &S.bars);
    for (size_t i = 19; i < N_BARS; i++) {
        cr_assert_eq(out1[i], sma[i], "bar %zu", i);
        cr_assert(close_enough(out2[i] - out1[i], out1[i] - out0[i]), "bar %zu", i);
        cr_assert(out2[i] > out1[i] || (i >= 200 && i <= 224), "bar %zu", i);
    }
}

Test(indicator_properties, stoch_and_willr_stay_in_range)
{
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_STOCH, &s);
    compute(&s, &S.bars);
    for (size_t i = sf_ind_lookback(&s); i < N_BARS; i++) {
        cr_assert(out0[i] >= 0.0 && out0[i] <= 100.0, "k bar %zu: %g", i, out0[i]);
        cr_assert(out1[i] >= 0.0 && out1[i] <= 100.0, "d bar %zu: %g", i, out1[i]);
    }
    sf_ind_spec_default(SF_IND_WILLR, &s);
    compute(&s, &S.bars);
    for (size_t i = 13; i < N_BARS; i++)
        cr_assert(out0[i] >= -100.0 && out0[i] <= 0.0, "bar %zu: %g", i, out0[i]);
}

Test(indicator_properties, highest_bounds_source_bounds_lowest)
{
    double hi[N_BARS];
    sf_ind_spec s = spec_with(SF_IND_HIGHEST, SF_IP_PERIOD, 10);
    s.source = SF_FIELD_CLOSE;
    compute(&s, &S.bars);
    memcpy(hi, out0, sizeof hi);
    s = spec_with(SF_IND_LOWEST, SF_IP_PERIOD, 10);
    s.source = SF_FIELD_CLOSE;
    compute(&s, &S.bars);
    for (size_t i = 9; i < N_BARS; i++)
        cr_assert(hi[i] >= S.close[i] && S.close[i] >= out0[i], "bar %zu", i);
}

/* TA-Lib reads a flat window as 0 for stoch, willr, cci and rsi. */
Test(indicator_properties, flat_market_reads_zero_where_talib_does)
{
    for (size_t i = 0; i < N_BARS; i++)
        S.open[i] = S.high[i] = S.low[i] = S.close[i] = 7.0;
    static const sf_ind_type types[] = {SF_IND_STOCH, SF_IND_WILLR, SF_IND_CCI, SF_IND_RSI, SF_IND_ADX, SF_IND_ROC};
    for (size_t t = 0; t < 6; t++) {
        sf_ind_spec s;
        sf_ind_spec_default(types[t], &s);
        compute(&s, &S.bars);
        size_t lb = sf_ind_lookback(&s);
        for (size_t i = lb; i < N_BARS; i++)
            cr_assert_eq(out0[i], 0.0, "%s bar %zu: %g", sf_ind_info_get(types[t])->name, i, out0[i]);
    }
}

Test(indicator_properties, short_series_is_all_undefined)
{
    sf_bars few = S.bars;
    few.n = 10;
    for (int t = 0; t < SF_IND__COUNT; t++) {
        sf_ind_spec s;
        sf_ind_spec_default((sf_ind_type)t, &s);
        if (isnan(s.param[SF_IP_PERIOD]))
            s.param[SF_IP_PERIOD] = 11;
        if (t == SF_IND_OBV || t == SF_IND_PSAR)
            continue;
        compute(&s, &few);
        for (int o = 0; o < sf_ind_info_get((sf_ind_type)t)->n_outputs; o++)
            for (size_t i = 0; i < 10; i++)
                cr_assert(isnan(outs[o][i]), "type %d output %d bar %zu", t, o, i);
        cr_assert_eq(out0[10], -12345.0, "wrote past n");
    }
    few.n = 0;
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_OBV, &s);
    compute(&s, &few);
    sf_ind_spec_default(SF_IND_PSAR, &s);
    compute(&s, &few);
}

/* ---- small series checked by hand ---------------------------------------- */

TestSuite(indicator_hand, .init = setup);

static void load_closes(const double *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        S.close[i] = c[i];
    S.bars.n = n;
}

Test(indicator_hand, ema_small_series)
{
    /* period 3, k = 2/4 = 0.5. Seed at bar 2: (2+4+6)/3 = 4.
     * bar 3: (8-4)*0.5 + 4 = 6.  bar 4: (4-6)*0.5 + 6 = 5. */
    static const double c[] = {2, 4, 6, 8, 4};
    load_closes(c, 5);
    sf_ind_spec s = spec_with(SF_IND_EMA, SF_IP_PERIOD, 3);
    compute(&s, &S.bars);
    cr_assert(isnan(out0[0]) && isnan(out0[1]));
    cr_assert_float_eq(out0[2], 4.0, 1e-12);
    cr_assert_float_eq(out0[3], 6.0, 1e-12);
    cr_assert_float_eq(out0[4], 5.0, 1e-12);
}

Test(indicator_hand, rsi_small_series)
{
    /* period 3; changes +1, -0.5, +1, -0.5, +1.
     * bar 3: gain (1+0+1)/3 = 2/3, loss 0.5/3 = 1/6;
     *        RSI = 100 * (2/3) / (2/3 + 1/6) = 100 * 4/5 = 80.
     * bar 4 (-0.5): gain (2/3*2 + 0)/3 = 4/9, loss (1/6*2 + 0.5)/3 = 5/18;
     *        RSI = 100 * (8/18) / (13/18) = 800/13 = 61.538461538...
     * bar 5 (+1): gain (4/9*2 + 1)/3 = 17/27, loss (5/18*2)/3 = 5/27;
     *        RSI = 100 * 17/22 = 77.272727... */
    static const double c[] = {10, 11, 10.5, 11.5, 11, 12};
    load_closes(c, 6);
    sf_ind_spec s = spec_with(SF_IND_RSI, SF_IP_PERIOD, 3);
    compute(&s, &S.bars);
    cr_assert(isnan(out0[0]) && isnan(out0[1]) && isnan(out0[2]));
    cr_assert_float_eq(out0[3], 80.0, 1e-9);
    cr_assert_float_eq(out0[4], 800.0 / 13.0, 1e-9);
    cr_assert_float_eq(out0[5], 1700.0 / 22.0, 1e-9);
}

Test(indicator_hand, atr_small_series)
{
    /* period 2.
     * bar 1: H 11 L 9    prev C 9   TR = max(2, 2, 0)       = 2
     * bar 2: H 12 L 10.5 prev C 10  TR = max(1.5, 2, 0.5)   = 2
     * bar 3: H 11.5 L 9  prev C 11  TR = max(2.5, 0.5, 2)   = 2.5
     * bar 4: H 13 L 12   prev C 9.5 TR = max(1, 3.5, 2.5)   = 3.5
     * ATR[2] = (2+2)/2 = 2; ATR[3] = (2*1 + 2.5)/2 = 2.25;
     * ATR[4] = (2.25*1 + 3.5)/2 = 2.875. */
    static const double h[] = {10, 11, 12, 11.5, 13}, l[] = {8, 9, 10.5, 9, 12};
    static const double c[] = {9, 10, 11, 9.5, 12.5};
    load_closes(c, 5);
    memcpy(S.high, h, sizeof h);
    memcpy(S.low, l, sizeof l);
    sf_ind_spec s = spec_with(SF_IND_ATR, SF_IP_PERIOD, 2);
    compute(&s, &S.bars);
    cr_assert(isnan(out0[0]) && isnan(out0[1]));
    cr_assert_float_eq(out0[2], 2.0, 1e-12);
    cr_assert_float_eq(out0[3], 2.25, 1e-12);
    cr_assert_float_eq(out0[4], 2.875, 1e-12);
}

Test(indicator_hand, obv_five_bars)
{
    /* closes 10, 11, 11, 10, 12; volumes 100..500:
     * 100 (seed), +200 = 300, flat = 300, -400 = -100, +500 = 400. */
    static const double c[] = {10, 11, 11, 10, 12}, v[] = {100, 200, 300, 400, 500};
    load_closes(c, 5);
    memcpy(S.volume, v, sizeof v);
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_OBV, &s);
    compute(&s, &S.bars);
    static const double want[] = {100, 300, 300, -100, 400};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(out0[i], want[i], "bar %zu: %g", i, out0[i]);
}

/* ---- scale ----------------------------------------------------------------- */

Test(indicator_scale, sma_over_a_million_bars)
{
    size_t n = 1000000, p = 200;
    double *close = malloc(n * sizeof *close), *out = malloc(n * sizeof *out);
    cr_assert(close != NULL && out != NULL);
    for (size_t i = 0; i < n; i++)
        close[i] = 100.0 + (double)(i % 1000) * 0.01;
    sf_bars b = {n, NULL, close, close, close, close, close};
    sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, (double)p);
    double *const o[1] = {out};
    sf_err err = {0};
    cr_assert_eq(sf_ind_compute(&s, &b, o, &err), SF_OK, "%s", err.msg);
    cr_assert(isnan(out[p - 2]) && isfinite(out[p - 1]));
    cr_assert(close_enough(out[n - 1], window_sum(close, n - 1, p) / (double)p));
    free(close);
    free(out);
}

/* ---- the table and validation ------------------------------------------- */

TestSuite(indicator_table, .init = setup);

Test(indicator_table, every_type_has_a_row)
{
    static const char *const names[] = {"sma",  "ema",  "wma",   "rsi", "macd",    "bbands", "atr",
                                        "adx",  "cci",  "stoch", "roc", "highest", "lowest", "obv",
                                        "dema", "tema", "willr", "mfi", "psar"};
    cr_assert_eq(sizeof names / sizeof names[0], (size_t)SF_IND__COUNT);
    for (int t = 0; t < SF_IND__COUNT; t++) {
        const sf_ind_info *info = sf_ind_info_get((sf_ind_type)t);
        cr_assert_not_null(info);
        cr_assert_str_eq(info->name, names[t]);
        sf_ind_type found = SF_IND__COUNT;
        cr_assert_eq(sf_ind_info_find(names[t], &found), info);
        cr_assert_eq(found, (sf_ind_type)t);
        cr_assert(info->n_outputs >= 1 && info->n_outputs <= SF_IND_MAX_OUTPUTS);
        cr_assert(info->n_params >= 0 && info->n_params <= SF_IND_MAX_PARAMS);
    }
    cr_assert_null(sf_ind_info_find("vwap", NULL));
    cr_assert_null(sf_ind_info_get(SF_IND__COUNT));
}

Test(indicator_table, outputs_and_defaults_follow_the_design)
{
    const sf_ind_info *m = sf_ind_info_get(SF_IND_MACD);
    cr_assert_str_eq(m->outputs[0], "macd");
    cr_assert_str_eq(m->outputs[1], "signal");
    cr_assert_str_eq(m->outputs[2], "hist");
    const sf_ind_info *bb = sf_ind_info_get(SF_IND_BBANDS);
    cr_assert_str_eq(bb->outputs[0], "lower");
    cr_assert_str_eq(bb->outputs[2], "upper");
    cr_assert_str_eq(sf_ind_info_get(SF_IND_STOCH)->outputs[1], "d");
    cr_assert_str_eq(sf_ind_info_get(SF_IND_ATR)->outputs[0], "value");
    cr_assert_eq(sf_ind_info_get(SF_IND_ATR)->has_source, 0);
    cr_assert_eq(sf_ind_info_get(SF_IND_HIGHEST)->default_source, SF_FIELD_HIGH);
    cr_assert_eq(sf_ind_info_get(SF_IND_LOWEST)->default_source, SF_FIELD_LOW);

    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_MACD, &s);
    cr_assert_eq(s.param[SF_IP_FAST], 12);
    cr_assert_eq(s.param[SF_IP_SLOW], 26);
    cr_assert_eq(s.param[SF_IP_SIGNAL], 9);
    cr_assert_eq(sf_ind_lookback(&s), 33);
    sf_ind_spec_default(SF_IND_BBANDS, &s);
    cr_assert_eq(s.param[SF_IP_PERIOD], 20);
    cr_assert_eq(s.param[SF_IP_STDDEV], 2.0);
    sf_ind_spec_default(SF_IND_STOCH, &s);
    cr_assert_eq(sf_ind_lookback(&s), 13 + 2 + 2);
    sf_ind_spec_default(SF_IND_ADX, &s);
    cr_assert_eq(sf_ind_lookback(&s), 27);
    sf_ind_spec_default(SF_IND_TEMA, &s);
    cr_assert_eq(sf_ind_lookback(&s), 87);
    sf_ind_spec_default(SF_IND_PSAR, &s);
    cr_assert_eq(s.param[SF_IP_ACCEL], 0.02);
    cr_assert_eq(s.param[SF_IP_MAX_ACCEL], 0.2);
    cr_assert_eq(sf_ind_lookback(&s), 1);
    sf_ind_spec_default(SF_IND_SMA, &s);
    cr_assert(isnan(s.param[SF_IP_PERIOD]), "sma period is required");
    cr_assert_eq(sf_ind_lookback(&s), SIZE_MAX);
}

Test(indicator_table, fields_by_name)
{
    cr_assert_eq(sf_field_find("open"), SF_FIELD_OPEN);
    cr_assert_eq(sf_field_find("volume"), SF_FIELD_VOLUME);
    cr_assert_eq(sf_field_find("Close"), -1);
    cr_assert_str_eq(sf_field_name(SF_FIELD_LOW), "low");
    cr_assert_null(sf_field_name(SF_FIELD__COUNT));
}

Test(indicator_table, invalid_specs_name_the_parameter)
{
    sf_err err = {0};
    sf_ind_spec s;
    sf_ind_spec_default(SF_IND_SMA, &s);
    cr_assert_eq(sf_ind_compute(&s, &S.bars, outs, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "sma.period: is required");

    s.param[SF_IP_PERIOD] = 0;
    cr_assert_eq(sf_ind_spec_validate(&s, "indicators.fast", &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "indicators.fast.period: must be an integer >= 1");
    s.param[SF_IP_PERIOD] = 2.5;
    cr_assert_eq(sf_ind_spec_validate(&s, "indicators.fast", &err), SF_ERR_INVALID);
    s.param[SF_IP_PERIOD] = 100001;
    cr_assert_eq(sf_ind_spec_validate(&s, "x", &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "x.period: must be an integer <= 100000");
    s.param[SF_IP_PERIOD] = 5;
    s.source = (sf_field)9;
    cr_assert_eq(sf_ind_spec_validate(&s, "x", &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "x.source: must be open, high, low, close or volume");

    sf_ind_spec_default(SF_IND_RSI, &s);
    s.param[SF_IP_PERIOD] = 1;
    cr_assert_eq(sf_ind_spec_validate(&s, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "rsi.period: must be an integer >= 2");
    sf_ind_spec_default(SF_IND_BBANDS, &s);
    s.param[SF_IP_STDDEV] = 0;
    cr_assert_eq(sf_ind_spec_validate(&s, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "bbands.stddev: must be a number >= 0.01");
    s.param[SF_IP_STDDEV] = INFINITY;
    cr_assert_eq(sf_ind_spec_validate(&s, NULL, &err), SF_ERR_INVALID);
    s.type = (sf_ind_type)99;
    cr_assert_eq(sf_ind_spec_validate(&s, NULL, &err), SF_ERR_INVALID);
}

Test(indicator_table, normalize_clears_unused_parameters)
{
    sf_ind_spec a, b;
    sf_ind_spec_default(SF_IND_ATR, &a);
    b = a;
    b.param[SF_IP_FAST] = 7;    /* not an atr parameter */
    b.source = SF_FIELD_VOLUME; /* atr takes no source */
    sf_ind_spec_normalize(&a);
    sf_ind_spec_normalize(&b);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    sf_ind_spec_default(SF_IND_PSAR, &a);
    b = a;
    a.param[SF_IP_ACCEL] = 0.0;
    b.param[SF_IP_ACCEL] = -0.0;
    sf_ind_spec_normalize(&a);
    sf_ind_spec_normalize(&b);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
}

/* ---- stopping a computation ------------------------------------------------ */

/* A random walk of n bars on the heap (freed by free_walk). */
static sf_bars *walk(size_t n)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK);
    rng_state = 7;
    double p = 100.0;
    for (size_t i = 0; i < n; i++) {
        p = cents(p * (1.0 + (rnd() - 0.5) * 0.01));
        b->ts[i] = 1700000000 + (int64_t)i * 60;
        b->open[i] = b->close[i] = p;
        b->high[i] = p + cents(rnd());
        b->low[i] = p - cents(rnd());
        b->volume[i] = 100.0;
    }
    return b;
}

Test(indicator_stop, a_raised_flag_or_a_passed_deadline_stops_before_any_work)
{
    atomic_int flag = 1;
    sf_ind_stop cancel = {&flag, 0}, late = {NULL, 1}, none = {NULL, 0};
    sf_ind_spec s = spec_with(SF_IND_SMA, SF_IP_PERIOD, 3);
    sf_err err = {0};
    cr_assert_eq(sf_ind_compute_stop(&s, &S.bars, outs, &cancel, &err), SF_ERR_CANCELLED);
    cr_assert_eq(sf_ind_compute_stop(&s, &S.bars, outs, &late, &err), SF_ERR_TIMEOUT);
    cr_assert_str_eq(err.msg, "deadline passed");
    cr_assert_eq(sf_ind_compute_stop(&s, &S.bars, outs, &none, &err), SF_OK);
    cr_assert_eq(sf_ind_compute_stop(&s, &S.bars, outs, NULL, &err), SF_OK);
}

typedef struct raiser {
    atomic_int *flag;
    atomic_llong raised_ms;
} raiser;

/* Waits until the computation has run 20 ms, then raises the flag. */
static void *raise_later(void *arg)
{
    raiser *r = arg;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&r->raised_ms, (long long)sf_time_mono_ms());
    atomic_store(r->flag, 1);
    return NULL;
}

/* cci(100000) over 1,000,000 bars (a second or more of sorting and tree
 * work): a cancel raised while it runs is seen within a few milliseconds of
 * work (the bound allows for a loaded machine), not at its end. */
Test(indicator_stop, a_cancel_inside_a_long_cci_acts_within_milliseconds, .timeout = 60)
{
    size_t n = 1000000;
    sf_bars *b = walk(n);
    double *out = malloc(n * sizeof *out);
    cr_assert_not_null(out);
    double *const o[1] = {out};
    atomic_int flag = 0;
    raiser r = {&flag, 0};
    sf_ind_stop stop = {&flag, 0};
    sf_ind_spec s = spec_with(SF_IND_CCI, SF_IP_PERIOD, 100000);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, raise_later, &r), 0);
    sf_err err = {0};
    sf_status st = sf_ind_compute_stop(&s, b, o, &stop, &err);
    long long done = (long long)sf_time_mono_ms();
    pthread_join(t, NULL);
    cr_assert_eq(st, SF_ERR_CANCELLED, "%s", err.msg);
    cr_log_info("cci(100000) over 1,000,000 bars stopped %lld ms after the cancel", done - atomic_load(&r.raised_ms));
    cr_assert_lt(done - atomic_load(&r.raised_ms), 300, "stopped %lld ms after the cancel",
                 done - atomic_load(&r.raised_ms));
    free(out);
    sf_bars_free(b);
}

/* Long windows take the order-statistic path: within 1e-9 relative of the
 * mean deviation summed bar by bar, flat stretches (0) included. */
Test(indicator_values, cci_over_long_windows_matches_the_direct_sum, .timeout = 60)
{
    size_t n = 6000;
    sf_bars *b = walk(n);
    for (size_t i = 3000; i < 3400; i++) /* a flat stretch longer than a window */
        b->open[i] = b->high[i] = b->low[i] = b->close[i] = b->close[2999];
    double *got = malloc(n * sizeof *got), *tp = malloc(n * sizeof *tp);
    cr_assert(got != NULL && tp != NULL);
    for (size_t i = 0; i < n; i++)
        tp[i] = (b->high[i] + b->low[i] + b->close[i]) / 3.0;
    static const size_t periods[] = {129, 200, 333, 1000};
    for (size_t k = 0; k < 4; k++) {
        size_t p = periods[k];
        sf_ind_spec s = spec_with(SF_IND_CCI, SF_IP_PERIOD, (double)p);
        sf_err err = {0};
        double *const o[1] = {got};
        cr_assert_eq(sf_ind_compute(&s, b, o, &err), SF_OK, "%s", err.msg);
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < p) {
                cr_assert(isnan(got[i]));
                continue;
            }
            double mean = 0.0, md = 0.0;
            for (size_t j = i + 1 - p; j <= i; j++)
                mean += tp[j];
            mean /= (double)p;
            for (size_t j = i + 1 - p; j <= i; j++)
                md += fabs(tp[j] - mean);
            double t = tp[i] - mean;
            double want = fabs(t) < 1e-8 || md < 1e-8 ? 0.0 : t / (0.015 * (md / (double)p));
            cr_assert(fabs(got[i] - want) <= 1e-9 * fmax(1e-300, fabs(want)) || (got[i] == 0.0 && want == 0.0),
                      "cci(%zu) bar %zu: got %.17g, want %.17g", p, i, got[i], want);
        }
    }
    free(tp);
    free(got);
    sf_bars_free(b);
}
