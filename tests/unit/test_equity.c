/* equity: downsampling keeps at most max points, the first and last, the
 * largest drawdown's peak and trough, each bucket's extremes, in order. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "sf/equity.h"
#include "sf/perf.h"

static void walk(int64_t *ts, double *eq, size_t n, uint64_t seed)
{
    double v = 10000.0;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(seed >> 11) / 9007199254740992.0 - 0.5;
        v *= 1.0 + 0.02 * u;
        ts[i] = 1700000000 + (int64_t)i * 60;
        eq[i] = v;
    }
}

/* Index of time t in the original series (times are 60 s apart). */
static size_t index_of(int64_t t)
{
    return (size_t)((t - 1700000000) / 60);
}

static void check_downsample(size_t n, size_t max, uint64_t seed)
{
    int64_t *ts = malloc(n * sizeof *ts), *ts0 = malloc(n * sizeof *ts0);
    double *eq = malloc(n * sizeof *eq), *eq0 = malloc(n * sizeof *eq0);
    walk(ts0, eq0, n, seed);
    for (size_t i = 0; i < n; i++)
        ts[i] = ts0[i], eq[i] = eq0[i];
    size_t k = sf_equity_downsample(ts, eq, n, max);
    size_t want_max = max < SF_EQUITY_POINTS_MIN ? SF_EQUITY_POINTS_MIN : max;
    cr_assert_leq(k, want_max, "n=%zu max=%zu: kept %zu", n, max, k);
    cr_assert_geq(k, want_max - 3 < n ? want_max - 3 : n, "n=%zu max=%zu: only %zu kept", n, max, k);
    cr_assert_eq(ts[0], ts0[0]);
    cr_assert_eq(ts[k - 1], ts0[n - 1]);
    cr_assert_eq(eq[k - 1], eq0[n - 1]);
    for (size_t i = 0; i < k; i++) {
        if (i > 0)
            cr_assert_gt(ts[i], ts[i - 1], "times not increasing at %zu", i);
        cr_assert_eq(eq[i], eq0[index_of(ts[i])], "point %zu is not the original", i);
    }
    /* the largest drawdown's peak and trough, as perf computes them */
    sf_perf perf;
    sf_perf_compute(ts0, eq0, n, eq0[0], NULL, 0, 0, 252, &perf);
    int has_peak = 0, has_trough = 0, has_min = 0, has_max = 0;
    size_t gmin = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) {
        gmin = eq0[i] < eq0[gmin] ? i : gmin;
        gmax = eq0[i] > eq0[gmax] ? i : gmax;
    }
    for (size_t i = 0; i < k; i++) {
        has_peak |= ts[i] == perf.drawdown_peak_time;
        has_trough |= ts[i] == perf.drawdown_trough_time;
        has_min |= ts[i] == ts0[gmin];
        has_max |= ts[i] == ts0[gmax];
    }
    cr_assert(has_peak && has_trough, "n=%zu max=%zu: drawdown peak/trough dropped", n, max);
    if (max >= 8)
        cr_assert(has_min && has_max, "n=%zu max=%zu: the global extremes dropped", n, max);
    free(ts);
    free(ts0);
    free(eq);
    free(eq0);
}

Test(equity, downsampling_keeps_at_most_max_points_with_the_landmarks)
{
    check_downsample(5000, 1000, 1);
    check_downsample(5000, 1000, 2);
    check_downsample(100000, 1000, 3);
    check_downsample(5000, 5, 4);
    check_downsample(5000, 4, 5);
    check_downsample(5000, 1, 6);
    check_downsample(1001, 1000, 7);
    check_downsample(10, 9, 8);
}

Test(equity, zero_or_a_large_max_keeps_every_point)
{
    int64_t ts[50];
    double eq[50], eq0[50];
    walk(ts, eq, 50, 9);
    for (int i = 0; i < 50; i++)
        eq0[i] = eq[i];
    cr_assert_eq(sf_equity_downsample(ts, eq, 50, 0), 50);
    cr_assert_eq(sf_equity_downsample(ts, eq, 50, 50), 50);
    cr_assert_eq(sf_equity_downsample(ts, eq, 50, 1000), 50);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(eq[i], eq0[i]);
}

Test(equity, drawdown_landmarks_are_the_largest_relative_fall_and_its_peak)
{
    const double eq[] = {100, 120, 90, 130, 110, 200, 150, 210};
    size_t p, t;
    sf_equity_drawdown(eq, 8, &p, &t);
    cr_assert_eq(p, 1); /* 120 -> 90 is 25%; 200 -> 150 is 25% too: the first wins */
    cr_assert_eq(t, 2);
    const double up[] = {1, 2, 3};
    sf_equity_drawdown(up, 3, &p, &t);
    cr_assert_eq(p, 0);
    cr_assert_eq(t, 0);
    /* a spike inside a bucket survives min-max decimation */
    int64_t ts[1000];
    double e[1000];
    for (int i = 0; i < 1000; i++)
        ts[i] = 1700000000 + i * 60, e[i] = 100.0 + (i % 2) * 0.001;
    e[301] = 500.0; /* the largest drawdown (80%) starts here: a landmark */
    e[701] = 400.0; /* 75%: not a landmark, kept as its bucket's maximum */
    size_t k = sf_equity_downsample(ts, e, 1000, 20);
    int spike = 0;
    for (size_t i = 0; i < k; i++)
        spike |= e[i] == 400.0;
    cr_assert(spike, "the second spike was dropped");
}
