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
 * Loads are single-flight: the first thread to miss a key loads it; threads
 * that miss the same key meanwhile wait for that load instead of starting
 * their own (32 runners of a fresh sweep make one COPY, not 32, and hold one
 * copy of the bars, not 32). When the load succeeds every waiter shares the
 * entry (one reference each). When it fails, every waiter gets the loader's
 * error (code and message) and nothing stays cached: the next get loads
 * again. Sharing the failure bounds each get to one load's time, and a
 * missing, too large or timed-out data set is not worth asking again at once;
 * a runner that gets SF_ERR_UNAVAILABLE reconnects and retries as it would
 * after its own failure.
 *
 * Versions: a load reads the CURRENT version, which may be newer than the
 * one asked for (an import ran since the claim); the entry is cached under
 * the version loaded, and the threads that waited for the load use it too
 * (a data set's version only grows: its bars are never older than asked).
 *
 * Thread safety: every function may be called from any thread (one mutex,
 * one condition variable for "a load finished"; the cache takes no other
 * lock while it holds its mutex, and never holds it during a load).
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
    uint64_t hits;   /* gets served by a cached entry */
    uint64_t misses; /* gets that found none: loads + waits */
    uint64_t loads;  /* sf_dataset_load calls (successful or not) */
    uint64_t waits;  /* gets that waited for another thread's load */
    uint64_t evictions;
    size_t bytes, entries;
} wrk_cache_stats;

sf_status wrk_cache_new(size_t max_bytes, wrk_cache **out, sf_err *err);
void wrk_cache_free(wrk_cache *c); /* every get must have returned and been released */

/* version: the version wanted (the claim returns it), or 0 for the current
 * one; the bars returned are of that version or newer. db is the caller's
 * own connection (for the version query and, if this thread loads, the
 * load). May block while another thread loads the same key (at most that
 * load's time; loads are bounded by the statement timeout). SF_ERR_NOTFOUND
 * when the data set does not exist; SF_ERR_UNAVAILABLE / SF_ERR_DB from the
 * database; SF_ERR_NOMEM. */
sf_status wrk_cache_get(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe, int64_t version,
                        const sf_bars **bars, wrk_cache_entry **entry, sf_err *err);
void wrk_cache_release(wrk_cache *c, wrk_cache_entry *entry);

void wrk_cache_get_stats(wrk_cache *c, wrk_cache_stats *out);

#endif
