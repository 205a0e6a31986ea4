/*
 * sweep: run every combination of a parameter grid (sf/grid.h) over one bar
 * series on N threads, and rank the members by a metric.
 *
 * The grid is validated first (sf_grid_validate: every combination must give
 * a valid logic). Worker threads ("sf-sweep-N") take combination indices from
 * one atomic counter, build and parse each member's logic, and run it with
 * sf_engine_run sharing one indicator cache, so each distinct indicator spec
 * is computed once per sweep. Only the metrics of a member are kept (no
 * equity, no trades), so memory is bounded by the combination count.
 *
 * Overfitting: each member's run also gives its returns' block statistics
 * (opts.blocks), kept in one sf_overfit_set slot per combination (about
 * 400 bytes a member at 16 blocks); after the ranking the result gets PBO,
 * DSR and the verdict over every member (sf_overfit_compute).
 *
 * Ranking: by the chosen metric of sf/rank.h in its better direction (higher
 * Sharpe, lower max drawdown, ...), non-finite values last, ties by
 * combination index. Results are bit-identical whatever the thread count.
 *
 * Thread safety: sf_sweep_run may be called from several threads at once; the
 * progress callback is called from the worker threads (concurrently) and
 * must be thread-safe.
 * Ownership: sf_sweep_run returns a new sf_sweep_result freed by
 * sf_sweep_result_free (accepts NULL); its strings belong to it.
 */
#ifndef SF_SWEEP_H
#define SF_SWEEP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/engine.h"
#include "sf/err.h"
#include "sf/grid.h"
#include "sf/logic.h"
#include "sf/overfit.h"
#include "sf/perf.h"
#include "sf/rank.h"

#define SF_SWEEP_MAX_THREADS 256
#define SF_SWEEP_METRIC_MAX SF_RANK_NAME_MAX
/* Default indicator-cache bound of a sweep. Members run in grid order (the
 * last path fastest), so LRU keeps the specs of one row of the grid hot;
 * 96 MiB holds 12 outputs of a million bars, and keeps a 100-member sweep
 * over a million bars under 200 MB in all. */
#define SF_SWEEP_CACHE_DEFAULT ((size_t)96 * 1024 * 1024)

typedef struct sf_sweep_opts {
    int threads;              /* 1 .. SF_SWEEP_MAX_THREADS; 0 means 1 */
    const char *rank_by;      /* a metric name (sf/rank.h); NULL = SF_RANK_DEFAULT */
    size_t top_k;             /* members kept in the result; 0 = all (for programs:
                                   a user's K goes through sf_rank_top_parse) */
    size_t cache_bytes;       /* indicator cache bound; 0 = SF_SWEEP_CACHE_DEFAULT */
    sf_indcache *cache;       /* use this cache (for these bars) instead of a new one */
    const atomic_int *cancel; /* non-zero: stop with SF_ERR_CANCELLED; may be NULL */
    sf_progress_fn progress;  /* members finished so far, of the grid size; may be NULL */
    void *progress_user;
    int blocks;              /* overfitting statistics (sf/overfit.h) in this many blocks:
                                0 = SF_OVERFIT_BLOCKS_DEFAULT, -1 = none */
    double effective_trials; /* the DSR's trials; 0 = the number of members */
} sf_sweep_opts;

typedef struct sf_sweep_member {
    size_t rank;       /* 1 = best */
    size_t index;      /* combination index in the grid */
    char *params_json; /* {"indicators.fast.period": 5, ...} */
    sf_perf perf;
} sf_sweep_member;

typedef struct sf_sweep_result {
    size_t n_combos; /* combinations run */
    char rank_by[SF_SWEEP_METRIC_MAX];
    size_t n_members;         /* min(top_k, n_combos) */
    sf_sweep_member *members; /* in rank order */
    sf_indcache_stats cache;  /* indicator cache use during the sweep */
    int has_overfit;          /* 1: overfit holds PBO and DSR over every member */
    sf_overfit overfit;
} sf_sweep_result;

/* Defaults: 1 thread, sharpe, every member, default cache bound, overfitting
 * statistics in SF_OVERFIT_BLOCKS_DEFAULT blocks. */
void sf_sweep_opts_init(sf_sweep_opts *opts);

/*
 * Validate, run and rank. errs (if not NULL) receives the failing
 * combination's logic errors when validation fails. Errors: SF_ERR_INVALID
 * (bad options, a combination that does not validate: err names it),
 * SF_ERR_PARSE, SF_ERR_LIMIT, SF_ERR_CANCELLED, SF_ERR_NOMEM, SF_ERR_INTERNAL
 * (a thread could not start).
 */
sf_status sf_sweep_run(const sf_grid *grid, const char *logic_json, size_t len, const sf_bars *bars,
                       const sf_sweep_opts *opts, sf_sweep_result **out, sf_logic_errors *errs, sf_err *err);

void sf_sweep_result_free(sf_sweep_result *result);

#endif
