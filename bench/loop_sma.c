/* loop_sma: the hand-written baseline of the engine benchmark. One pass over
 * the bars: rolling SMA(fast) and SMA(slow), crossover detection, next-open
 * fills with a fee (an exit at bar i's open leaves bar i's close free to
 * enter again, as in the engine), the last-bar close and an equity value per
 * bar: the same trading rules the engine applies to the SMA-cross logic, with
 * nothing general about it. */
#include "loop_sma.h"

#include <math.h>

/* TA-Lib's order: add the new value, take the mean, drop the oldest. */
static double sma_step(double *sum, const double *close, size_t i, size_t p)
{
    *sum += close[i];
    if (i + 1 < p)
        return NAN;
    double v = *sum / (double)p;
    *sum -= close[i + 1 - p];
    return v;
}

void loop_sma_cross(const double *open, const double *close, size_t n, size_t fast, size_t slow, double fee,
                    double initial, double *equity, loop_sma_out *out)
{
    double sf = 0, ss = 0, pf = NAN, ps = NAN;
    double cash = initial, qty = 0;
    int in = 0, pending = 0;
    size_t trades = 0;
    for (size_t i = 0; i < n; i++) {
        if (pending > 0) {
            qty = cash / (open[i] * (1 + fee));
            cash -= qty * open[i] + qty * open[i] * fee;
            in = 1;
        } else if (pending < 0) {
            cash += qty * open[i] - qty * open[i] * fee;
            qty = 0, in = 0, trades++;
        }
        pending = 0;
        if (in && i == n - 1) {
            cash += qty * close[i] - qty * close[i] * fee;
            qty = 0, in = 0, trades++;
        }
        double f = sma_step(&sf, close, i, fast), s = sma_step(&ss, close, i, slow);
        equity[i] = cash + qty * close[i];
        if (i != n - 1) {
            if (!in && f > s && pf <= ps)
                pending = 1;
            else if (in && f < s && pf >= ps)
                pending = -1;
        }
        pf = f, ps = s;
    }
    out->final_equity = equity[n - 1];
    out->trades = trades;
}
