/*
 * libFuzzer harness for the sweep grid parser (sf_grid_parse) and what a
 * parsed grid gives: beyond "no crash, no leak, no UB" it checks the
 * contract: failure gives no grid and a message; success gives 1 ..
 * max_combos members whose size is the product of the paths' value counts,
 * paths of at most SF_GRID_PATH_MAX - 1 bytes, each member's values as a JSON
 * object with one key per path, and an index past the end refused. Each
 * member is applied to a fixed logic (sf_grid_apply) and the result must be
 * JSON or a refusal with a message. Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sf/buf.h"
#include "sf/grid.h"

#define MAX_COMBOS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LOGIC[] = "{\"name\":\"f\",\"indicators\":{\"fast\":{\"type\":\"sma\",\"period\":5},"
                            "\"slow\":{\"type\":\"ema\",\"period\":20}},\"entry\":{\"gt\":[\"fast\",\"slow\"]},"
                            "\"exit\":{\"lt\":[\"fast\",\"slow\"]},\"risk\":{\"stop_loss_pct\":2}}";

/* Member index's values: an object with exactly the grid's paths. */
static void check_params(const sf_grid *g, size_t index)
{
    sf_buf b;
    sf_err err = {0};
    sf_buf_init(&b, SIZE_MAX);
    if (sf_grid_params_json(g, index, &b, &err) != SF_OK)
        __builtin_trap();
    json_t *o = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
    if (o == NULL || !json_is_object(o) || json_object_size(o) != sf_grid_n_params(g))
        __builtin_trap();
    for (size_t i = 0; i < sf_grid_n_params(g); i++)
        if (json_object_get(o, sf_grid_param_path(g, i)) == NULL)
            __builtin_trap();
    json_decref(o);
    sf_buf_destroy(&b);
}

static void check_apply(const sf_grid *g, size_t index)
{
    char *text = NULL;
    size_t len = 0;
    sf_err err = {0};
    sf_status st = sf_grid_apply(g, index, LOGIC, sizeof LOGIC - 1, &text, &len, &err);
    if (st != SF_OK) {
        if (text != NULL || err.msg[0] == '\0')
            __builtin_trap();
        return;
    }
    json_t *o = json_loadb(text, len, 0, NULL);
    if (o == NULL || !json_is_object(o))
        __builtin_trap();
    json_decref(o);
    free(text);
}

static void check_grid(const sf_grid *g)
{
    size_t n = sf_grid_size(g), product = 1;
    if (n < 1 || n > MAX_COMBOS || sf_grid_n_params(g) > SF_GRID_MAX_PARAMS)
        __builtin_trap();
    for (size_t i = 0; i < sf_grid_n_params(g); i++) {
        size_t count = sf_grid_param_count(g, i);
        if (count < 1 || strlen(sf_grid_param_path(g, i)) >= SF_GRID_PATH_MAX)
            __builtin_trap();
        product *= count;
    }
    if (product != n)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        check_params(g, i);
        check_apply(g, i);
    }
    sf_buf b;
    sf_err err = {0};
    sf_buf_init(&b, SIZE_MAX);
    if (sf_grid_params_json(g, n, &b, &err) != SF_ERR_INVALID)
        __builtin_trap();
    sf_buf_destroy(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_grid *g = NULL;
    sf_err err = {0};
    sf_status st = sf_grid_parse((const char *)data, size, MAX_COMBOS, &g, &err);
    if (st != SF_OK) {
        if (g != NULL || err.code != st || err.msg[0] == '\0')
            __builtin_trap();
        return 0;
    }
    if (g == NULL)
        __builtin_trap();
    check_grid(g);
    sf_grid_free(g);
    return 0;
}
