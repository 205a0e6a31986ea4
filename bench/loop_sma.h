/* loop_sma: the hand-written SMA-crossover loop the engine benchmark compares
 * the engine with (bench/bench_engine.c). */
#ifndef SF_BENCH_LOOP_SMA_H
#define SF_BENCH_LOOP_SMA_H

#include <stddef.h>

#include "sf/perf.h"

typedef struct loop_sma_out {
    double final_equity;
    size_t trades;      /* closed trades, each in trade[] when it is not NULL */
    size_t bars_in_pos; /* bars at whose close a position is held */
} loop_sma_out;

/* Long-only SMA(fast)/SMA(slow) crossover, next-open fills, fee as a fraction
 * of notional, all cash in; equity gets n values. trade, when not NULL, has
 * room for n / 2 + 1 trades and gets each trade's prices, quantity, pnl and
 * fees (what sf_perf_compute reads; no times or exit reasons). */
void loop_sma_cross(const double *open, const double *close, size_t n, size_t fast, size_t slow, double fee,
                    double initial, double *equity, sf_trade *trade, loop_sma_out *out);

#endif
