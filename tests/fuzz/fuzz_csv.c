/*
 * libFuzzer harness for the strict CSV loader (sf_bars_parse_csv) and its
 * number parser. Beyond "no crash, no leak, no UB" it checks the contract:
 * success gives 1..max bars that pass sf_bars_validate; failure gives no
 * object and a message; an accepted number is bit-identical to strtod's.
 * Build and run with scripts/fuzz.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf/bars.h"

#define MAX_BARS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_csv(const char *text, size_t size)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    sf_status st = sf_bars_parse_csv(text, size, MAX_BARS, &b, &err);
    if (st != SF_OK) {
        if (b != NULL || err.code != st || err.msg[0] == '\0')
            __builtin_trap();
        return;
    }
    if (b == NULL || b->n == 0 || b->n > MAX_BARS || sf_bars_validate(b, &err) != SF_OK)
        __builtin_trap();
    sf_bars_free(b);
}

/* The whole input as one number: accepted only if strtod reads all of it the same way. */
static void check_number(const char *text, size_t size)
{
    char copy[SF_BARS_NUMBER_MAX + 1];
    if (size > SF_BARS_NUMBER_MAX)
        return;
    memcpy(copy, text, size);
    copy[size] = '\0';
    double got;
    if (sf_bars_parse_number(text, size, &got, NULL) != SF_OK)
        return;
    char *end;
    double want = strtod(copy, &end);
    if (end != copy + size || !isfinite(got) || memcmp(&got, &want, sizeof got) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_csv((const char *)data, size);
    check_number((const char *)data, size);
    return 0;
}
