/*
 * gridcache: the worker's small LRU of parsed sweep grids, keyed by batch id.
 *
 * Every member of a sweep carries the same grid text (the batch's); parsing it
 * once per batch instead of once per member keeps a member's cost independent
 * of the sweep's size (a range of N values expands to N values). A batch's
 * grid never changes, but the key also includes the text's length and a hash
 * of it, so a different text is never served for a batch id. Entries are
 * reference counted: an entry in use is never freed; at most
 * WRK_GRIDCACHE_ENTRIES unreferenced entries are kept (least recently used
 * dropped first).
 *
 * Thread safety: every function may be called from any thread (one mutex);
 * a parsed sf_grid is immutable and shared by the threads holding it.
 * Ownership: wrk_gridcache_new/free; each successful get is paired with one
 * release; the grid stays valid until then.
 */
#ifndef WRK_GRIDCACHE_H
#define WRK_GRIDCACHE_H

#include <stddef.h>

#include "sf/err.h"
#include "sf/grid.h"

#define WRK_GRIDCACHE_ENTRIES 8

typedef struct wrk_gridcache wrk_gridcache;
typedef struct wrk_grid_ref wrk_grid_ref;

sf_status wrk_gridcache_new(wrk_gridcache **out, sf_err *err);
void wrk_gridcache_free(wrk_gridcache *c); /* every entry must be released */

/* The parsed grid of batch_id (text, len), parsed on a miss (outside the
 * lock); errors are sf_grid_parse's. */
sf_status wrk_gridcache_get(wrk_gridcache *c, const char *batch_id, const char *text, size_t len, const sf_grid **grid,
                            wrk_grid_ref **ref, sf_err *err);
void wrk_gridcache_release(wrk_gridcache *c, wrk_grid_ref *ref); /* accepts NULL */

#endif
