/*
 * bars: an OHLCV series in columns, and its strict CSV loader.
 *
 * CSV: header "timestamp,open,high,low,close,volume"; timestamps ISO-8601 UTC
 * (see sf/time.h) or Unix seconds; strictly increasing; finite numbers;
 * low <= min(open, close), high >= max(open, close), volume >= 0. Every error
 * names the line and the column ("line 12, column close: not a number").
 *
 * Thread safety: a loaded sf_bars is immutable and may be shared by any number
 * of threads. Ownership: sf_bars_* constructors return a new object freed by
 * sf_bars_free (which accepts NULL); all columns live in one allocation.
 */
#ifndef SF_BARS_H
#define SF_BARS_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define SF_BARS_MAX_DEFAULT ((size_t)50000000)
/* Most bytes read from standard input or another non-regular file. */
#define SF_BARS_READ_MAX ((size_t)1 << 30)
/* Longest number text the CSV loader accepts. */
#define SF_BARS_NUMBER_MAX 128

typedef struct sf_bars {
    size_t n;
    int64_t *ts; /* Unix seconds, UTC, strictly increasing */
    double *open;
    double *high;
    double *low;
    double *close;
    double *volume;
} sf_bars;

/* n bars, zero-filled, in one block. */
sf_status sf_bars_new(size_t n, sf_bars **out, sf_err *err);
void sf_bars_free(sf_bars *bars);

/* Check the invariants above on an already-filled series (the same messages
 * with "bar N" in place of "line N", N being the 0-based index), plus finiteness. */
sf_status sf_bars_validate(const sf_bars *bars, sf_err *err);

/* Parse CSV text of len bytes (need not be NUL-terminated). A UTF-8 BOM,
 * "\r\n" line ends, a last line without "\n" and blank lines at the end are
 * accepted. Malformed text is SF_ERR_PARSE; a well-formed row that breaks an
 * invariant (order, OHLC relations, volume) is SF_ERR_INVALID; more than
 * max_bars rows is SF_ERR_LIMIT. Lines are 1-based, the header is line 1. */
sf_status sf_bars_parse_csv(const char *text, size_t len, size_t max_bars, sf_bars **out, sf_err *err);

/* Read and parse a CSV file (mmap); "-" reads standard input (and a pipe or
 * other non-regular file is read) up to SF_BARS_READ_MAX bytes. Parse errors
 * are prefixed with the path ("data.csv: line 3, column ..."); open/read
 * errors name it themselves. */
sf_status sf_bars_load_csv_file(const char *path, size_t max_bars, sf_bars **out, sf_err *err);

/*
 * The loader's number parser, exposed for tests and other strict readers: the
 * whole of s[0..len) must be [+-]digits[.digits][(e|E)[+-]digits] (at least
 * one digit, at most SF_BARS_NUMBER_MAX bytes), finite after rounding. The
 * result is bit-identical to strtod's (correctly rounded). Fails with
 * SF_ERR_PARSE: "not a number (\"abc\")", "not a finite number (\"inf\")",
 * "out of range (\"1e400\")", "number too long (...)".
 */
sf_status sf_bars_parse_number(const char *s, size_t len, double *out, sf_err *err);

#endif
