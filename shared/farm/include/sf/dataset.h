/*
 * dataset: market data sets in PostgreSQL (tables datasets and bars), one per
 * (symbol, timeframe), each with a version that every import bumps.
 *
 * Import replaces a data set's bars in ONE transaction (upsert the datasets row,
 * which bumps version and locks the row against concurrent imports; delete the
 * old bars; COPY the new ones in binary): either everything is replaced or
 * nothing changes. Load reads the bars and the version in one REPEATABLE READ
 * snapshot with a binary COPY, so the version always describes the bars
 * returned; workers cache by (symbol, timeframe, version) and validate the
 * cache with sf_dataset_version (one indexed single-row SELECT).
 *
 * Names: a symbol is 1..SF_DATASET_SYMBOL_MAX characters of [A-Za-z0-9._:/-]
 * ("BTC-USD", "AAPL", "EUR/USD"); a timeframe is 1..SF_DATASET_TIMEFRAME_MAX
 * characters of [a-z0-9] starting with a digit ("1m", "5m", "1h", "1d", "1w").
 *
 * Errors: SF_ERR_INVALID for a bad name (message starts with "symbol: " or
 * "timeframe: ") or invalid bars; SF_ERR_NOTFOUND when the data set does not
 * exist; SF_ERR_LIMIT over max_bars; SF_ERR_UNAVAILABLE / SF_ERR_DB from the
 * database (see sf/db.h).
 *
 * Thread safety: the functions share no state; each call needs its own sf_db,
 * which must not be inside a transaction (import and load run their own).
 * Ownership: sf_dataset_load returns a new sf_bars freed by sf_bars_free.
 * sf_dataset_slice fills a view that borrows the columns of its source.
 */
#ifndef SF_DATASET_H
#define SF_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/db.h"
#include "sf/err.h"

#define SF_DATASET_SYMBOL_MAX 32    /* characters, NUL not included */
#define SF_DATASET_TIMEFRAME_MAX 16 /* characters, NUL not included */
#define SF_DATASET_LIST_MAX 10000   /* most data sets sf_dataset_list returns */

typedef struct sf_dataset_info {
    char symbol[SF_DATASET_SYMBOL_MAX + 1];
    char timeframe[SF_DATASET_TIMEFRAME_MAX + 1];
    int64_t version;  /* 1 after the first import, +1 per import */
    int64_t bars;     /* number of bars */
    int64_t first_ts; /* Unix seconds of the first and last bar; 0 when no bars */
    int64_t last_ts;
    int64_t updated_at; /* Unix seconds of the last import */
} sf_dataset_info;

/* Check the characters and lengths above. */
sf_status sf_dataset_validate_symbol(const char *symbol, sf_err *err);
sf_status sf_dataset_validate_timeframe(const char *timeframe, sf_err *err);

/*
 * Replace the bars of (symbol, timeframe) with bars (validated first with
 * sf_bars_validate; at least one bar), creating the data set at version 1 or
 * bumping its version. All or nothing. info (may be NULL) receives the new
 * state of the data set.
 */
sf_status sf_dataset_import(sf_db *db, const char *symbol, const char *timeframe, const sf_bars *bars,
                            sf_dataset_info *info, sf_err *err);

/* The data set's row (no bars). SF_ERR_NOTFOUND when it does not exist. */
sf_status sf_dataset_get(sf_db *db, const char *symbol, const char *timeframe, sf_dataset_info *info, sf_err *err);

/* Only the version: the cheap cache check. SF_ERR_NOTFOUND when absent. */
sf_status sf_dataset_version(sf_db *db, const char *symbol, const char *timeframe, int64_t *version, sf_err *err);

/*
 * *has = 1 when (symbol, timeframe) has a bar with from <= ts <= to (Unix
 * seconds; INT64_MIN / INT64_MAX for an open end), else 0 (also when the
 * data set does not exist). One index probe of the bars' primary key: cheap
 * enough for every submission that names a range.
 */
sf_status sf_dataset_has_bars(sf_db *db, const char *symbol, const char *timeframe, int64_t from, int64_t to, int *has,
                              sf_err *err);

/*
 * Every data set, ordered by symbol then timeframe, into out[0 .. max); *n
 * gets how many were written. More than max is not an error: the rest is
 * left out and *more is set to 1 (more may be NULL).
 */
sf_status sf_dataset_list(sf_db *db, sf_dataset_info *out, size_t max, size_t *n, int *more, sf_err *err);

/*
 * Load all bars of (symbol, timeframe), oldest first, and the version they
 * belong to (version may be NULL). More than max_bars bars is SF_ERR_LIMIT
 * (0 = SF_BARS_MAX_DEFAULT). On SF_OK *out is a new sf_bars.
 */
sf_status sf_dataset_load(sf_db *db, const char *symbol, const char *timeframe, size_t max_bars, sf_bars **out,
                          int64_t *version, sf_err *err);

/*
 * A view of the bars with from <= ts <= to (Unix seconds; INT64_MIN / INT64_MAX
 * for an open end), found by binary search. The view borrows all's columns
 * and must not be freed; it lives as long as all. An empty range gives
 * view->n == 0 (not an error).
 */
void sf_dataset_slice(const sf_bars *all, int64_t from, int64_t to, sf_bars *view);

#endif
