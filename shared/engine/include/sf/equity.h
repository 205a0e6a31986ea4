/*
 * equity: downsampling an equity curve for storage and charts.
 *
 * A backtest over millions of bars has millions of equity points; results
 * keep at most a configured number of them. The kept points always include
 * the first and the last point and the peak and the trough of the largest
 * drawdown (relative to the running peak, the first of equal drawdowns, as
 * sf/perf.h defines it), so the stored curve shows the same start, end and
 * max drawdown as the full one. The points in between are split into
 * equal-width buckets by index, and each bucket keeps its lowest and its
 * highest point, in time order (min-max decimation: spikes survive, unlike
 * with every k-th point).
 *
 * Thread safety: pure. Ownership: the caller's arrays, changed in place.
 */
#ifndef SF_EQUITY_H
#define SF_EQUITY_H

#include <stddef.h>
#include <stdint.h>

#define SF_EQUITY_POINTS_MIN 4 /* first, last, drawdown peak and trough */

/*
 * Keep at most max of the n points (ts[i], equity[i]), moved to the front of
 * both arrays in their original order; returns how many were kept. max == 0
 * or max >= n keeps all n; a max below SF_EQUITY_POINTS_MIN counts as
 * SF_EQUITY_POINTS_MIN.
 */
size_t sf_equity_downsample(int64_t *ts, double *equity, size_t n, size_t max);

/* The indices of the largest drawdown's peak and trough (both 0 when the
 * curve never falls). n >= 1. */
void sf_equity_drawdown(const double *equity, size_t n, size_t *peak, size_t *trough);

#endif
