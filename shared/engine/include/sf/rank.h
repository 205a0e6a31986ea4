/*
 * rank: the one table of metrics a sweep's members can be ranked by, and the
 * one rule for "the best K", shared by the local sweep (sf/sweep.h), sf-api's
 * leaderboard (SQL over results.metrics) and sfctl, so that a metric ranks
 * the same way on this machine and on the farm.
 *
 * Each metric has:
 *   - name: the user's name (--by, rank_by, ?by=) and also its key in the
 *     metrics object that sf_perf_to_json writes (so in results.metrics).
 *     Names are [a-z_] only: safe as an SQL parameter or a JSON key;
 *   - dir: SF_RANK_HIGHER (higher is better) or SF_RANK_LOWER;
 *   - get: how to read it from an sf_perf.
 *
 * Order: by the metric in its better direction; a value that is not finite
 * (NaN, +Inf, -Inf: null in JSON, so the farm cannot tell them apart) ranks
 * after every number; ties, and non-finite values among themselves, by
 * combination index. The farm orders the same way in SQL: DESC (higher) or
 * ASC (lower) NULLS LAST, then combo_index.
 *
 * Top K: a whole number from 1 to SF_RANK_TOP_MAX; SF_RANK_TOP_DEFAULT when
 * not given. 0 is refused everywhere (it is not "all": a farm leaderboard of
 * every member of a 100,000-member sweep would not fit a response).
 *
 * Thread safety: pure; the table is constant. Ownership: the returned
 * pointers and strings are static.
 */
#ifndef SF_RANK_H
#define SF_RANK_H

#include <stddef.h>

#include "sf/err.h"
#include "sf/perf.h"

#define SF_RANK_DEFAULT "sharpe"
#define SF_RANK_TOP_DEFAULT 10
#define SF_RANK_TOP_MAX 1000
#define SF_RANK_NAME_MAX 32 /* longest name + 1 */

/* Every name in table order, and those that rank lowest first, as literals
 * for messages and usage texts (test_rank holds them equal to the table). */
#define SF_RANK_LIST                                                                                                   \
    "sharpe, sortino, total_return, cagr, final_equity, max_drawdown, win_rate, profit_factor, trades, "               \
    "exposure, fees"
#define SF_RANK_LOWER_LIST "max_drawdown, fees"

typedef enum sf_rank_dir { SF_RANK_LOWER = -1, SF_RANK_HIGHER = 1 } sf_rank_dir;

typedef struct sf_rank_metric {
    const char *name;
    sf_rank_dir dir;
    double (*get)(const sf_perf *perf);
} sf_rank_metric;

/* The metric called name, or NULL (also for NULL). */
const sf_rank_metric *sf_rank_find(const char *name);

/* The table: i from 0 to sf_rank_count() - 1, in the order of SF_RANK_LIST. */
size_t sf_rank_count(void);
const sf_rank_metric *sf_rank_at(size_t i);

/* The sort key of perf: dir * value, or NaN when the value is not finite. */
double sf_rank_key(const sf_rank_metric *m, const sf_perf *perf);

/* Order of two members by (key, index) as sf_rank_key gives them: < 0 when
 * a ranks before b, 0 when they are the same member, > 0 after. */
int sf_rank_cmp(double key_a, size_t index_a, double key_b, size_t index_b);

/*
 * K from text (NULL: SF_RANK_TOP_DEFAULT). Errors: SF_ERR_INVALID with
 * "top: must be an integer from 1 to 1000, got \"0\"".
 */
sf_status sf_rank_top_parse(const char *text, size_t *out, sf_err *err);

#endif
