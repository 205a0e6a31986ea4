/* loop_sma: the hand-written SMA-crossover loop the engine benchmark compares
 * the engine with (bench/bench_engine.c). */
#ifndef SF_BENCH_LOOP_SMA_H
#define SF_BENCH_LOOP_SMA_H

#include <stddef.h>

typedef struct loop_sma_out {
    double final_equity;
    size_t trades;
} loop_sma_out;

/* Long-only SMA(fast)/SMA(slow) crossover, next-open fills, fee as a fraction
 * of notional, all cash in; equity gets n values. */
void loop_sma_cross(const double *open, const double *close, size_t n, size_t fast, size_t slow, double fee,
                    double initial, double *equity, loop_sma_out *out);

#endif
