/*
 * buf: a growable byte buffer with a hard maximum (after curl's dynbuf).
 *
 * The content is always NUL-terminated (the NUL is not counted in len), so it
 * can be used as a C string when it holds text. Growing past max fails with
 * SF_ERR_LIMIT and leaves the buffer as it was.
 *
 * Thread safety: none; one owner at a time.
 * Ownership: sf_buf is caller storage (_init/_destroy); sf_buf_steal hands the
 * heap block to the caller, who frees it with free().
 */
#ifndef SF_BUF_H
#define SF_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

typedef struct sf_buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* most bytes len may reach */
} sf_buf;

void sf_buf_init(sf_buf *b, size_t max);
void sf_buf_destroy(sf_buf *b);
void sf_buf_reset(sf_buf *b); /* len = 0, keeps memory */

sf_status sf_buf_append(sf_buf *b, const void *p, size_t n, sf_err *err);
sf_status sf_buf_puts(sf_buf *b, const char *s, sf_err *err);
sf_status sf_buf_printf(sf_buf *b, sf_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
sf_status sf_buf_vprintf(sf_buf *b, sf_err *err, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Append v exactly as snprintf("%.17g", v) prints it: 17 significant digits
 * (so it reads back as the same double), trailing zeros dropped, e.g.
 * "0.10000000000000001", "-0", "1e+17", "1.0000000000000001e-05"; NaN and the
 * infinities as printf's "nan", "-nan", "inf", "-inf". Exact integer
 * arithmetic, no printf, for 0 and 2^-36 <= |v| < 2^147 (about 1.5e-11 to
 * 1.8e44; sf-bench-fmt compares the cost with snprintf's), snprintf
 * otherwise. Ties round half to even, as glibc does in the default rounding
 * mode (nothing here changes it).
 * Errors as sf_buf_append. */
sf_status sf_buf_put_g17(sf_buf *b, double v, sf_err *err);

/* Append v in decimal exactly as printf("%" PRId64) does, INT64_MIN included. */
sf_status sf_buf_put_i64(sf_buf *b, int64_t v, sf_err *err);

/* The content as a string; "" when empty. Borrowed until the next change. */
const char *sf_buf_str(const sf_buf *b);

/* Hand over the heap block (may be NULL when empty); the buffer is reset. */
char *sf_buf_steal(sf_buf *b, size_t *len);

#endif
