/*
 * libFuzzer harness for the sweep cursor (sf_grid_cursor): every member it
 * compiles must equal sf_logic_parse of sf_grid_apply's text, the route it
 * replaces: the same status, message, errors and program. The input is tried
 * as a grid over a fixed logic and as a logic under a fixed grid; members are
 * visited in order, then backwards (so every path moves), so stale values
 * would show. Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf/grid.h"
#include "sf/logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LOGIC[] = "{\"name\":\"f\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"period\":5},"
                            "\"m\":{\"type\":\"macd\"}},\"entry\":{\"all\":[{\"gt\":[\"fast\",\"m.signal\"]},"
                            "{\"lt\":[\"close\",30]}]},\"risk\":{\"stop_loss_pct\":2}}";

static const char GRID[] = "{\"indicators.fast.period\":[2,0,3],\"entry.all[1].lt[1]\":[1.5,7],"
                           "\"risk.take_profit_pct\":[4,-1]}";

#define SAME(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static int same_operand(const sf_operand *a, const sf_operand *b)
{
    return a->kind == b->kind && SAME(a->number, b->number) && a->field == b->field && a->indicator == b->indicator &&
           a->output == b->output && a->offset == b->offset;
}

static int same_program(const sf_logic *a, const sf_logic *b)
{
    if (strcmp(a->name, b->name) || a->side != b->side || a->entry != b->entry || a->exit != b->exit ||
        a->fill != b->fill || a->max_offset != b->max_offset || !SAME(a->stop_loss_pct, b->stop_loss_pct) ||
        !SAME(a->take_profit_pct, b->take_profit_pct) || !SAME(a->fee_bps, b->fee_bps) ||
        !SAME(a->slippage_bps, b->slippage_bps) || !SAME(a->initial_capital, b->initial_capital) ||
        !SAME(a->position_pct, b->position_pct) || !SAME(a->periods_per_year, b->periods_per_year) ||
        a->n_indicators != b->n_indicators || a->n_conds != b->n_conds)
        return 0;
    for (int i = 0; i < a->n_indicators; i++)
        if (strcmp(a->indicators[i].name, b->indicators[i].name) ||
            memcmp(&a->indicators[i].spec, &b->indicators[i].spec, sizeof a->indicators[i].spec))
            return 0;
    for (int i = 0; i < a->n_conds; i++) {
        const sf_cond *x = &a->conds[i], *y = &b->conds[i];
        if (x->op != y->op || x->first_child != y->first_child || x->n_children != y->n_children ||
            !same_operand(&x->a, &y->a) || !same_operand(&x->b, &y->b))
            return 0;
        for (int k = 0; k < x->n_children; k++)
            if (a->children[x->first_child + k] != b->children[y->first_child + k])
                return 0;
    }
    return 1;
}

static sf_logic_errors want_errs, got_errs;
static char want_text[16384], got_text[16384];

static void check_member(const sf_grid *g, sf_grid_cursor *c, const char *logic, size_t len, size_t i)
{
    sf_logic *want = NULL, *got = NULL;
    sf_err want_err = {0}, got_err = {0};
    char *text = NULL;
    size_t tlen = 0;
    want_errs.count = want_errs.dropped = 0;
    sf_status ws = sf_grid_apply(g, i, logic, len, &text, &tlen, &want_err);
    if (ws == SF_OK)
        ws = sf_logic_parse(text, tlen, &want, &want_errs, &want_err);
    free(text);
    sf_status gs = sf_grid_cursor_logic(c, i, &got, &got_errs, &got_err);
    sf_logic_errors_format(&want_errs, want_text, sizeof want_text);
    sf_logic_errors_format(&got_errs, got_text, sizeof got_text);
    if (gs != ws || strcmp(got_err.msg, want_err.msg) || strcmp(got_text, want_text) ||
        got_errs.dropped != want_errs.dropped || (ws == SF_OK) != (got != NULL) ||
        (ws == SF_OK && !same_program(want, got)))
        __builtin_trap();
    sf_logic_free(want);
    sf_logic_free(got);
}

static void check_all(const sf_grid *g, const char *logic, size_t len)
{
    sf_grid_cursor *c = NULL;
    sf_err want = {0}, got = {0};
    char *text = NULL;
    sf_status gs = sf_grid_cursor_new(g, logic, len, &c, &got);
    if (gs != SF_OK) { /* then the text route refuses the logic too, with the same words */
        if (c != NULL || sf_grid_apply(g, 0, logic, len, &text, NULL, &want) != gs || strcmp(want.msg, got.msg))
            __builtin_trap();
        return;
    }
    size_t n = sf_grid_size(g);
    for (size_t i = 0; i < n; i++)
        check_member(g, c, logic, len, i);
    for (size_t i = n + 1; i-- > 0;) /* n: past the end */
        check_member(g, c, logic, len, i);
    sf_grid_cursor_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sf_grid *g = NULL;
    if (sf_grid_parse(text, size, 64, &g, NULL) == SF_OK) /* the input as a grid */
        check_all(g, LOGIC, sizeof LOGIC - 1);
    sf_grid_free(g);
    if (sf_grid_parse(GRID, sizeof GRID - 1, 0, &g, NULL) != SF_OK)
        __builtin_trap();
    check_all(g, text, size); /* the input as a logic */
    sf_grid_free(g);
    return 0;
}
