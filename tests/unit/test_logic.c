/* Tests for sf_logic: valid logics compile to the expected program, invalid
 * ones give every error with its exact path and message. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/logic.h"
#include "logic_json.h" /* the engine-private tree entry point */

#define DATA SF_SOURCE_DIR "/tests/data/logic"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "could not open %s", path);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[*len] = '\0';
    char *copy = malloc(*len + 1);
    memcpy(copy, buf, *len + 1);
    return copy;
}

static sf_logic *compile_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, DATA "/valid/%s", name);
    size_t len;
    char *text = read_file(path, &len);
    sf_logic *lg = NULL;
    sf_logic_errors errs;
    sf_err err = {0};
    sf_status st = sf_logic_parse(text, len, &lg, &errs, &err);
    free(text);
    cr_assert_eq(st, SF_OK, "%s: %s", name, err.msg);
    cr_assert_eq(errs.count, 0);
    return lg;
}

static sf_status parse_str(const char *json, sf_logic **lg, sf_logic_errors *errs, sf_err *err)
{
    return sf_logic_parse(json, strlen(json), lg, errs, err);
}

static void assert_output(const sf_operand *o, int ind, int out, int offset)
{
    cr_assert_eq(o->kind, SF_OPD_OUTPUT);
    cr_assert_eq(o->indicator, ind);
    cr_assert_eq(o->output, out);
    cr_assert_eq(o->offset, offset);
}

static void assert_field(const sf_operand *o, sf_field f, int offset)
{
    cr_assert_eq(o->kind, SF_OPD_FIELD);
    cr_assert_eq(o->field, f);
    cr_assert_eq(o->offset, offset);
}

static void assert_number(const sf_operand *o, double v)
{
    cr_assert_eq(o->kind, SF_OPD_NUMBER);
    cr_assert_float_eq(o->number, v, 0);
}

static const sf_cond *child(const sf_logic *lg, const sf_cond *c, int k)
{
    cr_assert(k < c->n_children);
    return &lg->conds[lg->children[c->first_child + k]];
}

/* ---- valid logics ------------------------------------------------------- */

Test(logic, design_example_compiles_to_two_smas_and_two_crosses)
{
    sf_logic *lg = compile_file("sma_cross.json");
    cr_assert_str_eq(lg->name, "sma-cross");
    cr_assert_eq(lg->n_indicators, 2);
    cr_assert_str_eq(lg->indicators[0].name, "fast");
    cr_assert_str_eq(lg->indicators[1].name, "slow");
    cr_assert_eq(lg->indicators[0].spec.type, SF_IND_SMA);
    cr_assert_eq(lg->indicators[0].spec.source, SF_FIELD_CLOSE);
    cr_assert_float_eq(lg->indicators[0].spec.param[SF_IP_PERIOD], 10, 0);
    cr_assert_float_eq(lg->indicators[1].spec.param[SF_IP_PERIOD], 30, 0);
    cr_assert_eq(lg->n_conds, 2);
    const sf_cond *entry = &lg->conds[lg->entry];
    cr_assert_eq(entry->op, SF_COND_CROSSES_ABOVE);
    assert_output(&entry->a, 0, 0, 0);
    assert_output(&entry->b, 1, 0, 0);
    cr_assert_eq(lg->conds[lg->exit].op, SF_COND_CROSSES_BELOW);
    cr_assert_eq(lg->side, 1);
    cr_assert_float_eq(lg->stop_loss_pct, 5, 0);
    cr_assert_float_eq(lg->take_profit_pct, 10, 0);
    cr_assert_eq(lg->fill, SF_FILL_NEXT_OPEN);
    cr_assert_float_eq(lg->fee_bps, 10, 0);
    cr_assert_float_eq(lg->slippage_bps, 0, 0);
    cr_assert_float_eq(lg->initial_capital, 10000, 0);
    cr_assert_float_eq(lg->position_pct, 100, 0);
    cr_assert_float_eq(lg->periods_per_year, 252, 0);
    cr_assert_eq(lg->max_offset, 0);
    sf_logic_free(lg);
}

Test(logic, minimal_logic_gets_the_documented_defaults)
{
    sf_logic *lg = compile_file("minimal.json");
    cr_assert_eq(lg->side, 1);
    cr_assert_eq(lg->fill, SF_FILL_NEXT_OPEN);
    cr_assert_float_eq(lg->periods_per_year, 252, 0);
    cr_assert_float_eq(lg->fee_bps, 0, 0);
    cr_assert_float_eq(lg->slippage_bps, 0, 0);
    cr_assert_float_eq(lg->initial_capital, 10000, 0);
    cr_assert_float_eq(lg->position_pct, 100, 0);
    cr_assert(isnan(lg->stop_loss_pct));
    cr_assert(isnan(lg->take_profit_pct));
    cr_assert_eq(lg->exit, -1);
    cr_assert_eq(lg->n_indicators, 0);
    cr_assert_eq(lg->n_conds, 1);
    cr_assert_eq(lg->conds[lg->entry].op, SF_COND_GT);
    assert_field(&lg->conds[lg->entry].a, SF_FIELD_CLOSE, 0);
    assert_number(&lg->conds[lg->entry].b, 100);
    sf_logic_free(lg);
}

Test(logic, nested_tree_with_outputs_refs_and_options_compiles_exactly)
{
    sf_logic *lg = compile_file("macd_rsi_short.json");
    /* sorted by name: bb, macd_1, rsi14 */
    cr_assert_eq(lg->n_indicators, 3);
    cr_assert_str_eq(lg->indicators[0].name, "bb");
    cr_assert_str_eq(lg->indicators[1].name, "macd_1");
    cr_assert_str_eq(lg->indicators[2].name, "rsi14");
    const sf_ind_spec *macd = &lg->indicators[1].spec;
    cr_assert_eq(macd->type, SF_IND_MACD);
    cr_assert_eq(macd->source, SF_FIELD_OPEN);
    cr_assert_float_eq(macd->param[SF_IP_FAST], 8, 0);
    cr_assert_float_eq(macd->param[SF_IP_SLOW], 21, 0);
    cr_assert_float_eq(macd->param[SF_IP_SIGNAL], 5, 0);
    cr_assert_float_eq(lg->indicators[2].spec.param[SF_IP_PERIOD], 14, 0); /* default */
    cr_assert_float_eq(lg->indicators[0].spec.param[SF_IP_STDDEV], 2.5, 0);
    cr_assert_float_eq(lg->indicators[0].spec.param[SF_IP_PERIOD], 20, 0);

    const sf_cond *all = &lg->conds[lg->entry];
    cr_assert_eq(all->op, SF_COND_ALL);
    cr_assert_eq(all->n_children, 3);
    const sf_cond *cross = child(lg, all, 0);
    cr_assert_eq(cross->op, SF_COND_CROSSES_BELOW);
    assert_output(&cross->a, 1, 0, 0);
    assert_output(&cross->b, 1, 1, 0);
    const sf_cond *any = child(lg, all, 1);
    cr_assert_eq(any->op, SF_COND_ANY);
    cr_assert_eq(any->n_children, 2);
    cr_assert_eq(child(lg, any, 0)->op, SF_COND_GT);
    assert_output(&child(lg, any, 0)->a, 2, 0, 0);
    assert_number(&child(lg, any, 0)->b, 70);
    cr_assert_eq(child(lg, any, 1)->op, SF_COND_GTE);
    assert_field(&child(lg, any, 1)->a, SF_FIELD_CLOSE, 0);
    assert_output(&child(lg, any, 1)->b, 0, 2, 0); /* bb.upper */
    const sf_cond *not = child(lg, all, 2);
    cr_assert_eq(not ->op, SF_COND_NOT);
    cr_assert_eq(not ->n_children, 1);
    cr_assert_eq(child(lg, not, 0)->op, SF_COND_LT);
    assert_field(&child(lg, not, 0)->b, SF_FIELD_CLOSE, 5);

    const sf_cond *exit = &lg->conds[lg->exit];
    cr_assert_eq(exit->op, SF_COND_LTE);
    assert_output(&exit->a, 1, 2, 2); /* macd_1.hist, 2 bars back */
    assert_number(&exit->b, 0);
    cr_assert_eq(lg->n_conds, 8);
    cr_assert_eq(lg->max_offset, 5);
    cr_assert_eq(lg->side, -1);
    cr_assert_eq(lg->fill, SF_FILL_CLOSE);
    cr_assert_float_eq(lg->periods_per_year, 365, 0);
    cr_assert_float_eq(lg->stop_loss_pct, 2.5, 0);
    cr_assert(isnan(lg->take_profit_pct));
    cr_assert_float_eq(lg->fee_bps, 5, 0);
    cr_assert_float_eq(lg->slippage_bps, 2, 0);
    cr_assert_float_eq(lg->initial_capital, 50000, 0);
    cr_assert_float_eq(lg->position_pct, 50, 0);
    sf_logic_free(lg);
}

Test(logic, every_indicator_type_is_accepted)
{
    sf_logic *lg = compile_file("every_type.json");
    cr_assert_eq(lg->n_indicators, SF_IND__COUNT);
    int seen[SF_IND__COUNT] = {0};
    for (int i = 0; i < lg->n_indicators; i++)
        seen[lg->indicators[i].spec.type]++;
    for (int t = 0; t < SF_IND__COUNT; t++)
        cr_assert_eq(seen[t], 1, "type %d seen %d times", t, seen[t]);
    cr_assert_eq(lg->conds[lg->entry].n_children, 18);
    cr_assert_eq(lg->max_offset, 10);
    cr_assert_eq(lg->indicators[1].spec.source, SF_FIELD_HIGH);  /* b_ema */
    cr_assert_eq(lg->indicators[11].spec.source, SF_FIELD_HIGH); /* l_hi default */
    sf_logic_free(lg);
}

Test(logic, every_valid_fixture_compiles)
{
    DIR *d = opendir(DATA "/valid");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".json") == NULL)
            continue;
        sf_logic_free(compile_file(de->d_name));
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 4);
}

Test(logic, indicator_order_does_not_depend_on_json_order)
{
    const char *a = "{\"name\":\"x\",\"indicators\":{\"b\":{\"type\":\"ema\",\"period\":3},"
                    "\"a\":{\"type\":\"sma\",\"period\":5}},\"entry\":{\"gt\":[\"a\",\"b\"]}}";
    const char *b = "{\"name\":\"x\",\"indicators\":{\"a\":{\"type\":\"sma\",\"period\":5},"
                    "\"b\":{\"type\":\"ema\",\"period\":3}},\"entry\":{\"gt\":[\"a\",\"b\"]}}";
    sf_logic *la = NULL, *lb = NULL;
    cr_assert_eq(parse_str(a, &la, NULL, NULL), SF_OK);
    cr_assert_eq(parse_str(b, &lb, NULL, NULL), SF_OK);
    cr_assert_str_eq(la->indicators[0].name, "a");
    cr_assert_eq(memcmp(la->indicators, lb->indicators, 2 * sizeof *la->indicators), 0);
    cr_assert_eq(memcmp(&la->conds[0], &lb->conds[0], sizeof la->conds[0]), 0);
    assert_output(&la->conds[0].a, 0, 0, 0);
    assert_output(&la->conds[0].b, 1, 0, 0);
    sf_logic_free(la);
    sf_logic_free(lb);
}

/* ---- invalid logics ----------------------------------------------------- */

typedef struct bad_case {
    const char *json;
    sf_status status;
    int count;         /* errors expected */
    const char *first; /* "path: message" of the first */
} bad_case;

#define IND(body) "{\"name\":\"x\",\"indicators\":{" body "},\"entry\":{\"gt\":[\"close\",1]}}"
#define ENTRY(cond)                                                                                                    \
    "{\"name\":\"x\",\"indicators\":{\"macd_1\":{\"type\":\"macd\"},"                                                  \
    "\"fast\":{\"type\":\"sma\",\"period\":5}},\"entry\":" cond "}"

static const bad_case bad_cases[] = {
    {IND("\"fast\":{\"type\":\"smaa\",\"period\":10}"), SF_ERR_INVALID, 1,
     "indicators.fast.type: unknown indicator type \"smaa\" (expected sma, ema, wma, rsi, macd, "
     "bbands, atr, adx, cci, stoch, roc, highest, lowest, obv, dema, tema, willr, mfi, psar)"},
    {IND("\"fast\":{\"type\":\"sma\"}"), SF_ERR_INVALID, 1, "indicators.fast.period: is required"},
    {IND("\"fast\":{\"type\":\"sma\",\"period\":0}"), SF_ERR_INVALID, 1,
     "indicators.fast.period: must be an integer >= 1"},
    {IND("\"fast\":{\"type\":\"sma\",\"period\":2.5}"), SF_ERR_INVALID, 1,
     "indicators.fast.period: must be an integer >= 1"},
    {IND("\"fast\":{\"type\":\"sma\",\"period\":1000001}"), SF_ERR_INVALID, 1,
     "indicators.fast.period: must be an integer between 1 and 100000"},
    {IND("\"fast\":{\"type\":\"sma\",\"period\":5,\"perod\":5}"), SF_ERR_INVALID, 1,
     "indicators.fast.perod: unknown parameter for sma (expected source, period)"},
    {IND("\"fast\":{\"type\":\"sma\",\"period\":5,\"source\":\"slow\"}"), SF_ERR_INVALID, 1,
     "indicators.fast.source: must be one of open, high, low, close, volume"},
    {IND("\"volume\":{\"type\":\"obv\"}"), SF_ERR_INVALID, 1,
     "indicators.volume: indicator name clashes with the bar field volume"},
    {IND("\"x\":5"), SF_ERR_INVALID, 1, "indicators.x: must be an object with a \"type\""},
    {ENTRY("{\"gt\":[\"foo\",1]}"), SF_ERR_INVALID, 1,
     "entry.gt[0]: unknown operand \"foo\": not a number, a bar field (open, high, low, close, "
     "volume) or a defined indicator"},
    {ENTRY("{\"gt\":[\"close\",{\"ref\":\"slow\",\"offset\":1}]}"), SF_ERR_INVALID, 1,
     "entry.gt[1].ref: unknown operand \"slow\": not a number, a bar field (open, high, low, "
     "close, volume) or a defined indicator"},
    {ENTRY("{\"gt\":[\"close\",\"slow.value\"]}"), SF_ERR_INVALID, 1,
     "entry.gt[1]: undefined indicator \"slow\" in \"slow.value\""},
    {ENTRY("{\"gt\":[\"macd_1\",0]}"), SF_ERR_INVALID, 1,
     "entry.gt[0]: macd_1 has 3 outputs: use macd_1.macd, macd_1.signal or macd_1.hist"},
    {ENTRY("{\"gt\":[\"macd_1.nope\",0]}"), SF_ERR_INVALID, 1,
     "entry.gt[0]: macd_1 has no output \"nope\": use macd_1.macd, macd_1.signal or macd_1.hist"},
    {ENTRY("{\"gt\":[\"fast\"]}"), SF_ERR_INVALID, 1, "entry.gt: must be an array of 2 operands"},
    {ENTRY("{\"crosses_above\":[\"fast\",\"close\",1]}"), SF_ERR_INVALID, 1,
     "entry.crosses_above: must be an array of 2 operands"},
    {ENTRY("{\"all\":[]}"), SF_ERR_INVALID, 1, "entry.all: must be a non-empty array of conditions"},
    {ENTRY("{\"any\":[{\"lt\":[\"close\",1]},{\"gt\":[1,2]}]}"), SF_ERR_INVALID, 1,
     "entry.any[1].gt: compares two constants"},
    {ENTRY("{\"gt\":[\"close\",1],\"lt\":[\"close\",2]}"), SF_ERR_INVALID, 1,
     "entry: must be an object with exactly one key: all, any, not, gt, gte, lt, lte, "
     "crosses_above, crosses_below"},
    {ENTRY("{\"above\":[\"close\",1]}"), SF_ERR_INVALID, 1,
     "entry.above: unknown condition (expected all, any, not, gt, gte, lt, lte, crosses_above, "
     "crosses_below)"},
    {ENTRY("{\"not\":{\"lt\":[\"close\",{\"ref\":\"fast\",\"offset\":0}]}}"), SF_ERR_INVALID, 1,
     "entry.not.lt[1].offset: must be an integer between 1 and 10000"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"colour\":\"red\"}", SF_ERR_INVALID, 1,
     "colour: unknown key (expected name, description, indicators, entry, exit, side, risk, "
     "execution, capital, periods_per_year)"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"risk\":{\"stop\":1}}", SF_ERR_INVALID, 1,
     "risk.stop: unknown key (expected stop_loss_pct, take_profit_pct)"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"execution\":{\"fee\":1}}", SF_ERR_INVALID, 1,
     "execution.fee: unknown key (expected fill, fee_bps, slippage_bps)"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"risk\":{\"stop_loss_pct\":100}}", SF_ERR_INVALID, 1,
     "risk.stop_loss_pct: must be a number > 0 and < 100"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"side\":\"flat\"}", SF_ERR_INVALID, 1,
     "side: must be \"long\" or \"short\""},
    {"{\"name\":\"\",\"entry\":{\"gt\":[\"close\",1]}}", SF_ERR_INVALID, 1,
     "name: must be a string of 1 to 63 characters, no control characters"},
    {"{\"name\":\"x\"}", SF_ERR_INVALID, 1, "entry: is required"},
    {"{\"name\":\"x\",\n\"entry\":{\"gt\":[\"close\",1]},\n \"name\":\"y\"}", SF_ERR_PARSE, 1,
     "invalid JSON at line 3, column 7: duplicate object key near '\"name\"'"},
    {"{\"name\":\"x\",\n\"entry\":{\"gt\":[\"close\" 1]}}", SF_ERR_PARSE, 1,
     "invalid JSON at line 2, column 24: ']' expected near '1'"},
    {"", SF_ERR_PARSE, 1, "invalid JSON at line 1, column 0: '[' or '{' expected near end of file"},
    {"\"just a string\"", SF_ERR_PARSE, 1,
     "invalid JSON at line 1, column 15: '[' or '{' expected near '\"just a string\"'"},
    {"[]", SF_ERR_INVALID, 1, "logic must be a JSON object"},
    {"{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"a\\u0001\":1}", SF_ERR_INVALID, 1,
     "a?: unknown key (expected name, description, indicators, entry, exit, side, risk, "
     "execution, capital, periods_per_year)"},
};

static void format_first(const sf_logic_errors *e, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s", e->path[0], e->path[0][0] ? ": " : "", e->message[0]);
}

Test(logic, each_invalid_input_gives_its_exact_path_and_message)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        sf_logic *lg = (sf_logic *)(void *)1;
        sf_logic_errors e;
        sf_err err = {0};
        sf_status st = parse_str(bc->json, &lg, &e, &err);
        char first[2 * SF_LOGIC_ERROR_MAX + 8];
        format_first(&e, first, sizeof first);
        cr_expect_eq(st, bc->status, "case %zu: status %d", i, st);
        cr_expect_null(lg, "case %zu", i);
        cr_expect_eq(e.count, bc->count, "case %zu: %d errors, first %s", i, e.count, first);
        cr_expect_str_eq(first, bc->first, "case %zu", i);
        cr_expect_eq(err.code, bc->status, "case %zu", i);
    }
}

/* Every tests/data/logic/invalid/X.json gives the status and the formatted
 * errors written in X.err. */
Test(logic, invalid_fixtures_match_their_expected_errors)
{
    DIR *d = opendir(DATA "/invalid");
    cr_assert_not_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        char path[512], epath[512];
        snprintf(path, sizeof path, DATA "/invalid/%s", de->d_name);
        snprintf(epath, sizeof epath, DATA "/invalid/%.*s.err", (int)(nl - 5), de->d_name);
        size_t len, elen;
        char *text = read_file(path, &len);
        char *want = read_file(epath, &elen);
        sf_logic *lg = NULL;
        sf_logic_errors e;
        sf_status st = sf_logic_parse(text, len, &lg, &e, NULL);
        static char got[16384];
        int hl = snprintf(got, sizeof got, "%s\n", sf_status_name(st));
        sf_logic_errors_format(&e, got + hl, sizeof got - (size_t)hl - 1);
        size_t gl = strlen(got);
        got[gl] = '\n';
        got[gl + 1] = '\0';
        cr_expect_str_eq(got, want, "%s", de->d_name);
        cr_expect_null(lg);
        free(text);
        free(want);
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 25);
}

Test(logic, all_errors_are_collected_not_just_the_first)
{
    const char *json = "{\"name\":\"x\",\"indicators\":{\"c\":{\"type\":\"rsi\",\"period\":1},"
                       "\"a\":{\"type\":\"nope\"},\"b\":{\"type\":\"sma\"}},"
                       "\"entry\":{\"gt\":[\"a\",\"b\"]}}";
    sf_logic *lg = NULL;
    sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(parse_str(json, &lg, &e, &err), SF_ERR_INVALID);
    cr_assert_eq(e.count, 3);
    cr_assert_eq(e.dropped, 0);
    cr_assert_str_eq(e.path[0], "indicators.a.type");
    cr_assert_str_eq(e.path[1], "indicators.b.period");
    cr_assert_str_eq(e.message[1], "is required");
    cr_assert_str_eq(e.path[2], "indicators.c.period");
    cr_assert_str_eq(e.message[2], "must be an integer >= 2");
    cr_assert(strstr(err.msg, "(and 2 more errors)") != NULL, "%s", err.msg);
    cr_assert(strncmp(err.msg, "invalid logic: indicators.a.type: unknown indicator type", 56) == 0, "%s", err.msg);
}

Test(logic, errors_past_the_maximum_are_counted_as_dropped)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_buf_puts(&b, "{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"indicators\":{", NULL);
    for (int i = 0; i < 40; i++)
        sf_buf_printf(&b, NULL, "%s\"i%02d\":{\"type\":\"sma\",\"period\":0}", i ? "," : "", i);
    sf_buf_puts(&b, "}}", NULL);
    sf_logic *lg = NULL;
    sf_logic_errors e;
    cr_assert_eq(sf_logic_parse(b.data, b.len, &lg, &e, NULL), SF_ERR_INVALID);
    cr_assert_eq(e.count, SF_LOGIC_MAX_ERRORS);
    cr_assert_eq(e.dropped, 40 - SF_LOGIC_MAX_ERRORS);
    cr_assert_str_eq(e.path[31], "indicators.i31.period");
    char out[32768];
    sf_logic_errors_format(&e, out, sizeof out);
    cr_assert(strstr(out, "\n(and 8 more errors)") != NULL);
    sf_buf_destroy(&b);
}

Test(logic, format_truncates_into_a_small_buffer)
{
    sf_logic_errors e;
    cr_assert_eq(parse_str("{\"name\":\"x\"}", &(sf_logic *){NULL}, &e, NULL), SF_ERR_INVALID);
    char out[8];
    sf_logic_errors_format(&e, out, sizeof out);
    cr_assert_str_eq(out, "entry: ");
}

/* ---- limits ------------------------------------------------------------- */

/* entry = n-1 nested "not" around a "gt": n condition levels. */
static char *nested_nots(int n)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_buf_puts(&b, "{\"name\":\"x\",\"entry\":", NULL);
    for (int i = 0; i < n - 1; i++)
        sf_buf_puts(&b, "{\"not\":", NULL);
    sf_buf_puts(&b, "{\"gt\":[\"close\",1]}", NULL);
    for (int i = 0; i < n - 1; i++)
        sf_buf_puts(&b, "}", NULL);
    sf_buf_puts(&b, "}", NULL);
    return sf_buf_steal(&b, NULL);
}

Test(logic, conditions_nested_to_the_depth_limit_compile)
{
    char *json = nested_nots(SF_LOGIC_MAX_DEPTH);
    sf_logic *lg = NULL;
    cr_assert_eq(parse_str(json, &lg, NULL, NULL), SF_OK);
    cr_assert_eq(lg->n_conds, SF_LOGIC_MAX_DEPTH);
    sf_logic_free(lg);
    free(json);
}

Test(logic, conditions_nested_past_the_depth_limit_are_refused)
{
    char *json = nested_nots(SF_LOGIC_MAX_DEPTH + 1);
    sf_logic *lg = NULL;
    sf_logic_errors e;
    cr_assert_eq(parse_str(json, &lg, &e, NULL), SF_ERR_LIMIT);
    cr_assert_eq(e.count, 1);
    cr_assert_str_eq(e.message[0], "conditions nest deeper than 32 levels");
    cr_assert_eq(strncmp(e.path[0], "entry.not.not.not.", 18), 0);
    cr_assert_eq(strlen(e.path[0]), strlen("entry") + 4 * (SF_LOGIC_MAX_DEPTH));
    free(json);
}

static char *many_indicators(int n)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_buf_puts(&b, "{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",\"i00\"]},\"indicators\":{", NULL);
    for (int i = 0; i < n; i++)
        sf_buf_printf(&b, NULL, "%s\"i%02d\":{\"type\":\"sma\",\"period\":%d}", i ? "," : "", i, i + 1);
    sf_buf_puts(&b, "}}", NULL);
    return sf_buf_steal(&b, NULL);
}

Test(logic, indicator_count_is_limited)
{
    char *ok = many_indicators(SF_LOGIC_MAX_INDICATORS);
    char *over = many_indicators(SF_LOGIC_MAX_INDICATORS + 1);
    sf_logic *lg = NULL;
    sf_logic_errors e;
    cr_assert_eq(parse_str(ok, &lg, NULL, NULL), SF_OK);
    cr_assert_eq(lg->n_indicators, 64);
    cr_assert_float_eq(lg->indicators[63].spec.param[SF_IP_PERIOD], 64, 0);
    sf_logic_free(lg);
    cr_assert_eq(parse_str(over, &lg, &e, NULL), SF_ERR_LIMIT);
    cr_assert_str_eq(e.path[0], "indicators");
    cr_assert_str_eq(e.message[0], "has 65 indicators; the limit is 64");
    free(ok);
    free(over);
}

/* entry = {"any": [n comparisons]}: n + 1 nodes. */
static char *wide_any(int n)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    sf_buf_puts(&b, "{\"name\":\"x\",\"entry\":{\"any\":[", NULL);
    for (int i = 0; i < n; i++)
        sf_buf_printf(&b, NULL, "%s{\"gt\":[\"close\",%d]}", i ? "," : "", i);
    sf_buf_puts(&b, "]}}", NULL);
    return sf_buf_steal(&b, NULL);
}

Test(logic, node_count_is_limited)
{
    char *ok = wide_any(SF_LOGIC_MAX_NODES - 1);
    char *over = wide_any(SF_LOGIC_MAX_NODES);
    sf_logic *lg = NULL;
    sf_logic_errors e;
    cr_assert_eq(parse_str(ok, &lg, NULL, NULL), SF_OK);
    cr_assert_eq(lg->n_conds, SF_LOGIC_MAX_NODES);
    assert_number(&child(lg, &lg->conds[lg->entry], SF_LOGIC_MAX_NODES - 2)->b, 1022);
    sf_logic_free(lg);
    cr_assert_eq(parse_str(over, &lg, &e, NULL), SF_ERR_LIMIT);
    cr_assert_eq(e.count, 1);
    cr_assert_str_eq(e.path[0], "entry.any[1023].gt"); /* where the limit was crossed */
    cr_assert_str_eq(e.message[0], "more than 1024 condition nodes");
    free(ok);
    free(over);
}

Test(logic, input_over_one_mebibyte_is_refused_before_parsing)
{
    size_t len = SF_LOGIC_MAX_INPUT + 1;
    char *big = malloc(len);
    memset(big, ' ', len);
    sf_logic *lg = NULL;
    sf_logic_errors e;
    sf_err err = {0};
    cr_assert_eq(sf_logic_parse(big, len, &lg, &e, &err), SF_ERR_LIMIT);
    cr_assert_str_eq(e.message[0], "logic is 1048577 bytes; the limit is 1048576");
    cr_assert_str_eq(err.msg, "invalid logic: logic is 1048577 bytes; the limit is 1048576");
    free(big);
}

Test(logic, null_errs_still_reports_through_err)
{
    sf_logic *lg = NULL;
    sf_err err = {0};
    cr_assert_eq(parse_str("{\"name\":\"x\",\"entry\":{\"gt\":[1,2]}}", &lg, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "invalid logic: entry.gt: compares two constants");
    cr_assert_null(lg);
}

Test(logic, errors_are_reset_on_success)
{
    sf_logic_errors e;
    memset(&e, 0x7f, sizeof e);
    sf_logic *lg = NULL;
    cr_assert_eq(parse_str("{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]}}", &lg, &e, NULL), SF_OK);
    cr_assert_eq(e.count, 0);
    cr_assert_eq(e.dropped, 0);
    sf_logic_free(lg);
    sf_logic_free(NULL);
}

/* ---- sf_logic_from_json --------------------------------------------------- */

#define SAME_BITS(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static int same_operand(const sf_operand *a, const sf_operand *b)
{
    return a->kind == b->kind && SAME_BITS(a->number, b->number) && a->field == b->field &&
           a->indicator == b->indicator && a->output == b->output && a->offset == b->offset;
}

/* Two programs, field by field (doubles as bits, so NaN equals NaN). */
static void assert_same_program(const sf_logic *a, const sf_logic *b, const char *what)
{
    cr_assert_str_eq(a->name, b->name, "%s", what);
    cr_assert(a->side == b->side && a->entry == b->entry && a->exit == b->exit && a->fill == b->fill &&
                  a->max_offset == b->max_offset,
              "%s", what);
    cr_assert(SAME_BITS(a->stop_loss_pct, b->stop_loss_pct) && SAME_BITS(a->take_profit_pct, b->take_profit_pct) &&
                  SAME_BITS(a->fee_bps, b->fee_bps) && SAME_BITS(a->slippage_bps, b->slippage_bps) &&
                  SAME_BITS(a->initial_capital, b->initial_capital) && SAME_BITS(a->position_pct, b->position_pct) &&
                  SAME_BITS(a->periods_per_year, b->periods_per_year),
              "%s", what);
    cr_assert_eq(a->n_indicators, b->n_indicators, "%s", what);
    for (int i = 0; i < a->n_indicators; i++) {
        cr_assert_str_eq(a->indicators[i].name, b->indicators[i].name, "%s", what);
        cr_assert(memcmp(&a->indicators[i].spec, &b->indicators[i].spec, sizeof a->indicators[i].spec) == 0,
                  "%s: indicator %d", what, i);
    }
    cr_assert_eq(a->n_conds, b->n_conds, "%s", what);
    for (int i = 0; i < a->n_conds; i++) {
        const sf_cond *x = &a->conds[i], *y = &b->conds[i];
        cr_assert(x->op == y->op && x->first_child == y->first_child && x->n_children == y->n_children &&
                      same_operand(&x->a, &y->a) && same_operand(&x->b, &y->b),
                  "%s: node %d", what, i);
        for (int k = 0; k < x->n_children; k++)
            cr_assert_eq(a->children[x->first_child + k], b->children[y->first_child + k], "%s: node %d", what, i);
    }
}

/* text through sf_logic_parse and through json_loadb + sf_logic_from_json
 * (twice, on the same tree, which must not change): the same everything.
 * 0 when the text is not JSON (nothing to compare). */
static int from_json_matches_parse(const char *text, size_t len, const char *what)
{
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL)
        return 0;
    char *before = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    static sf_logic_errors ep, et;
    sf_logic *lp = NULL, *lt = NULL;
    sf_err errp = {0}, errt = {0};
    sf_status sp = sf_logic_parse(text, len, &lp, &ep, &errp);
    for (int round = 0; round < 2; round++) {
        memset(&et, 0x7f, sizeof et);
        memset(&errt, 0, sizeof errt);
        sf_status st = sf_logic_from_json(root, &lt, &et, &errt);
        cr_assert_eq(st, sp, "%s: %s / %s", what, errp.msg, errt.msg);
        cr_assert_eq(errt.code, errp.code, "%s", what);
        cr_assert_str_eq(errt.msg, errp.msg, "%s", what);
        static char fp[16384], ft[16384];
        sf_logic_errors_format(&ep, fp, sizeof fp);
        sf_logic_errors_format(&et, ft, sizeof ft);
        cr_assert_str_eq(ft, fp, "%s", what);
        cr_assert(et.count == ep.count && et.dropped == ep.dropped, "%s", what);
        if (sp == SF_OK)
            assert_same_program(lp, lt, what);
        else
            cr_assert_null(lt, "%s", what);
        sf_logic_free(lt);
        lt = NULL;
    }
    char *after = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert_str_eq(after, before, "%s: the tree changed", what);
    free(before);
    free(after);
    sf_logic_free(lp);
    json_decref(root);
    return 1;
}

static int fixtures_match(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *text = read_file(path, &len);
        n += from_json_matches_parse(text, len, de->d_name);
        free(text);
    }
    closedir(d);
    return n;
}

Test(logic, from_json_gives_what_parse_gives_for_every_fixture)
{
    cr_assert_geq(fixtures_match(DATA "/valid"), 4);
    cr_assert_geq(fixtures_match(DATA "/invalid"), 25);
    const char *inline_cases[] = {
        "[1, 2]",
        "{}",
        "{\"name\":\"x\",\"entry\":{\"gt\":[1,2]}}",
        "{\"name\":\"x\",\"entry\":{\"gt\":[\"close\",1]},\"extra\":1,\"side\":\"up\"}",
    };
    for (size_t i = 0; i < sizeof inline_cases / sizeof inline_cases[0]; i++) {
        const char *t = inline_cases[i];
        cr_assert(from_json_matches_parse(t, strlen(t), t));
    }
}

Test(logic, from_json_accepts_null_errs)
{
    json_t *root = json_loads("{\"name\":\"x\",\"entry\":{\"gt\":[1,2]}}", 0, NULL);
    cr_assert_not_null(root);
    sf_logic *lg = (sf_logic *)(void *)1;
    sf_err err = {0};
    cr_assert_eq(sf_logic_from_json(root, &lg, NULL, &err), SF_ERR_INVALID);
    cr_assert_null(lg);
    cr_assert_str_eq(err.msg, "invalid logic: entry.gt: compares two constants");
    json_decref(root);
    root = json_integer(5); /* text never parses to a scalar; a tree may be one */
    cr_assert_eq(sf_logic_from_json(root, &lg, NULL, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "invalid logic: logic must be a JSON object");
    json_decref(root);
}
