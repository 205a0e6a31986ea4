/*
 * libFuzzer harness for JSON text as PostgreSQL prints it, the way the code
 * reads it: sf_jsonnum_widen (integers beyond int64 written as reals) and
 * api_json_from_db, which sf-api uses on every stored document (metrics,
 * results, logics). Checks beyond "no crash, no leak, no UB": the widened
 * text is the input with ".0" after each widened integer and nothing else
 * changed; input JSON (numbers read as reals) reads as the same document
 * after widening, and then also reads without that flag, as
 * api_json_from_db gives it. Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "sf/buf.h"
#include "sf/jsonnum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* out is text with ".0" inserted n times (after digits) and nothing else. */
static void check_inserts(const char *text, size_t len, const char *out, size_t olen, size_t n)
{
    if (olen != len + 2 * n)
        __builtin_trap();
    size_t i = 0, o = 0, seen = 0;
    while (i < len || o < olen) {
        if (i < len && o < olen && text[i] == out[o]) {
            i++, o++;
        } else if (o + 1 < olen && out[o] == '.' && out[o + 1] == '0' && o > 0 && out[o - 1] >= '0' &&
                   out[o - 1] <= '9') {
            o += 2, seen++;
        } else {
            __builtin_trap();
        }
    }
    if (seen != n)
        __builtin_trap();
}

/* Valid JSON (numbers as reals) reads the same widened, and then also
 * without that flag; api_json_from_db gives that document. */
static void check_reads(const char *text, size_t size, const sf_buf *out)
{
    json_t *want = json_loadb(text, size, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, NULL);
    if (want == NULL || memchr(text, '\0', size) != NULL) {
        json_decref(want);
        return;
    }
    json_t *got = json_loadb(sf_buf_str(out), out->len, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, NULL);
    json_t *plain = json_loadb(sf_buf_str(out), out->len, JSON_DECODE_ANY, NULL);
    if (got == NULL || !json_equal(want, got) || plain == NULL)
        __builtin_trap();
    char *copy = strndup(text, size);
    if (copy != NULL && (json_is_object(want) || json_is_array(want))) {
        json_t *api = api_json_from_db(copy);
        if (api == NULL || !json_equal(api, plain))
            __builtin_trap();
        json_decref(api);
    }
    free(copy);
    json_decref(want);
    json_decref(got);
    json_decref(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sf_buf out;
    sf_buf_init(&out, SIZE_MAX);
    size_t widened = 0;
    sf_err err = {0};
    if (sf_jsonnum_widen(text, size, &out, &widened, &err) != SF_OK)
        __builtin_trap();
    check_inserts(text, size, out.data ? out.data : "", out.len, widened);
    check_reads(text, size, &out);
    sf_buf_destroy(&out);
    return 0;
}
