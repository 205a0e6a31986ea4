/*
 * cache: the worker's bounded LRU of loaded data sets, keyed by (symbol,
 * timeframe, version), shared by the runner threads.
 *
 * wrk_cache_get takes the data set's version as the claim read it (or,
 * given 0, asks PostgreSQL: one indexed row), returns the cached bars of that
 * version or loads them
 * (sf_dataset_load, outside the lock). Entries are reference counted: an
 * entry in use is never freed; when the cache is over its byte budget,
 * unreferenced entries are dropped least recently used first (an entry alone
 * bigger than the budget is dropped as soon as its last user releases it).
 *
 * Thread safety: every function may be called from any thread (one mutex).
 * Ownership: wrk_cache_new/free; each successful get is paired with one
 * release; the bars stay valid until then.
 */
#ifndef WRK_CACHE_H
#define WRK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/db.h"
#include "sf/err.h"

#define WRK_CACHE_ENTRIES_MAX 4096

typedef struct wrk_cache wrk_cache;
typedef struct wrk_cache_entry wrk_cache_entry;

typedef struct wrk_cache_stats {
    uint64_t hits, misses, evictions;
    size_t bytes, entries;
} wrk_cache_stats;

sf_status wrk_cache_new(size_t max_bytes, wrk_cache **out, sf_err *err);
void wrk_cache_free(wrk_cache *c); /* every entry must be released */

/* version: the version wanted (the claim returns it), or 0 for the current
 * one. SF_ERR_NOTFOUND when the data set does not exist; SF_ERR_UNAVAILABLE /
 * SF_ERR_DB from the database. */
sf_status wrk_cache_get(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe,
                        int64_t version, const sf_bars **bars, wrk_cache_entry **entry,
                        sf_err *err);
void wrk_cache_release(wrk_cache *c, wrk_cache_entry *entry);

void wrk_cache_get_stats(wrk_cache *c, wrk_cache_stats *out);

#endif
