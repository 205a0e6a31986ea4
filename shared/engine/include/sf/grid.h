/*
 * grid: the parameter grid of a sweep, and the logic of each of its members.
 *
 * A grid is a JSON object mapping paths into the logic JSON to the values to
 * try, as a list or as an inclusive range:
 *
 *   {"indicators.fast.period": [5, 10, 20],
 *    "indicators.slow.period": {"from": 20, "to": 100, "step": 10},
 *    "entry.lt[1]": [25, 30],
 *    "execution.fill": ["next_open", "close"]}
 *
 * Paths: object keys joined by '.', with "[i]" for an array element (the same
 * spelling as logic error paths; indices without leading zeros). Everything but
 * the last step must already exist in the logic (a missing parent is an error,
 * so a typo such as "indicators.fsat.period" is caught instead of creating a
 * new indicator); the last key of an object may be absent and is then added,
 * an array index must exist. No path may be a prefix of another.
 * List values are numbers, strings or booleans (1 to SF_GRID_MAX_VALUES).
 * Ranges: from/to/step numbers, step > 0, from <= to; the values are
 * from + k*step for k = 0, 1, ... up to to (inclusive, 1e-9 of a step of
 * tolerance); they stay integers when from and step are integers, and reals
 * are rounded to 12 significant digits (0.1 steps give 0.3, not
 * 0.30000000000000004).
 *
 * Members are numbered 0 .. size-1 in a fixed order: the paths in the order of
 * the grid text, the last path varying fastest. size is the product of the
 * value counts; over max_combos it is SF_ERR_LIMIT.
 *
 * Thread safety: a parsed sf_grid is immutable; every function here may be
 * called on the same grid from any number of threads. A cursor is not
 * thread-safe: one per thread (many cursors may share one grid).
 * Ownership: sf_grid_parse returns a new grid freed by sf_grid_free (accepts
 * NULL). sf_grid_apply returns malloc'd text the caller frees with free().
 * sf_grid_cursor_new returns a new cursor freed by sf_grid_cursor_free
 * (accepts NULL); it borrows the grid, which must outlive it, and copies
 * nothing from logic_json after the call.
 */
#ifndef SF_GRID_H
#define SF_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"
#include "sf/logic.h"

#define SF_GRID_MAX_COMBOS_DEFAULT ((size_t)100000)
#define SF_GRID_MAX_PARAMS 32     /* paths in one grid */
#define SF_GRID_MAX_VALUES 100000 /* values of one path */
#define SF_GRID_MAX_INPUT ((size_t)1 << 20)
#define SF_GRID_PATH_MAX 256 /* bytes of one path, NUL included */

typedef struct sf_grid sf_grid;

/* Parse grid JSON text of len bytes; max_combos 0 means
 * SF_GRID_MAX_COMBOS_DEFAULT. Errors: SF_ERR_PARSE (bad JSON, with line and
 * column), SF_ERR_INVALID (bad path or values; the message names the path),
 * SF_ERR_LIMIT ("grid has N combinations; the limit is M", too many values),
 * SF_ERR_NOMEM. */
sf_status sf_grid_parse(const char *json, size_t len, size_t max_combos, sf_grid **out, sf_err *err);
void sf_grid_free(sf_grid *grid);

/* Number of combinations (>= 1). */
size_t sf_grid_size(const sf_grid *grid);
/* Number of paths, the i-th path (borrowed, lives as long as the grid) and
 * its number of values. */
size_t sf_grid_n_params(const sf_grid *grid);
const char *sf_grid_param_path(const sf_grid *grid, size_t i);
size_t sf_grid_param_count(const sf_grid *grid, size_t i);

/* Append combination index's values as a JSON object to out:
 * {"indicators.fast.period": 5, "risk.stop_loss_pct": 3.5}.
 * SF_ERR_INVALID when index >= size. */
sf_status sf_grid_params_json(const sf_grid *grid, size_t index, sf_buf *out, sf_err *err);

/* The logic JSON with combination index's values set, as new compact JSON
 * text (*out_json, *out_len; the caller frees it). The result is not
 * validated (see sf_grid_validate). Errors: SF_ERR_PARSE (logic is not JSON),
 * SF_ERR_INVALID (a path does not fit the logic: "sweep path
 * \"indicators.fsat.period\": indicators.fsat is not in the logic"),
 * SF_ERR_LIMIT (the result exceeds SF_LOGIC_MAX_INPUT). */
sf_status sf_grid_apply(const sf_grid *grid, size_t index, const char *logic_json, size_t len, char **out_json,
                        size_t *out_len, sf_err *err);

/*
 * A cursor compiles member after member of one grid over one logic: it parses
 * the logic once, and moving to a combination sets only the paths whose value
 * differs from the previous one's, then compiles the tree in place (no text
 * is written or parsed per member). Visiting members in any order gives the
 * same results.
 *
 * sf_grid_cursor_new: errors as sf_grid_apply's for the logic text:
 * SF_ERR_LIMIT over SF_LOGIC_MAX_INPUT bytes (checked here on the base
 * logic's text; each member's text, which differs from it only in the values
 * set, is held to the same limit by sf_grid_cursor_logic), SF_ERR_PARSE (not
 * JSON), SF_ERR_NOMEM.
 *
 * sf_grid_cursor_logic: the compiled member index, as sf_logic_parse of
 * sf_grid_apply's text would give it, with the same statuses and messages
 * (err, and errs if not NULL): SF_ERR_INVALID "combination N does not exist:
 * the grid has M"; SF_ERR_INVALID when a path does not fit the logic ("sweep
 * path ...", errs->count 0), SF_ERR_LIMIT when the member's text as
 * sf_grid_apply writes it would exceed SF_LOGIC_MAX_INPUT (its length is
 * computed, the text not written) or nest too deep, and sf_logic_parse's
 * errors for an invalid member. On SF_OK *out is a new program the caller
 * frees with sf_logic_free. A failed member leaves the cursor usable.
 */
typedef struct sf_grid_cursor sf_grid_cursor;

sf_status sf_grid_cursor_new(const sf_grid *grid, const char *logic_json, size_t len, sf_grid_cursor **out,
                             sf_err *err);
sf_status sf_grid_cursor_logic(sf_grid_cursor *c, size_t index, sf_logic **out, sf_logic_errors *errs, sf_err *err);
void sf_grid_cursor_free(sf_grid_cursor *c);

/* Check that every combination gives a logic that sf_logic_parse accepts,
 * through one cursor (logic_json parsed once). On failure err names the
 * first failing combination and its values ("combination 17
 * {\"indicators.fast.period\": 0}: indicators.fast.period: must be an
 * integer >= 1"), *bad_index (if not NULL) is its index (or SIZE_MAX when
 * the paths do not fit the logic at all) and errs (if not NULL) holds all of
 * that combination's errors. */
sf_status sf_grid_validate(const sf_grid *grid, const char *logic_json, size_t len, size_t *bad_index,
                           sf_logic_errors *errs, sf_err *err);

/*
 * A bounded check, for a server that must not spend unbounded work on one
 * request: sf_grid_validate within a work budget and a deadline.
 *
 * Work is counted in bytes of member logic compiled (members x len, len at
 * least 1): at most opts->work (0 = SF_GRID_CHECK_WORK_DEFAULT). A grid that
 * fits is checked whole, in index order, exactly as sf_grid_validate. One
 * that does not gets a plan that fits, in this order: member 0 (all first
 * values: it also shows that every path fits the logic), then for each path
 * its last value, then every other value of every path, round-robin over the
 * paths (each with the other paths at their first value: every value of
 * every path is tried once when the budget allows), then members spread
 * evenly over the whole grid, the last member included, with what is left.
 * Compile time grows with len, so the member budget is work / len: the same
 * grid and logic always get the same plan.
 *
 * opts->deadline_ms (a sf_time_mono_ms() value; 0 = none) stops the plan
 * early: no member is started past it, except member 0, which is always
 * compiled. Past the deadline the result depends on the machine's speed; it
 * is never a refusal (SF_OK with report->complete 0).
 *
 * Results: as sf_grid_validate's (err, *bad_index and errs name the first
 * failing member of the plan, which need not be the lowest failing index
 * when the grid did not fit). report (may be NULL): checked is the number of
 * members compiled, complete is 1 when the plan covered every member. A grid
 * checked partly may still hold members that fail to compile; whoever runs a
 * member must compile it anyway (sf_grid_cursor_logic) and fail that member
 * with its error.
 */
#define SF_GRID_CHECK_WORK_DEFAULT ((size_t)1 << 20)

typedef struct sf_grid_check_opts {
    size_t work;         /* bytes of member logic compiled at most; 0 = the default */
    int64_t deadline_ms; /* sf_time_mono_ms() past which no member is started; 0 = none */
} sf_grid_check_opts;

typedef struct sf_grid_check_report {
    size_t checked; /* members compiled */
    int complete;   /* every member of the grid was compiled */
} sf_grid_check_report;

sf_status sf_grid_check(const sf_grid *grid, const char *logic_json, size_t len, const sf_grid_check_opts *opts,
                        sf_grid_check_report *report, size_t *bad_index, sf_logic_errors *errs, sf_err *err);

#endif
