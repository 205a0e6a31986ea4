/* equity: min-max downsampling that keeps the curve's landmarks; see sf/equity.h.
 *
 * DESIGN: one pass over buckets, in place. Kept indices are distinct and
 * increasing, so the write position never passes the index being read: a
 * bucket's indices are all chosen (reading values only) before any of them
 * is moved. No allocation.
 */
#include "sf/equity.h"

#define BUCKET_KEEP_MAX 4 /* a bucket's min, max, and the drawdown peak/trough */

void sf_equity_drawdown(const double *equity, size_t n, size_t *peak, size_t *trough)
{
    size_t top = 0;
    double best = 0.0;
    *peak = *trough = 0;
    for (size_t i = 1; i < n; i++) {
        if (equity[i] > equity[top])
            top = i;
        if (!(equity[top] > 0.0))
            continue;
        double dd = (equity[top] - equity[i]) / equity[top];
        if (dd > best) {
            best = dd;
            *peak = top;
            *trough = i;
        }
    }
}

/* Insert v into the sorted set keep[0..*k) unless present. */
static void add_sorted(size_t *keep, size_t *k, size_t v)
{
    size_t j = *k;
    for (size_t i = 0; i < *k; i++)
        if (keep[i] == v)
            return;
    while (j > 0 && keep[j - 1] > v) {
        keep[j] = keep[j - 1];
        j--;
    }
    keep[j] = v;
    (*k)++;
}

static void move_points(int64_t *ts, double *equity, const size_t *keep, size_t k, size_t *w)
{
    for (size_t i = 0; i < k; i++, (*w)++) {
        ts[*w] = ts[keep[i]];
        equity[*w] = equity[keep[i]];
    }
}

/* The kept indices of [lo, hi): its lowest and highest point, plus the
 * landmarks that fall inside. */
static size_t bucket_keep(const double *equity, size_t lo, size_t hi, const size_t *marks, size_t *keep)
{
    size_t k = 0;
    if (lo >= hi)
        return 0;
    size_t mn = lo, mx = lo;
    for (size_t i = lo + 1; i < hi; i++) {
        if (equity[i] < equity[mn])
            mn = i;
        if (equity[i] > equity[mx])
            mx = i;
    }
    add_sorted(keep, &k, mn);
    add_sorted(keep, &k, mx);
    for (int m = 0; m < 2; m++)
        if (marks[m] >= lo && marks[m] < hi)
            add_sorted(keep, &k, marks[m]);
    return k;
}

size_t sf_equity_downsample(int64_t *ts, double *equity, size_t n, size_t max)
{
    if (max == 0 || max >= n)
        return n;
    if (max < SF_EQUITY_POINTS_MIN)
        max = SF_EQUITY_POINTS_MIN;
    size_t marks[2];
    sf_equity_drawdown(equity, n, &marks[0], &marks[1]);
    /* 0 and n-1 always; a landmark inside (1, n-1) costs one point each */
    size_t fixed = 2 + (marks[0] > 0 && marks[0] < n - 1) + (marks[1] > 0 && marks[1] < n - 1 && marks[1] != marks[0]);
    size_t buckets = (max - fixed) / 2, inner = n - 2;
    size_t keep[BUCKET_KEEP_MAX], w = 1; /* point 0 stays where it is */
    if (buckets == 0) {                  /* room for the landmarks only */
        size_t k = 0;
        for (int m = 0; m < 2; m++)
            if (marks[m] > 0 && marks[m] < n - 1)
                add_sorted(keep, &k, marks[m]);
        move_points(ts, equity, keep, k, &w);
    }
    for (size_t b = 0; b < buckets; b++) {
        size_t lo = 1 + b * inner / buckets, hi = 1 + (b + 1) * inner / buckets;
        size_t k = bucket_keep(equity, lo, hi, marks, keep);
        move_points(ts, equity, keep, k, &w);
    }
    ts[w] = ts[n - 1];
    equity[w] = equity[n - 1];
    return w + 1;
}
