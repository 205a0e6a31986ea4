/*
 * engine: one backtest run of a compiled logic (sf/logic.h) over a bar series
 * (sf/bars.h), with the README's execution rules ("The backtest engine"), and the
 * live decision of a logic execution. Indicator outputs may come from an
 * sf_indcache (sf/indcache.h) that several runs share.
 *
 * How a run works: every indicator output is computed over the whole series
 * (or borrowed from an sf_indcache); then, in chunks of SF_ENGINE_CHUNK bars,
 * the entry and exit condition trees are evaluated into byte arrays (signals
 * are pure functions of bars and indicators, so this needs no position state)
 * and a sequential loop runs the position state machine over them; each
 * chunk's equity then goes to the metrics (sf_perf_curve, and sf_blocks_scan
 * with opts.blocks) while it is in cache. Without keep_equity or blocks the
 * run holds one chunk of its equity curve, not n values. The cancel
 * flag and the deadline are read before each indicator, every
 * SF_IND_STOP_WORK units of work inside one (sf_ind_compute_stop: well
 * under a millisecond), and once per chunk, where progress is reported too.
 * Nothing is read past the
 * bar being decided (no look-ahead).
 *
 * Short accounting: a short entry sells qty at the entry price and receives
 * qty * price minus the fee into cash; equity = cash - qty * close; the exit
 * buys qty back, paying qty * price plus the fee.
 *
 * When equity at a bar's close is <= 0 the account is ruined: an open position
 * is closed at that close (exit reason end_of_data), equity is 0 from then on
 * and nothing more trades.
 *
 * Thread safety: sf_engine_run is pure (no globals, no I/O) and may run on any
 * number of threads at once over the same logic and bars, sharing one
 * sf_indcache or not.
 * Ownership: sf_engine_run returns a new sf_result freed by sf_result_free
 * (accepts NULL); the result owns copies of everything it points to. A run
 * pins the cache entries it reads and releases them before it returns.
 */
#ifndef SF_ENGINE_H
#define SF_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/err.h"
#include "sf/indcache.h"
#include "sf/indicator.h"
#include "sf/logic.h"
#include "sf/overfit.h"
#include "sf/perf.h"

#define SF_ENGINE_CHUNK 4096 /* bars per signal chunk; cancel/progress period */

/* ---- one run ---------------------------------------------------------- */

/* Called from the running thread with bars simulated so far (ends at n). */
typedef void (*sf_progress_fn)(void *user, uint64_t done, uint64_t total);

typedef struct sf_run_opts {
    const atomic_int *cancel; /* non-zero: stop with SF_ERR_CANCELLED; may be NULL */
    int64_t deadline_ms;      /* sf_time_mono_ms() at which to stop with SF_ERR_TIMEOUT; 0 = none */
    sf_progress_fn progress;  /* may be NULL */
    void *progress_user;
    int keep_equity;    /* copy the equity curve into the result */
    int keep_trades;    /* copy the trade list into the result */
    sf_indcache *cache; /* shared indicator outputs for these bars, or NULL */
    int blocks;         /* > 0: the result's block statistics in this many blocks (sf/overfit.h) */
} sf_run_opts;

typedef struct sf_result {
    sf_perf perf;
    double initial_capital;
    size_t n_trades; /* always the count; trades is NULL without keep_trades */
    sf_trade *trades;
    size_t n_equity;  /* bars->n with keep_equity, else 0 */
    int64_t *ts;      /* n_equity bar times */
    double *equity;   /* n_equity equity values at each close */
    sf_blocks blocks; /* with opts.blocks: its per-bar returns' block statistics; else s = 0 */
} sf_result;

/* Zero-filled defaults: no cancel, no progress, keep equity and trades, no cache. */
void sf_run_opts_init(sf_run_opts *opts);

/*
 * Run logic over bars (bars->n >= 1, valid per sf_bars_validate). opts may be
 * NULL (the defaults). On SF_OK *out is a new result. Fails with
 * SF_ERR_CANCELLED when the flag was raised, SF_ERR_TIMEOUT when the
 * deadline passed, SF_ERR_INVALID when an indicator
 * cannot be computed or the cache belongs to other bars, SF_ERR_NOMEM.
 */
sf_status sf_engine_run(const sf_logic *logic, const sf_bars *bars, const sf_run_opts *opts, sf_result **out,
                        sf_err *err);

void sf_result_free(sf_result *result);

/*
 * Bytes one sf_engine_run of logic over n bars allocates before its trades:
 * every indicator output (8 x outputs x n, privately or in a cache), the
 * largest indicator scratch, the condition plan and signal buffers, the
 * equity curve (8 x n) and, with keep_equity, its times (8 x n) and the run
 * state. Trades grow with the run (sizeof(sf_trade) each; a caller bounds
 * them by the size of the stored result). SIZE_MAX on overflow, and for a
 * NULL logic.
 */
size_t sf_engine_working_set(const sf_logic *logic, size_t n, int keep_equity);

/*
 * Evaluate the logic's entry and exit conditions on every bar's close, with
 * no position state: entry[i], exit[i] = 1 when the condition holds at bar i,
 * else 0 (exit is all 0 without an exit condition). Each array has bars->n
 * bytes. cache may be NULL. For live signals (logic executions) and tests.
 */
sf_status sf_engine_signals(const sf_logic *logic, const sf_bars *bars, sf_indcache *cache, uint8_t *entry,
                            uint8_t *exit_, sf_err *err);

/* ---- the live decision (logic executions) ------------------------------ */

typedef enum sf_signal {
    SF_SIGNAL_FLAT,  /* flat, and no entry at the last close */
    SF_SIGNAL_ENTER, /* flat at the last close (also after an exit at its open or a
                       * stop / target inside it), and the entry condition holds there */
    SF_SIGNAL_EXIT,  /* in a position: the exit condition holds at the last close,
                       * or a stop / target was hit during the last bar and the entry
                       * condition does not hold at its close */
    SF_SIGNAL_HOLD,  /* in a position, no exit */
    SF_SIGNAL__COUNT
} sf_signal;

typedef struct sf_decision {
    sf_signal signal;
    int side;                   /* +1 long, -1 short: the position entered, exited or
                                 * held; 0 for SF_SIGNAL_FLAT */
    size_t bar;                 /* index of the last bar (bars->n - 1) */
    int64_t bar_time;           /* its time */
    double close;               /* its close */
    sf_exit_reason exit_reason; /* SF_SIGNAL_EXIT: signal, stop_loss or take_profit
                                 * (end_of_data when a ruined account closed it);
                                 * SF_SIGNAL_ENTER: stop_loss or take_profit when one
                                 * closed the position inside the last bar, else signal */
} sf_decision;

/* "flat", "enter", "exit", "hold"; "unknown" out of range. */
const char *sf_signal_name(sf_signal signal);

/*
 * The decision at the LAST bar as a live system acts on it: the run of
 * sf_engine_run over bars (the same fills, stops, costs and ruin) except that
 * the last bar is not the end of the data: nothing is closed at its close,
 * and the conditions evaluated on its close decide. Entry needs a flat
 * position at that close: as in a backtest, an exit that filled at the last
 * bar's open or inside it leaves it flat, and the entry may follow. bars->n
 * >= 1. opts may be NULL (only cancel, deadline_ms and cache are used). Errors as
 * sf_engine_run.
 */
sf_status sf_engine_decide(const sf_logic *logic, const sf_bars *bars, const sf_run_opts *opts, sf_decision *out,
                           sf_err *err);

#endif
