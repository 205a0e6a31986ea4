/* Tests for sf_grid: sizes, ranges, order, limits, apply, validate, and the
 * cursor (every member equal to sf_logic_parse of sf_grid_apply's text). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/bars.h"
#include "sf/buf.h"
#include "sf/engine.h"
#include "sf/grid.h"
#include "sf/logic.h"

static const char *LOGIC =
    "{\"name\": \"sma-cross\","
    " \"indicators\": {\"fast\": {\"type\": \"sma\", \"period\": 10},"
    "                  \"slow\": {\"type\": \"sma\", \"period\": 30}},"
    " \"entry\": {\"crosses_above\": [\"fast\", \"slow\"]},"
    " \"exit\": {\"all\": [{\"crosses_below\": [\"fast\", \"slow\"]}, {\"lt\": [\"close\", 50]}]},"
    " \"risk\": {\"stop_loss_pct\": 0.1},"
    " \"execution\": {\"fee_bps\": 10}}";

static sf_grid *grid_ok(const char *json, size_t max)
{
    sf_grid *g = NULL;
    sf_err err = {0};
    sf_status st = sf_grid_parse(json, strlen(json), max, &g, &err);
    cr_assert_eq(st, SF_OK, "%s", err.msg);
    return g;
}

static void grid_bad(const char *json, size_t max, sf_status want, const char *msg)
{
    sf_grid *g = (sf_grid *)(void *)1;
    sf_err err = {0};
    sf_status st = sf_grid_parse(json, strlen(json), max, &g, &err);
    cr_expect_eq(st, want, "%s: status %d (%s)", json, st, err.msg);
    cr_expect_null(g);
    cr_expect_str_eq(err.msg, msg, "%s", json);
}

/* params_json of combination i, in static storage. */
static const char *params(const sf_grid *g, size_t i)
{
    static char text[4096];
    sf_buf b;
    sf_buf_init(&b, sizeof text - 1);
    sf_err err = {0};
    cr_assert_eq(sf_grid_params_json(g, i, &b, &err), SF_OK, "%s", err.msg);
    memcpy(text, sf_buf_str(&b), b.len + 1);
    sf_buf_destroy(&b);
    return text;
}

static sf_logic *apply_and_compile(const sf_grid *g, size_t i, char **text)
{
    size_t len = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_apply(g, i, LOGIC, strlen(LOGIC), text, &len, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(strlen(*text), len);
    sf_logic *lg = NULL;
    cr_assert_eq(sf_logic_parse(*text, len, &lg, NULL, &err), SF_OK, "%s", err.msg);
    return lg;
}

Test(grid, size_is_the_product_of_the_value_counts)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 10, 20],"
                         " \"indicators.slow.period\": {\"from\": 20, \"to\": 100, \"step\": 10},"
                         " \"risk.stop_loss_pct\": [2, 3.5]}",
                         0);
    cr_assert_eq(sf_grid_n_params(g), 3);
    cr_assert_eq(sf_grid_param_count(g, 0), 3);
    cr_assert_eq(sf_grid_param_count(g, 1), 9);
    cr_assert_eq(sf_grid_param_count(g, 2), 2);
    cr_assert_eq(sf_grid_size(g), 54);
    cr_assert_str_eq(sf_grid_param_path(g, 1), "indicators.slow.period");
    cr_assert_null(sf_grid_param_path(g, 3));
    sf_grid_free(g);
    sf_grid_free(NULL);
}

Test(grid, last_path_varies_fastest)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 10],"
                         " \"indicators.slow.period\": {\"from\": 20, \"to\": 40, \"step\": 10}}",
                         0);
    cr_assert_eq(sf_grid_size(g), 6);
    cr_assert_str_eq(params(g, 0), "{\"indicators.fast.period\": 5, \"indicators.slow.period\": 20}");
    cr_assert_str_eq(params(g, 1), "{\"indicators.fast.period\": 5, \"indicators.slow.period\": 30}");
    cr_assert_str_eq(params(g, 2), "{\"indicators.fast.period\": 5, \"indicators.slow.period\": 40}");
    cr_assert_str_eq(params(g, 3), "{\"indicators.fast.period\": 10, \"indicators.slow.period\": 20}");
    cr_assert_str_eq(params(g, 5), "{\"indicators.fast.period\": 10, \"indicators.slow.period\": 40}");
    sf_buf b;
    sf_buf_init(&b, 100);
    sf_err err = {0};
    cr_assert_eq(sf_grid_params_json(g, 6, &b, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "combination 6 does not exist: the grid has 6");
    sf_buf_destroy(&b);
    sf_grid_free(g);
}

Test(grid, float_steps_land_on_round_values_and_include_to)
{
    /* 0.3 / 0.1 is 2.9999999999999996 in doubles: 0.3 must still be included,
     * and printed as 0.3, not 0.30000000000000004. */
    sf_grid *g = grid_ok("{\"risk.stop_loss_pct\": {\"from\": 0, \"to\": 0.3, \"step\": 0.1}}", 0);
    cr_assert_eq(sf_grid_size(g), 4);
    cr_assert_str_eq(params(g, 0), "{\"risk.stop_loss_pct\": 0.0}"); /* from 0 with a real step: reals */
    cr_assert_str_eq(params(g, 1), "{\"risk.stop_loss_pct\": 0.1}");
    cr_assert_str_eq(params(g, 2), "{\"risk.stop_loss_pct\": 0.2}");
    cr_assert_str_eq(params(g, 3), "{\"risk.stop_loss_pct\": 0.3}");
    sf_grid_free(g);

    g = grid_ok("{\"risk.stop_loss_pct\": {\"from\": 1, \"to\": 2, \"step\": 0.25}}", 0);
    cr_assert_eq(sf_grid_size(g), 5);
    cr_assert_str_eq(params(g, 1), "{\"risk.stop_loss_pct\": 1.25}");
    cr_assert_str_eq(params(g, 4), "{\"risk.stop_loss_pct\": 2.0}"); /* a real stays real */
    sf_grid_free(g);

    g = grid_ok("{\"risk.stop_loss_pct\": {\"from\": 0.5, \"to\": 1.4, \"step\": 0.3}}", 0);
    cr_assert_eq(sf_grid_size(g), 4); /* 0.5 0.8 1.1 1.4 */
    cr_assert_str_eq(params(g, 3), "{\"risk.stop_loss_pct\": 1.4}");
    sf_grid_free(g);

    g = grid_ok("{\"risk.stop_loss_pct\": {\"from\": 0, \"to\": 1, \"step\": 0.3}}", 0);
    cr_assert_eq(sf_grid_size(g), 4); /* 0 0.3 0.6 0.9; 1.2 is past to */
    cr_assert_str_eq(params(g, 3), "{\"risk.stop_loss_pct\": 0.9}");
    sf_grid_free(g);
}

Test(grid, integer_ranges_stay_integers)
{
    sf_grid *g = grid_ok("{\"indicators.slow.period\": {\"from\": 20, \"to\": 100.5, \"step\": 10}}", 0);
    cr_assert_eq(sf_grid_size(g), 9);
    cr_assert_str_eq(params(g, 8), "{\"indicators.slow.period\": 100}");
    sf_grid_free(g);
    g = grid_ok("{\"indicators.slow.period\": {\"from\": 7, \"to\": 7, \"step\": 1}}", 0);
    cr_assert_eq(sf_grid_size(g), 1);
    cr_assert_str_eq(params(g, 0), "{\"indicators.slow.period\": 7}");
    sf_grid_free(g);
}

Test(grid, combinations_over_the_limit_are_refused)
{
    grid_bad("{\"a\": {\"from\": 1, \"to\": 1000, \"step\": 1}, \"b\": {\"from\": 1, \"to\": 1000, \"step\": 1}}", 0,
             SF_ERR_LIMIT, "grid has 1000000 combinations; the limit is 100000");
    grid_bad("{\"a\": [1, 2, 3], \"b\": [1, 2, 3, 4]}", 10, SF_ERR_LIMIT, "grid has 12 combinations; the limit is 10");
    sf_grid *g = grid_ok("{\"a\": [1, 2, 3], \"b\": [1, 2, 3, 4]}", 12);
    cr_assert_eq(sf_grid_size(g), 12);
    sf_grid_free(g);
    grid_bad("{\"a\": {\"from\": 0, \"to\": 1, \"step\": 1e-9}}", 0, SF_ERR_LIMIT,
             "\"a\": range has more than 100000 values");
}

Test(grid, malformed_grids_are_refused_with_the_path)
{
    grid_bad("{\"indicators..period\": [1]}", 0, SF_ERR_INVALID,
             "\"indicators..period\": not a valid path (object keys joined by '.', array elements as [i])");
    grid_bad("{\"entry.all[01]\": [1]}", 0, SF_ERR_INVALID,
             "\"entry.all[01]\": not a valid path (object keys joined by '.', array elements as [i])");
    grid_bad("{\"[0]\": [1]}", 0, SF_ERR_INVALID,
             "\"[0]\": not a valid path (object keys joined by '.', array elements as [i])");
    grid_bad("{\"risk\": [{}], \"risk.stop_loss_pct\": [1]}", 0, SF_ERR_INVALID,
             "\"risk.stop_loss_pct\": overlaps \"risk\"");
    grid_bad("{\"a\": []}", 0, SF_ERR_INVALID, "\"a\": must not be an empty list");
    grid_bad("{\"a\": [1, null]}", 0, SF_ERR_INVALID, "\"a\"[1]: must be a number, a string or a boolean");
    grid_bad("{\"a\": 5}", 0, SF_ERR_INVALID,
             "\"a\": must be a list of values or a {\"from\", \"to\", \"step\"} range");
    grid_bad("{\"a\": {\"from\": 1, \"to\": 5, \"step\": 0}}", 0, SF_ERR_INVALID, "\"a\".step: must be a number > 0");
    grid_bad("{\"a\": {\"from\": 1, \"to\": 5}}", 0, SF_ERR_INVALID, "\"a\".step: must be a number");
    grid_bad("{\"a\": {\"from\": 5, \"to\": 1, \"step\": 1}}", 0, SF_ERR_INVALID, "\"a\": from (5) must be <= to (1)");
    grid_bad("{\"a\": {\"from\": 1, \"to\": 5, \"step\": 1, \"by\": 2}}", 0, SF_ERR_INVALID,
             "\"a\".by: unknown key (expected from, to, step)");
    grid_bad("{}", 0, SF_ERR_INVALID, "grid must name at least one path");
    grid_bad("[1]", 0, SF_ERR_INVALID, "grid must be a JSON object of path: values");
    grid_bad("{\"a\": [1],\n \"a\": [2]}", 0, SF_ERR_PARSE,
             "invalid grid JSON at line 2, column 4: duplicate object key near '\"a\"'");
    grid_bad("{\"a\": [1,}", 0, SF_ERR_PARSE, "invalid grid JSON at line 1, column 10: unexpected token near '}'");
}

Test(grid, apply_sets_every_value_and_keeps_the_rest)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 7],"
                         " \"indicators.slow.period\": {\"from\": 40, \"to\": 60, \"step\": 20},"
                         " \"risk.take_profit_pct\": [12.5],"
                         " \"exit.all[1].lt[1]\": [45, 55]}",
                         0);
    cr_assert_eq(sf_grid_size(g), 8);
    char *text = NULL;
    sf_logic *lg = apply_and_compile(g, 7, &text); /* 7, 60, 12.5, 55 */
    cr_assert_float_eq(lg->indicators[0].spec.param[SF_IP_PERIOD], 7, 0);
    cr_assert_float_eq(lg->indicators[1].spec.param[SF_IP_PERIOD], 60, 0);
    cr_assert_float_eq(lg->take_profit_pct, 12.5, 0); /* added to risk */
    cr_assert_float_eq(lg->stop_loss_pct, 0.1, 0);    /* kept */
    cr_assert_float_eq(lg->fee_bps, 10, 0);
    const sf_cond *all = &lg->conds[lg->exit];
    const sf_cond *lt = &lg->conds[lg->children[all->first_child + 1]];
    cr_assert_eq(lt->op, SF_COND_LT);
    cr_assert_float_eq(lt->b.number, 55, 0);
    cr_assert_str_eq(lg->name, "sma-cross");
    /* untouched reals are written back as the user wrote them */
    cr_assert(strstr(text, "\"stop_loss_pct\":0.1,") != NULL, "%s", text);
    cr_assert(strstr(text, "\"take_profit_pct\":12.5") != NULL, "%s", text);
    sf_logic_free(lg);
    free(text);

    lg = apply_and_compile(g, 0, &text); /* 5, 40, 12.5, 45 */
    cr_assert_float_eq(lg->indicators[0].spec.param[SF_IP_PERIOD], 5, 0);
    cr_assert_float_eq(lg->indicators[1].spec.param[SF_IP_PERIOD], 40, 0);
    sf_logic_free(lg);
    free(text);
    sf_grid_free(g);
}

Test(grid, apply_sets_strings_from_lists)
{
    sf_grid *g = grid_ok("{\"execution.fill\": [\"next_open\", \"close\"], \"side\": [\"long\", \"short\"]}", 0);
    char *text = NULL;
    sf_logic *lg = apply_and_compile(g, 3, &text);
    cr_assert_eq(lg->fill, SF_FILL_CLOSE);
    cr_assert_eq(lg->side, -1);
    sf_logic_free(lg);
    free(text);
    cr_assert_str_eq(params(g, 1), "{\"execution.fill\": \"next_open\", \"side\": \"short\"}");
    sf_grid_free(g);
}

static void apply_bad(const char *grid, const char *msg)
{
    sf_grid *g = grid_ok(grid, 0);
    char *text = (char *)(void *)1;
    sf_err err = {0};
    cr_expect_eq(sf_grid_apply(g, 0, LOGIC, strlen(LOGIC), &text, NULL, &err), SF_ERR_INVALID);
    cr_expect_null(text);
    cr_expect_str_eq(err.msg, msg);
    sf_grid_free(g);
}

Test(grid, apply_names_the_part_of_the_path_missing_from_the_logic)
{
    apply_bad("{\"indicators.fsat.period\": [5]}",
              "sweep path \"indicators.fsat.period\": indicators.fsat is not in the logic");
    apply_bad("{\"capital.initial\": [5]}", "sweep path \"capital.initial\": capital is not in the logic");
    apply_bad("{\"name.x\": [5]}", "sweep path \"name.x\": name is not an object");
    apply_bad("{\"exit.all[2]\": [5]}", "sweep path \"exit.all[2]\": exit.all[2] is not in the logic");
    apply_bad("{\"exit[0]\": [5]}", "sweep path \"exit[0]\": exit is not an array");
}

Test(grid, apply_refuses_a_bad_logic_or_index)
{
    sf_grid *g = grid_ok("{\"a\": [1]}", 0);
    char *text = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_grid_apply(g, 0, "{\"a\": ", 6, &text, NULL, &err), SF_ERR_PARSE);
    cr_assert_eq(sf_grid_apply(g, 1, LOGIC, strlen(LOGIC), &text, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(sf_grid_apply(g, 0, "[]", 2, &text, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "logic must be a JSON object");
    sf_grid_free(g);
}

Test(grid, validate_accepts_a_grid_whose_every_combination_compiles)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": {\"from\": 2, \"to\": 20, \"step\": 1},"
                         " \"indicators.slow.period\": {\"from\": 30, \"to\": 300, \"step\": 10},"
                         " \"risk.stop_loss_pct\": [1, 2.5, 5]}",
                         0);
    cr_assert_eq(sf_grid_size(g), 19 * 28 * 3);
    size_t bad = 0;
    sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(sf_grid_validate(g, LOGIC, strlen(LOGIC), &bad, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(e.count, 0);
    sf_grid_free(g);
}

Test(grid, validate_reports_the_first_failing_combination_with_its_values)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 0, 10],"
                         " \"indicators.slow.period\": [20, 30]}",
                         0);
    size_t bad = 0;
    sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(sf_grid_validate(g, LOGIC, strlen(LOGIC), &bad, &e, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 2);
    cr_assert_str_eq(err.msg, "combination 2 {\"indicators.fast.period\": 0, "
                              "\"indicators.slow.period\": 20}: indicators.fast.period: "
                              "must be an integer >= 1");
    cr_assert_eq(e.count, 1);
    cr_assert_str_eq(e.path[0], "indicators.fast.period");
    sf_grid_free(g);
}

Test(grid, validate_finds_a_failure_late_in_the_grid)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": {\"from\": 1, \"to\": 50, \"step\": 1},"
                         " \"risk.stop_loss_pct\": {\"from\": 10, \"to\": 100, \"step\": 10}}",
                         0);
    size_t bad = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_validate(g, LOGIC, strlen(LOGIC), &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 9); /* fast 1, stop 100 */
    cr_assert_str_eq(err.msg, "combination 9 {\"indicators.fast.period\": 1, "
                              "\"risk.stop_loss_pct\": 100}: risk.stop_loss_pct: "
                              "must be a number > 0 and < 100");
    sf_grid_free(g);
}

Test(grid, validate_reports_paths_that_do_not_fit_the_logic)
{
    sf_grid *g = grid_ok("{\"indicators.fsat.period\": [5, 6]}", 0);
    size_t bad = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_validate(g, LOGIC, strlen(LOGIC), &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_str_eq(err.msg, "sweep path \"indicators.fsat.period\": indicators.fsat is not in the logic");
    sf_grid_free(g);
}

Test(grid, apply_is_deterministic_and_matches_validate_order)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [3, 4], \"risk.stop_loss_pct\": [1.5, 2.5]}", 0);
    char *a = NULL, *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_grid_apply(g, 2, LOGIC, strlen(LOGIC), &a, NULL, &err), SF_OK);
    cr_assert_eq(sf_grid_apply(g, 2, LOGIC, strlen(LOGIC), &b, NULL, &err), SF_OK);
    cr_assert_str_eq(a, b);
    cr_assert(strstr(a, "\"fast\":{\"type\":\"sma\",\"period\":4}") != NULL, "%s", a);
    cr_assert(strstr(a, "\"stop_loss_pct\":1.5") != NULL, "%s", a);
    free(a);
    free(b);
    sf_grid_free(g);
}

/* ---- the cursor against the text route ----------------------------------- */

/* One member's outcome: status, err, errors and program. */
typedef struct member {
    sf_status st;
    sf_err err;
    sf_logic_errors errs;
    sf_logic *lg;
} member;

/* The route the worker took per member: sf_grid_apply, then sf_logic_parse. */
static void text_member(const sf_grid *g, const char *logic, size_t len, size_t i, member *m)
{
    memset(m, 0, sizeof *m);
    char *text = NULL;
    size_t tlen = 0;
    m->st = sf_grid_apply(g, i, logic, len, &text, &tlen, &m->err);
    if (m->st == SF_OK)
        m->st = sf_logic_parse(text, tlen, &m->lg, &m->errs, &m->err);
    free(text);
}

static void cursor_member(sf_grid_cursor *c, size_t i, member *m)
{
    memset(m, 0, sizeof *m);
    m->errs.count = 99; /* the cursor must reset it */
    m->st = sf_grid_cursor_logic(c, i, &m->lg, &m->errs, &m->err);
}

/* 300 daily bars around 50 (the test logic exits below 50), swinging so
 * that moving averages of 3 to 30 bars cross many times. */
static sf_bars *wave_bars(void)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(300, &b, NULL), SF_OK);
    double prev = 50;
    for (size_t i = 0; i < b->n; i++) {
        double c = 50 + 8 * sin((double)i / 9.0) + 3 * sin((double)i / 2.3) + (double)(i % 7) * 0.1;
        b->ts[i] = 1704067200 + (int64_t)i * 86400;
        b->open[i] = prev;
        b->close[i] = c;
        b->high[i] = fmax(prev, c) + 0.5;
        b->low[i] = fmin(prev, c) - 0.5;
        b->volume[i] = 1000 + (double)i;
        prev = c;
    }
    cr_assert_eq(sf_bars_validate(b, NULL), SF_OK);
    return b;
}

/* Doubles compared as bits: NaN equals NaN, -0 differs from 0. */
#define SAME_BITS(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static void assert_same_run(const sf_logic *a, const sf_logic *b, const sf_bars *bars, size_t i)
{
    sf_result *ra = NULL, *rb = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_engine_run(a, bars, NULL, &ra, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_engine_run(b, bars, NULL, &rb, &err), SF_OK, "%s", err.msg);
    cr_assert(memcmp(&ra->perf, &rb->perf, sizeof ra->perf) == 0, "combination %zu: metrics", i);
    cr_assert_eq(ra->n_trades, rb->n_trades, "combination %zu", i);
    for (size_t k = 0; k < ra->n_trades; k++) {
        const sf_trade *x = &ra->trades[k], *y = &rb->trades[k];
        cr_assert(x->side == y->side && x->entry_time == y->entry_time && x->exit_time == y->exit_time &&
                      x->exit_reason == y->exit_reason && SAME_BITS(x->entry_price, y->entry_price) &&
                      SAME_BITS(x->exit_price, y->exit_price) && SAME_BITS(x->qty, y->qty) &&
                      SAME_BITS(x->pnl, y->pnl) && SAME_BITS(x->fees, y->fees),
                  "combination %zu: trade %zu", i, k);
    }
    cr_assert_eq(ra->n_equity, rb->n_equity);
    cr_assert(memcmp(ra->equity, rb->equity, ra->n_equity * sizeof *ra->equity) == 0, "combination %zu: equity", i);
    sf_result_free(ra);
    sf_result_free(rb);
}

/* Same status, messages and errors; for a valid member the same backtest
 * (bars NULL: compare the status and errors only). */
static void assert_same_member(member *want, member *got, const sf_bars *bars, size_t i)
{
    cr_assert_eq(got->st, want->st, "combination %zu: want %s (%s), got %s (%s)", i, sf_status_name(want->st),
                 want->err.msg, sf_status_name(got->st), got->err.msg);
    cr_assert_eq(got->err.code, want->err.code, "combination %zu", i);
    cr_assert_str_eq(got->err.msg, want->err.msg, "combination %zu", i);
    static char fw[16384], fg[16384];
    sf_logic_errors_format(&want->errs, fw, sizeof fw);
    sf_logic_errors_format(&got->errs, fg, sizeof fg);
    cr_assert_str_eq(fg, fw, "combination %zu", i);
    cr_assert_eq(got->errs.count, want->errs.count, "combination %zu", i);
    cr_assert_eq(got->errs.dropped, want->errs.dropped, "combination %zu", i);
    if (want->st != SF_OK) {
        cr_assert_null(got->lg, "combination %zu", i);
    } else {
        cr_assert_not_null(got->lg);
        if (bars != NULL)
            assert_same_run(want->lg, got->lg, bars, i);
    }
    sf_logic_free(want->lg);
    sf_logic_free(got->lg);
    want->lg = got->lg = NULL;
}

/* A permutation of 0..n-1 from a fixed seed (xorshift, Fisher-Yates). */
static void shuffle(size_t *order, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        size_t j = (size_t)(seed % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

typedef struct tally {
    size_t ok, failed;
} tally;

/* Every index in order, then twice in shuffled orders, each with an index
 * past the end now and then (which must not move the cursor), each member
 * compared with the text route. */
static tally cursor_matches_text(const char *grid_json, const char *logic, size_t len, const sf_bars *bars)
{
    sf_grid *g = grid_ok(grid_json, 0);
    size_t n = sf_grid_size(g);
    sf_grid_cursor *c = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_grid_cursor_new(g, logic, len, &c, &err), SF_OK, "%s", err.msg);
    size_t *order = malloc(3 * n * sizeof *order);
    cr_assert_not_null(order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    shuffle(order + n, n, 0x9e3779b97f4a7c15ULL);
    shuffle(order + 2 * n, n, 12345);
    static member want, got;
    tally t = {0, 0};
    for (size_t k = 0; k < 3 * n; k++) {
        size_t i = order[k];
        text_member(g, logic, len, i, &want);
        cursor_member(c, i, &got);
        t.ok += want.st == SF_OK;
        t.failed += want.st != SF_OK;
        assert_same_member(&want, &got, bars, i);
        if (k % 5 == 4) {
            text_member(g, logic, len, n + k, &want);
            cursor_member(c, n + k, &got);
            cr_assert_eq(got.st, SF_ERR_INVALID);
            assert_same_member(&want, &got, bars, n + k);
        }
    }
    free(order);
    sf_grid_cursor_free(c);
    sf_grid_free(g);
    return t;
}

Test(grid, cursor_members_equal_the_text_route_in_any_order)
{
    sf_bars *bars = wave_bars();
    /* 36 members: fast 0 is invalid, take_profit_pct is added to risk and -1
     * is invalid (both at once: two errors). */
    tally t = cursor_matches_text("{\"indicators.fast.period\": [0, 3, 5, 8],"
                                  " \"indicators.slow.period\":"
                                  " {\"from\": 10, \"to\": 30, \"step\": 10},"
                                  " \"risk.take_profit_pct\": [3, 7.25, -1]}",
                                  LOGIC, strlen(LOGIC), bars);
    cr_assert_eq(t.ok + t.failed, 3 * 36);
    cr_assert_eq(t.ok, 3 * 3 * 3 * 2);
    /* strings, an array element, reals; "bogus" and "both" are invalid */
    t = cursor_matches_text("{\"execution.fill\": [\"close\", \"bogus\", \"next_open\"],"
                            " \"side\": [\"long\", \"short\", \"both\"],"
                            " \"exit.all[1].lt[1]\": [45, 50.5, 55]}",
                            LOGIC, strlen(LOGIC), bars);
    cr_assert_eq(t.ok, 3 * 2 * 2 * 3);
    cr_assert_eq(t.failed, 3 * 27 - t.ok);
    sf_bars_free(bars);
}

Test(grid, cursor_gives_the_text_routes_errors_for_paths_that_do_not_fit)
{
    tally t = cursor_matches_text("{\"indicators.fast.period\": [5, 6],"
                                  " \"indicators.fsat.period\": [1, 2, 3]}",
                                  LOGIC, strlen(LOGIC), NULL);
    cr_assert_eq(t.ok, 0);
    t = cursor_matches_text("{\"exit.all[2]\": [1, 2]}", LOGIC, strlen(LOGIC), NULL);
    cr_assert_eq(t.ok, 0);
    t = cursor_matches_text("{\"indicators.fast.period\": [5, 6]}", "[1]", 3, NULL);
    cr_assert_eq(t.ok, 0);
}

Test(grid, cursor_refuses_the_logic_text_as_apply_does)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 6]}", 0);
    sf_grid_cursor *c = (sf_grid_cursor *)(void *)1;
    char *text = NULL;
    sf_err want = {0}, got = {0};
    cr_assert_eq(sf_grid_apply(g, 0, "{\"a\": ", 6, &text, NULL, &want), SF_ERR_PARSE);
    cr_assert_eq(sf_grid_cursor_new(g, "{\"a\": ", 6, &c, &got), SF_ERR_PARSE);
    cr_assert_null(c);
    cr_assert_str_eq(got.msg, want.msg);
    size_t big = SF_LOGIC_MAX_INPUT + 1;
    cr_assert_eq(sf_grid_apply(g, 0, LOGIC, big, &text, NULL, &want), SF_ERR_LIMIT);
    cr_assert_eq(sf_grid_cursor_new(g, LOGIC, big, &c, &got), SF_ERR_LIMIT);
    cr_assert_str_eq(got.msg, want.msg);
    cr_assert_str_eq(got.msg, "logic is 1048577 bytes; the limit is 1048576");
    sf_grid_cursor_free(NULL);
    sf_grid_free(g);
}

/* A compact logic padded by pad bytes of description after extra. */
static char *pad_logic(size_t pad, const char *extra, size_t *len)
{
    sf_buf b;
    sf_buf_init(&b, SIZE_MAX);
    sf_buf_puts(&b, "{\"name\":\"big\",\"description\":\"", NULL);
    sf_buf_puts(&b, extra, NULL);
    for (size_t i = 0; i < pad; i++)
        sf_buf_append(&b, "x", 1, NULL);
    sf_buf_puts(&b,
                "\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"period\":10},"
                "\"slow\":{\"type\":\"sma\",\"period\":30}},"
                "\"entry\":{\"crosses_above\":[\"fast\",\"slow\"]},"
                "\"risk\":{\"stop_loss_pct\":0.1}}",
                NULL);
    return sf_buf_steal(&b, len);
}

/* A logic whose member 0 sf_grid_apply writes in exactly target bytes. */
static char *padded_logic(const sf_grid *g, size_t target, const char *extra, size_t *len)
{
    char *logic = pad_logic(64, extra, len), *text = NULL;
    size_t written = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_apply(g, 0, logic, *len, &text, &written, &err), SF_OK, "%s", err.msg);
    free(text);
    free(logic);
    logic = pad_logic(64 + target - written, extra, len);
    sf_status st = sf_grid_apply(g, 0, logic, *len, &text, &written, &err);
    if (target <= SF_LOGIC_MAX_INPUT) {
        cr_assert_eq(st, SF_OK, "%s", err.msg);
        cr_assert_eq(written, target);
    } else {
        cr_assert_eq(st, SF_ERR_LIMIT);
    }
    free(text);
    return logic;
}

Test(grid, cursor_keeps_the_member_text_limit_exactly)
{
    /* Written lengths: period "5" / "123456789012" / "7", stop "1" / "2.125".
     * (5, 1) is written in MAX - 4 bytes, so (5, 2.125) takes exactly MAX:
     * still accepted; a 12-digit period is over by 7 or 11 bytes. */
    const char *grid = "{\"indicators.fast.period\": [5, 123456789012, 7],"
                       " \"risk.stop_loss_pct\": [1, 2.125]}";
    sf_grid *g = grid_ok(grid, 0);
    size_t len = 0;
    char *logic = padded_logic(g, SF_LOGIC_MAX_INPUT - 4, "", &len);
    cr_assert_leq(len, SF_LOGIC_MAX_INPUT);
    tally t = cursor_matches_text(grid, logic, len, NULL);
    cr_assert_eq(t.ok, 3 * 4);
    cr_assert_eq(t.failed, 3 * 2);
    member m;
    sf_grid_cursor *c = NULL;
    cr_assert_eq(sf_grid_cursor_new(g, logic, len, &c, NULL), SF_OK);
    cursor_member(c, 2, &m);
    cr_assert_eq(m.st, SF_ERR_LIMIT);
    cr_assert_str_eq(m.err.msg, "buffer would exceed its maximum of 1048576 bytes");
    cursor_member(c, 1, &m); /* exactly at the limit */
    cr_assert_eq(m.st, SF_OK, "%s", m.err.msg);
    sf_logic_free(m.lg);
    sf_grid_cursor_free(c);
    free(logic);

    /* Escapes written longer than they were read ("\n" becomes "\u000a"):
     * the text fits, every member's written text does not. */
    logic = padded_logic(g, SF_LOGIC_MAX_INPUT + 20, "\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n", &len);
    cr_assert_leq(len, SF_LOGIC_MAX_INPUT);
    t = cursor_matches_text(grid, logic, len, NULL);
    cr_assert_eq(t.ok, 0);
    free(logic);
    sf_grid_free(g);
}

Test(grid, cursor_handles_a_logic_nested_deeper_than_the_writer_allows)
{
    sf_buf b;
    sf_buf_init(&b, SIZE_MAX);
    sf_buf_puts(&b, "{\"name\": \"deep\", \"description\": ", NULL);
    for (int i = 0; i < 300; i++)
        sf_buf_append(&b, "[", 1, NULL);
    for (int i = 0; i < 300; i++)
        sf_buf_append(&b, "]", 1, NULL);
    sf_buf_puts(&b,
                ", \"indicators\": {\"fast\": {\"type\": \"sma\", \"period\": 10}},"
                " \"entry\": {\"gt\": [\"fast\", \"close\"]}}",
                NULL);
    /* every member: "logic JSON nests deeper than 256 levels" */
    tally t = cursor_matches_text("{\"indicators.fast.period\": [5, 0]}", b.data, b.len, NULL);
    cr_assert_eq(t.ok, 0);
    /* the deep part replaced: members compile, or not */
    sf_bars *bars = wave_bars();
    t = cursor_matches_text("{\"description\": [\"x\", 5], \"indicators.fast.period\": [5, 0]}", b.data, b.len, bars);
    cr_assert_eq(t.ok, 3);
    sf_bars_free(bars);
    sf_buf_destroy(&b);
}

Test(grid, validate_through_the_cursor_matches_each_member)
{
    /* The first failing member is the first the text route fails. */
    const char *grid = "{\"indicators.fast.period\": [3, 5, 8],"
                       " \"risk.take_profit_pct\": [3, 7.25, -1]}";
    sf_grid *g = grid_ok(grid, 0);
    size_t bad = 0;
    static sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(sf_grid_validate(g, LOGIC, strlen(LOGIC), &bad, &e, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 2);
    cr_assert_str_eq(err.msg, "combination 2 {\"indicators.fast.period\": 3, "
                              "\"risk.take_profit_pct\": -1}: risk.take_profit_pct: "
                              "must be a number > 0");
    static member want;
    text_member(g, LOGIC, strlen(LOGIC), 2, &want);
    static char fw[4096], fe[4096];
    sf_logic_errors_format(&want.errs, fw, sizeof fw);
    sf_logic_errors_format(&e, fe, sizeof fe);
    cr_assert_str_eq(fe, fw);
    sf_grid_free(g);
}

/* ---- bounded checks (sf_grid_check) ---------------------------------------------------- */

static sf_grid_check_opts members_of(size_t members)
{
    return (sf_grid_check_opts){.work = members * strlen(LOGIC)};
}

Test(grid, check_of_a_grid_within_the_budget_is_validate)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 0, 10], \"indicators.slow.period\": [20, 30]}", 0);
    sf_grid_check_report rep = {99, 99};
    size_t bad = 0;
    sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), NULL, &rep, &bad, &e, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 2);
    cr_assert_str_eq(err.msg, "combination 2 {\"indicators.fast.period\": 0, "
                              "\"indicators.slow.period\": 20}: indicators.fast.period: "
                              "must be an integer >= 1");
    cr_assert_eq(rep.checked, 3);
    cr_assert_eq(rep.complete, 0);
    sf_grid_free(g);
    g = grid_ok("{\"indicators.fast.period\": {\"from\": 2, \"to\": 20, \"step\": 1}}", 0);
    sf_grid_check_opts o = members_of(19);
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rep.checked, 19);
    cr_assert_eq(rep.complete, 1);
    cr_assert_eq(bad, SIZE_MAX);
    sf_grid_free(g);
}

Test(grid, check_over_the_budget_tries_every_value_of_every_path)
{
    /* 20 x 30 = 600 members, 60 may be compiled: member 0, the two last
     * values, then fast and slow value 1, 2, ...: slow's 0 (value 15) is
     * the 33rd member compiled. */
    char grid[512];
    snprintf(grid, sizeof grid,
             "{\"indicators.fast.period\": {\"from\": 2, \"to\": 21, \"step\": 1},"
             " \"indicators.slow.period\": [%s0%s]}",
             "30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, ",
             ", 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59");
    sf_grid *g = grid_ok(grid, 0);
    cr_assert_eq(sf_grid_size(g), 600);
    sf_grid_check_opts o = members_of(60);
    sf_grid_check_report rep;
    size_t bad = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 15);
    cr_assert_str_eq(err.msg, "combination 15 {\"indicators.fast.period\": 2, "
                              "\"indicators.slow.period\": 0}: indicators.slow.period: "
                              "must be an integer >= 1");
    cr_assert_eq(rep.checked, 33);
    cr_assert_eq(rep.complete, 0);
    sf_grid_free(g);
}

Test(grid, check_spends_what_is_left_on_members_spread_over_the_grid)
{
    /* lt [5, 50] compares two constants: only members with both values
     * fail, and no member of the axes has both (each varies one path). */
    const char *grid = "{\"exit.all[1].lt[0]\": [\"close\", 5],"
                       " \"indicators.fast.period\": {\"from\": 2, \"to\": 201, \"step\": 1},"
                       " \"exit.all[1].lt[1]\": [\"open\", 50]}";
    sf_grid *g = grid_ok(grid, 0);
    cr_assert_eq(sf_grid_size(g), 800);
    sf_grid_check_opts o = members_of(202); /* member 0, 3 last values, 198 other values */
    sf_grid_check_report rep;
    size_t bad = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rep.checked, 202);
    cr_assert_eq(rep.complete, 0);
    /* 98 more: the j-th at j/98 of the grid; j = 50 is member 407: 5, period 5, 50 */
    o = members_of(300);
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 407);
    cr_assert(strstr(err.msg, "compares two constants") != NULL, "%s", err.msg);
    cr_assert_eq(rep.checked, 252);
    /* with no budget to speak of, member 0 is still compiled */
    o = (sf_grid_check_opts){.work = 1};
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_OK);
    cr_assert_eq(rep.checked, 1);
    sf_grid_free(g);
}

Test(grid, check_past_its_deadline_compiles_member_0_only)
{
    sf_grid *g = grid_ok("{\"indicators.fast.period\": [5, 0, 10]}", 0);
    sf_grid_check_opts o = {.deadline_ms = 1}; /* long past */
    sf_grid_check_report rep;
    size_t bad = 0;
    sf_err err = {0};
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rep.checked, 1);
    cr_assert_eq(rep.complete, 0);
    cr_assert_eq(bad, SIZE_MAX);
    sf_grid_free(g);
    /* member 0 is checked whatever the time: a path that does not fit, or a bad first value */
    g = grid_ok("{\"indicators.fsat.period\": [5, 6]}", 0);
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "sweep path \"indicators.fsat.period\": indicators.fsat is not in the logic");
    sf_grid_free(g);
    g = grid_ok("{\"indicators.fast.period\": [0, 5]}", 0);
    cr_assert_eq(sf_grid_check(g, LOGIC, strlen(LOGIC), &o, &rep, &bad, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(bad, 0);
    sf_grid_free(g);
}
