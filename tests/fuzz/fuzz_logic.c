/*
 * libFuzzer harness for the logic parser (sf_logic_parse) and the sweep grid
 * (sf_grid_parse, sf_grid_apply, sf_grid_validate). Beyond "no crash, no leak,
 * no UB" it checks the contract: success gives a program whose indices all
 * point inside its arrays and no errors; failure gives no program, at least
 * one error, and a message. The same input is also tried as a grid (applied
 * to and validated against a fixed logic) and as a logic that a fixed grid is
 * applied to. Build and run with scripts/fuzz.
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

static const char GRID[] = "{\"indicators.fast.period\":[2,3],\"entry.all[1].lt[1]\":[1.5]}";

static void check_operand(const sf_logic *lg, const sf_operand *o)
{
    if (o->offset < 0 || o->offset > lg->max_offset)
        __builtin_trap();
    if (o->kind == SF_OPD_OUTPUT && (o->indicator < 0 || o->indicator >= lg->n_indicators))
        __builtin_trap();
    if (o->kind == SF_OPD_FIELD && (o->field < 0 || o->field >= SF_FIELD__COUNT))
        __builtin_trap();
}

static void check_program(const sf_logic *lg)
{
    if (lg->entry < 0 || lg->entry >= lg->n_conds || lg->exit >= lg->n_conds)
        __builtin_trap();
    if (lg->n_conds > SF_LOGIC_MAX_NODES || lg->n_indicators > SF_LOGIC_MAX_INDICATORS)
        __builtin_trap();
    for (int i = 0; i < lg->n_conds; i++) {
        const sf_cond *c = &lg->conds[i];
        for (int k = 0; k < c->n_children; k++) {
            int ch = lg->children[c->first_child + k];
            if (ch <= i || ch >= lg->n_conds) /* pre-order: children come later */
                __builtin_trap();
        }
        if (c->op >= SF_COND_GT) {
            check_operand(lg, &c->a);
            check_operand(lg, &c->b);
        }
    }
}

static void check_logic(const char *text, size_t size)
{
    sf_logic *lg = NULL;
    sf_logic_errors errs;
    sf_err err = {0};
    sf_status st = sf_logic_parse(text, size, &lg, &errs, &err);
    if (st != SF_OK) {
        if (lg != NULL || errs.count < 1 || err.code != st || err.msg[0] == '\0')
            __builtin_trap();
        char out[2048];
        sf_logic_errors_format(&errs, out, sizeof out);
        return;
    }
    if (lg == NULL || errs.count != 0)
        __builtin_trap();
    check_program(lg);
    sf_logic_free(lg);
}

static void check_grid(const char *text, size_t size)
{
    sf_grid *g = NULL;
    sf_err err = {0};
    if (sf_grid_parse(text, size, 256, &g, &err) != SF_OK) {
        if (g != NULL || err.msg[0] == '\0')
            __builtin_trap();
        return;
    }
    size_t n = sf_grid_size(g);
    if (n < 1 || n > 256)
        __builtin_trap();
    char *out = NULL;
    if (sf_grid_apply(g, n - 1, LOGIC, sizeof LOGIC - 1, &out, NULL, &err) == SF_OK)
        check_logic(out, strlen(out));
    free(out);
    size_t bad;
    if (n <= 16)
        sf_grid_validate(g, LOGIC, sizeof LOGIC - 1, &bad, NULL, &err);
    /* the bounded check: at most 8 members, each a real member; none when
     * the paths do not fit the logic at all (the cursor refuses them); a
     * complete check may end on a bad last member */
    sf_grid_check_opts o = {.work = 8 * (sizeof LOGIC - 1)};
    sf_grid_check_report rep;
    sf_status st = sf_grid_check(g, LOGIC, sizeof LOGIC - 1, &o, &rep, &bad, NULL, &err);
    if ((st == SF_OK && rep.checked < 1) || rep.checked > 8 || (bad != SIZE_MAX && bad >= n) ||
        (rep.complete && rep.checked != n) || (st == SF_OK && bad != SIZE_MAX))
        __builtin_trap();
    sf_grid_free(g);
}

/* The input as a logic that a fixed grid is applied to. */
static void check_apply(const char *text, size_t size)
{
    sf_grid *g = NULL;
    if (sf_grid_parse(GRID, sizeof GRID - 1, 0, &g, NULL) != SF_OK)
        __builtin_trap();
    char *out = NULL;
    size_t len = 0;
    if (sf_grid_apply(g, 1, text, size, &out, &len, NULL) == SF_OK) {
        if (out == NULL || strlen(out) != len)
            __builtin_trap();
        check_logic(out, len);
    }
    free(out);
    sf_grid_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_logic((const char *)data, size);
    check_grid((const char *)data, size);
    check_apply((const char *)data, size);
    return 0;
}
