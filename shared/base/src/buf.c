/* buf: growable buffer with a maximum; see sf/buf.h. */
#include "sf/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sf_buf_init(sf_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void sf_buf_destroy(sf_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sf_buf_reset(sf_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for n more bytes plus the NUL. */
static sf_status reserve(sf_buf *b, size_t n, sf_err *err)
{
    if (n > b->max || b->len > b->max - n)
        return sf_err_set(err, SF_ERR_LIMIT, "buffer would exceed its maximum of %zu bytes", b->max);
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return SF_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1) /* max + 1 wraps to 0 for SIZE_MAX */
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not grow buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return SF_OK;
}

sf_status sf_buf_append(sf_buf *b, const void *p, size_t n, sf_err *err)
{
    sf_status st = reserve(b, n, err);
    if (st != SF_OK)
        return st;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SF_OK;
}

sf_status sf_buf_puts(sf_buf *b, const char *s, sf_err *err)
{
    return sf_buf_append(b, s, strlen(s), err);
}

/* Formats straight into the spare capacity when the text fits there (one
 * vsnprintf); otherwise measures, grows and formats again. */
sf_status sf_buf_vprintf(sf_buf *b, sf_err *err, const char *fmt, va_list ap)
{
    size_t room = b->cap - b->len; /* counting the NUL; 0 before the first append */
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n >= 0 && (size_t)n < room && (size_t)n <= b->max && b->len <= b->max - (size_t)n) {
        b->len += (size_t)n;
        return SF_OK;
    }
    if (room)
        b->data[b->len] = '\0'; /* drop a truncated try */
    if (n < 0)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not format text");
    sf_status st = reserve(b, (size_t)n, err);
    if (st != SF_OK)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SF_OK;
}

sf_status sf_buf_printf(sf_buf *b, sf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sf_status st = sf_buf_vprintf(b, err, fmt, ap);
    va_end(ap);
    return st;
}

const char *sf_buf_str(const sf_buf *b)
{
    return b->data ? b->data : "";
}

char *sf_buf_steal(sf_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- Numbers without printf ----
 *
 * DESIGN. The farm formats millions of doubles per job as JSON, and glibc's
 * "%.17g" does exact multi-precision arithmetic for each (__printf_fp_l), so
 * sf_buf_put_g17 computes the same 17 digits with one 64x64->128 bit multiply
 * (or one 128/64 bit division) and no rounding error at all:
 *
 *   v = +-m * 2^q (m < 2^53 an integer). Find E with 10^E <= |v| < 10^(E+1):
 *   from the binary exponent, E or E - 1; in the latter case the scaled
 *   value below has 18 digits and the last one joins the fraction. The 17
 *   digits are N = round(|v| * 10^(16-E)), rounded half to even as glibc
 *   does. With k = 16 - E:
 *     k >= 0: |v| * 10^k = m * 5^k * 2^(q+k); m * 5^k < 2^116 is exact in 128
 *             bits and the power of two is a shift, so the floor and whether
 *             the fraction is below, at or above 1/2 are exact;
 *     k <  0: |v| * 10^k = (m * 2^(q+k)) / 5^-k, whose numerator is an integer
 *             (|v| >= 10^17 > 2^53 is an integer with q >= -k) below 2^127;
 *             the quotient and the remainder decide, exactly.
 *   5^|k| must fit in 64 bits, so |k| <= 27: -11 <= E <= 43 for the guess,
 *   2^-36 <= |v| < 2^147 (about 1.5e-11 to 1.8e44). Everything else (smaller,
 *   larger, subnormal, NaN, inf) goes to snprintf, as does any platform
 *   without unsigned __int128. N reaching 10^17 means the rounding
 *   carried into a new digit: E + 1 and N = 10^16, as printf's exponent does.
 *
 * Then the digits are laid out like %g with precision 17: exponent form when
 * E < -4 or E >= 17 (at least two exponent digits), fixed otherwise, trailing
 * zeros and a bare '.' removed. tests/unit/test_buf.c compares it with
 * snprintf byte for byte. */

/* "-1.2345678901234567e-308" is 24 bytes; layout_g17's fixed-size copies
 * reach byte 35. */
#define G17_MAX 48

static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

static sf_status put_printf_g17(sf_buf *b, double v, sf_err *err)
{
    char s[G17_MAX];
    int n = snprintf(s, sizeof s, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof s)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not format a number");
    return sf_buf_append(b, s, (size_t)n, err);
}

#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 u128;

#define POW5_MAX 27
#define TEN16 10000000000000000ULL

/* 5^0 .. 5^27, the powers below 2^63. */
static uint64_t pow5(int k)
{
    static const uint64_t p[POW5_MAX + 1] = {
        1ULL,
        5ULL,
        25ULL,
        125ULL,
        625ULL,
        3125ULL,
        15625ULL,
        78125ULL,
        390625ULL,
        1953125ULL,
        9765625ULL,
        48828125ULL,
        244140625ULL,
        1220703125ULL,
        6103515625ULL,
        30517578125ULL,
        152587890625ULL,
        762939453125ULL,
        3814697265625ULL,
        19073486328125ULL,
        95367431640625ULL,
        476837158203125ULL,
        2384185791015625ULL,
        11920928955078125ULL,
        59604644775390625ULL,
        298023223876953125ULL,
        1490116119384765625ULL,
        7450580596923828125ULL,
    };
    return p[k];
}

/* Where the fraction rem / whole dropped by a floor lies (whole < 2^63). */
typedef enum frac_pos { FRAC_ZERO, FRAC_BELOW_HALF, FRAC_HALF, FRAC_ABOVE_HALF } frac_pos;

static frac_pos frac_of(uint64_t rem, uint64_t whole)
{
    if (rem == 0)
        return FRAC_ZERO;
    return 2 * rem < whole ? FRAC_BELOW_HALF : 2 * rem == whole ? FRAC_HALF : FRAC_ABOVE_HALF;
}

/* *fl = floor(m * 2^q * 10^k) and *frac where the rest lies; 0 when it does
 * not fit the exact arithmetic (|k| <= POW5_MAX is the caller's). */
static int scale_exact(uint64_t m, int q, int k, uint64_t *fl, frac_pos *frac)
{
    if (k < 0) {
        int s = q + k; /* (m * 2^s) / 5^-k */
        if (s < 0 || s > 74)
            return 0;
        u128 num = (u128)m << s, f = num / pow5(-k);
        uint64_t rem = (uint64_t)(num - f * pow5(-k));
        if (f >> 64)
            return 0;
        *fl = (uint64_t)f;
        *frac = frac_of(rem, pow5(-k)); /* 5^-k is odd: never a tie */
        return 1;
    }
    u128 p = (u128)m * pow5(k);
    int s = -(q + k); /* p / 2^s */
    if (s <= 0) {
        if (s < -8 || p >> (64 + s))
            return 0;
        *fl = (uint64_t)(p << -s);
        *frac = FRAC_ZERO;
        return 1;
    }
    if (s > 62) /* in range s <= 61: the rest is in the low bits, 2^s < 2^63 */
        return 0;
    uint64_t hi = (uint64_t)(p >> 64), lo = (uint64_t)p, rem = lo & ((1ULL << s) - 1);
    if (hi >> s)
        return 0;
    *fl = hi << (64 - s) | lo >> s;
    *frac = frac_of(rem, 1ULL << s);
    return 1;
}

/* The 17 significant digits of a = m * 2^q, 2^e2 <= a < 2^(e2+1), as
 * 10^16 <= *n < 10^17 and the decimal exponent *e of the first, rounded half
 * to even; 0 when out of the exact range. */
static int digits17(uint64_t m, int q, int e2, uint64_t *n, int *e)
{
    /* E = floor(e2 * log10 2), exact for |e2| <= 1650 (78913 / 2^18, as in
     * Ryu); then 10^E <= a < 2 * 10^(E+1), so the first digit is at E or E+1. */
    int E = e2 >= 0 ? (e2 * 78913) >> 18 : -((-e2 * 78913 >> 18) + 1);
    uint64_t fl;
    frac_pos frac;
    if (16 - E < -POW5_MAX || 16 - E > POW5_MAX || !scale_exact(m, q, 16 - E, &fl, &frac))
        return 0;
    if (fl < TEN16 || fl >= 20 * TEN16)
        return 0;           /* cannot happen; the estimate's safety net */
    if (fl >= 10 * TEN16) { /* one digit more: drop it into the fraction */
        unsigned r = (unsigned)(fl % 10);
        frac = r < 5 ? FRAC_BELOW_HALF : r > 5 || frac != FRAC_ZERO ? FRAC_ABOVE_HALF : FRAC_HALF;
        fl /= 10;
        E++;
    }
    fl += frac == FRAC_ABOVE_HALF || (frac == FRAC_HALF && (fl & 1));
    if (fl == 10 * TEN16) { /* rounded up into a new digit */
        fl = TEN16;
        E++;
    }
    *n = fl;
    *e = E;
    return 1;
}

/* Write the n lowest decimal digits of v (zero padded) ending just before end. */
static void put_digits32(char *end, uint32_t v, int n)
{
    for (; n >= 2; n -= 2, v /= 100) {
        end -= 2;
        memcpy(end, digit_pairs + 2 * (v % 100), 2);
    }
    if (n)
        *--end = (char)('0' + v % 10);
}

/* Write v < 10^8 as exactly 8 digits at p; two independent halves. */
static void put_8digits(char *p, uint32_t v)
{
    uint32_t hi = v / 10000, lo = v % 10000;
    memcpy(p, digit_pairs + 2 * (hi / 100), 2);
    memcpy(p + 2, digit_pairs + 2 * (hi % 100), 2);
    memcpy(p + 4, digit_pairs + 2 * (lo / 100), 2);
    memcpy(p + 6, digit_pairs + 2 * (lo % 100), 2);
}

/* %.17g's text of +-n * 10^(e-16) (10^16 <= n < 10^17) at s, its length
 * returned; s must have G17_MAX bytes, some past the text may be scribbled
 * on (the copies have fixed sizes so that they compile to a few moves). */
static size_t layout_g17(char *s, uint64_t n, int e, int neg)
{
    char d[40] = {0}; /* the 17 digits, then room for the fixed-size copies */
    uint32_t top = (uint32_t)(n / 100000000);
    d[0] = (char)('0' + top / 100000000);
    put_8digits(d + 1, top % 100000000);
    put_8digits(d + 9, (uint32_t)(n % 100000000));
    int nd = 17;
    while (d[nd - 1] == '0')
        nd--;
    s[0] = '-';
    s += neg;
    if (e >= 0 && e < 17) { /* ddd[.ddd] */
        memcpy(s, d, 17);
        s[e + 1] = '.';
        memcpy(s + e + 2, d + e + 1, 16);
        return (size_t)neg + (size_t)(nd > e + 1 ? nd + 1 : e + 1);
    }
    if (e < 0 && e >= -4) { /* 0.000ddd */
        memcpy(s, "0.000", 5);
        memcpy(s + 1 - e, d, 17);
        return (size_t)neg + (size_t)(1 - e + nd);
    }
    s[0] = d[0]; /* d[.ddd]e+XX */
    s[1] = '.';
    memcpy(s + 2, d + 1, 16);
    size_t len = nd > 1 ? (size_t)nd + 1 : 1;
    s[len++] = 'e';
    s[len++] = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e, nexp = ae >= 100 ? 3 : 2;
    put_digits32(s + len + nexp, (uint32_t)ae, nexp);
    return (size_t)neg + len + (size_t)nexp;
}

#endif

sf_status sf_buf_put_g17(sf_buf *b, double v, sf_err *err)
{
#if defined(__SIZEOF_INT128__)
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int neg = (int)(bits >> 63), be = (int)(bits >> 52 & 0x7ff);
    uint64_t m = bits & ((1ULL << 52) - 1), n;
    int e;
    if (be == 0 && m == 0)
        return sf_buf_append(b, neg ? "-0" : "0", (size_t)1 + (size_t)neg, err);
    if (be == 0 || be == 0x7ff || !digits17(m | 1ULL << 52, be - 1075, be - 1023, &n, &e))
        return put_printf_g17(b, v, err);
    if (b->cap - b->len > G17_MAX && b->max - b->len >= G17_MAX) { /* room: write in place */
        b->len += layout_g17(b->data + b->len, n, e, neg);
        b->data[b->len] = '\0';
        return SF_OK;
    }
    char s[G17_MAX];
    return sf_buf_append(b, s, layout_g17(s, n, e, neg), err);
#else
    return put_printf_g17(b, v, err);
#endif
}

sf_status sf_buf_put_i64(sf_buf *b, int64_t v, sf_err *err)
{
    char s[24]; /* "-9223372036854775808" is 20 */
    char *end = s + sizeof s, *p = end;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    for (; u >= 100; u /= 100) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (u % 100), 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * u, 2);
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0)
        *--p = '-';
    return sf_buf_append(b, p, (size_t)(end - p), err);
}
