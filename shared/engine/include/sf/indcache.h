/*
 * indcache: indicator outputs over one bar series, computed once and shared
 * by every run that asks for the same spec (the members of a sweep, the runs
 * of one program over one series). sf_engine_run borrows from it through
 * sf_run_opts.cache; sf_sweep_run makes one per sweep unless given one.
 *
 * Entries are keyed by the bytes of a normalised sf_ind_spec: only the fields
 * its type uses are kept (a source it does not take, parameters it does not
 * take and the sign of a zero do not split entries). An entry holds every
 * output of its spec, exactly as sf_ind_compute gives them, so a run reads
 * the same doubles with or without a cache. At most max_bytes of outputs are
 * held: a new spec that does not fit evicts unpinned entries, least recently
 * used first; if it still does not fit, it is computed for its caller alone
 * and freed on release (the run still works, it only does not share).
 *
 * Thread safety: acquire, release, output, scratch and stats may be called from any
 * number of threads at once on one cache (one mutex and one condition
 * variable inside). A spec is computed once, by the first thread that asks,
 * outside the lock; threads asking for it meanwhile wait for that result,
 * and when that computation fails, compute it themselves. sf_indcache_free
 * must not run alongside anything else on the cache.
 * Ownership: the cache borrows its bars, which must outlive it and must not
 * change while it lives. A ref from sf_indcache_acquire pins its outputs
 * until sf_indcache_release on the same cache; the arrays from
 * sf_indref_output are valid until then and must not be written. Every ref
 * must be released before sf_indcache_free.
 */
#ifndef SF_INDCACHE_H
#define SF_INDCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/err.h"
#include "sf/indicator.h"

#define SF_INDCACHE_MAX_DEFAULT ((size_t)512 * 1024 * 1024)
#define SF_INDCACHE_SPARES 64 /* scratch series kept for reuse, at most */

typedef struct sf_indcache sf_indcache;
typedef struct sf_indref sf_indref; /* a pinned set of outputs of one spec */

/* A cache over bars (not NULL) holding at most max_bytes of output arrays.
 * Errors: SF_ERR_INVALID (no bars), SF_ERR_NOMEM, SF_ERR_INTERNAL (its
 * mutex or condition variable). */
sf_status sf_indcache_new(const sf_bars *bars, size_t max_bytes, sf_indcache **out, sf_err *err);
/* All refs must have been released. Accepts NULL. */
void sf_indcache_free(sf_indcache *cache);

/* The bars the cache computes over (a run checks that they are its own). */
const sf_bars *sf_indcache_bars(const sf_indcache *cache);

/* Pin the outputs of spec, computing them if needed; *ref is NULL on error.
 * Errors: SF_ERR_INVALID (an unknown type, or what sf_ind_compute refuses),
 * SF_ERR_NOMEM. A failed computation leaves nothing in the cache. */
sf_status sf_indcache_acquire(sf_indcache *cache, const sf_ind_spec *spec, sf_indref **ref, sf_err *err);
/* Output k (0 .. n_outputs-1) of a pinned ref: bars->n doubles, NaN in the
 * warm-up; NULL for k out of range or a NULL ref. Valid until the ref is
 * released. */
const double *sf_indref_output(const sf_indref *ref, int k);
/* Unpin (a private ref is freed). Accepts a NULL ref. */
void sf_indcache_release(sf_indcache *cache, sf_indref *ref);

typedef struct sf_indcache_stats {
    uint64_t computed; /* sf_ind_compute calls made for the cache */
    uint64_t hits;     /* acquires served from a cached entry */
    uint64_t evicted;  /* entries dropped to make room */
    uint64_t uncached; /* acquires that did not fit and were computed privately */
    size_t bytes;      /* bytes held now */
} sf_indcache_stats;

/* A scratch array of bars->n doubles (contents undefined) for one run's own
 * use, such as an equity curve its result does not keep: one put back
 * earlier, else a new one; NULL when out of memory. Return it with
 * sf_indcache_scratch_put (which frees it when SF_INDCACHE_SPARES are kept
 * already; accepts NULL); sf_indcache_free frees those kept. Not counted in
 * max_bytes: at most one a running member. */
double *sf_indcache_scratch_get(sf_indcache *cache);
void sf_indcache_scratch_put(sf_indcache *cache, double *scratch);

/* A consistent snapshot of the counters. */
void sf_indcache_get_stats(sf_indcache *cache, sf_indcache_stats *out);

#endif
