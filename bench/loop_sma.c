/* loop_sma: the hand-written baseline of the engine benchmark. One pass over
 * the bars: rolling SMA(fast) and SMA(slow), crossover detection, next-open
 * fills with a fee (an exit at bar i's open leaves bar i's close free to
 * enter again, as in the engine), the last-bar close and an equity value per
 * bar: the same trading rules the engine applies to the SMA-cross logic, with
 * nothing general about it. It records its trades and counts the bars held, so
 * that sf_perf_compute gives the engine's metrics from its curve. */
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

/* Close the position at px: cash and the trade's record. */
static void loop_exit(double px, double fee, double *cash, double *qty, double entry_px, double entry_fee,
                      sf_trade *trade, size_t *trades)
{
    double exit_fee = *qty * px * fee;
    *cash += *qty * px - exit_fee;
    if (trade != NULL)
        trade[*trades] = (sf_trade){.side = 1,
                                    .entry_price = entry_px,
                                    .exit_price = px,
                                    .qty = *qty,
                                    .pnl = *qty * (px - entry_px) - entry_fee - exit_fee,
                                    .fees = entry_fee + exit_fee};
    *qty = 0;
    (*trades)++;
}

void loop_sma_cross(const double *open, const double *close, size_t n, size_t fast, size_t slow, double fee,
                    double initial, double *equity, sf_trade *trade, loop_sma_out *out)
{
    double sf = 0, ss = 0, pf = NAN, ps = NAN;
    double cash = initial, qty = 0, entry_px = 0, entry_fee = 0;
    int in = 0, pending = 0;
    size_t trades = 0, held = 0;
    for (size_t i = 0; i < n; i++) {
        if (pending > 0) {
            entry_px = open[i];
            qty = cash / (entry_px * (1 + fee));
            entry_fee = qty * entry_px * fee;
            cash -= qty * entry_px + entry_fee;
            in = 1;
        } else if (pending < 0) {
            loop_exit(open[i], fee, &cash, &qty, entry_px, entry_fee, trade, &trades);
            in = 0;
        }
        pending = 0;
        if (in && i == n - 1) {
            loop_exit(close[i], fee, &cash, &qty, entry_px, entry_fee, trade, &trades);
            in = 0;
        }
        double f = sma_step(&sf, close, i, fast), s = sma_step(&ss, close, i, slow);
        equity[i] = cash + qty * close[i];
        if (i != n - 1) {
            if (!in && f > s && pf <= ps)
                pending = 1;
            else if (in && f < s && pf >= ps)
                pending = -1;
        }
        held += (size_t)in;
        pf = f, ps = s;
    }
    out->final_equity = equity[n - 1];
    out->trades = trades;
    out->bars_in_pos = held;
}
