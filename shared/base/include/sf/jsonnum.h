/*
 * jsonnum: JSON text whose integers a 64-bit reader can hold.
 *
 * PostgreSQL's jsonb prints every number without an exponent: a metric of
 * 1e20 comes back as 100000000000000000000, an integer beyond int64, which
 * jansson (json_int_t) refuses, and with it the whole document ("invalid
 * JSON"). sf_jsonnum_widen copies JSON text and writes each integer outside
 * [-2^63, 2^63 - 1] as a real, with ".0" appended: a reader then takes it as a
 * double of the same value (the digits are the exact value of the double that
 * was stored, so it reads back bit for bit). Everything else, strings
 * included, is copied byte for byte; integers in range stay integers. The
 * text need not be valid JSON: only number tokens outside strings are read.
 *
 * Use it where JSON that PostgreSQL printed is parsed with jansson (the API's
 * stored metrics, sfctl's answers from the API), or parse such text with
 * JSON_DECODE_INT_AS_REAL when every number is read as a double anyway.
 *
 * Errors: SF_ERR_NOMEM or SF_ERR_LIMIT from out (left partly appended).
 * Thread safety: pure. Ownership: appends to the caller's out.
 */
#ifndef SF_JSONNUM_H
#define SF_JSONNUM_H

#include <stddef.h>

#include "sf/buf.h"
#include "sf/err.h"

/* Append text[0..len) to out with out-of-range integers widened to reals;
 * *widened (may be NULL) = how many were. */
sf_status sf_jsonnum_widen(const char *text, size_t len, sf_buf *out, size_t *widened, sf_err *err);

#endif
