/* Unit tests of sf_buf: growth, the hard maximum, printf, steal, and the
 * printf-free number formatting (put_g17, put_i64) against printf. */
#include <criterion/criterion.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"

Test(buf, empty_buffer_is_an_empty_string)
{
    sf_buf b;
    sf_buf_init(&b, 100);
    cr_assert_str_eq(sf_buf_str(&b), "");
    cr_assert_eq(b.len, 0);
    size_t len = 99;
    cr_assert_null(sf_buf_steal(&b, &len));
    cr_assert_eq(len, 0);
    sf_buf_destroy(&b);
    sf_buf_destroy(NULL);
}

Test(buf, appends_grow_and_stay_terminated)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    char want[5001];
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        cr_assert_eq(sf_buf_append(&b, &c, 1, NULL), SF_OK);
        want[i] = c;
    }
    want[5000] = '\0';
    cr_assert_eq(b.len, 5000);
    cr_assert_geq(b.cap, 5001);
    cr_assert_str_eq(sf_buf_str(&b), want);
    cr_assert_eq(sf_buf_puts(&b, "!", NULL), SF_OK);
    cr_assert_eq(b.data[5000], '!');
    cr_assert_eq(b.data[5001], '\0');
    sf_buf_destroy(&b);
}

Test(buf, binary_data_with_nul_bytes_is_kept)
{
    sf_buf b;
    sf_buf_init(&b, 64);
    cr_assert_eq(sf_buf_append(&b, "a\0b", 3, NULL), SF_OK);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.data, "a\0b", 4), 0);
    sf_buf_destroy(&b);
}

Test(buf, growing_past_the_maximum_fails_and_leaves_the_content)
{
    sf_buf b;
    sf_buf_init(&b, 10);
    sf_err err = {0};
    cr_assert_eq(sf_buf_puts(&b, "0123456789", &err), SF_OK, "exactly max fits");
    cr_assert_eq(sf_buf_puts(&b, "x", &err), SF_ERR_LIMIT);
    cr_assert(strstr(err.msg, "10 bytes") != NULL, "%s", err.msg);
    cr_assert_str_eq(sf_buf_str(&b), "0123456789");
    cr_assert_eq(b.len, 10);
    cr_assert_leq(b.cap, 11, "never allocates beyond max + 1");
    sf_buf_reset(&b);
    cr_assert_eq(sf_buf_append(&b, "abc", SIZE_MAX, &err), SF_ERR_LIMIT, "a huge n cannot wrap around");
    cr_assert_str_eq(sf_buf_str(&b), "");
    sf_buf_destroy(&b);
}

Test(buf, printf_formats_and_grows)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    cr_assert_eq(sf_buf_printf(&b, NULL, "%s=%d", "x", 42), SF_OK);
    cr_assert_eq(sf_buf_printf(&b, NULL, ",%05.1f", 3.14159), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b), "x=42,003.1");
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(sf_buf_printf(&b, NULL, "[%s]", big), SF_OK);
    cr_assert_eq(b.len, 10 + 1001);
    cr_assert_eq(b.data[b.len - 1], ']');
    cr_assert_eq(b.data[b.len], '\0');
    sf_buf_destroy(&b);
}

Test(buf, printf_past_the_maximum_fails_without_partial_text)
{
    sf_buf b;
    sf_buf_init(&b, 8);
    sf_err err = {0};
    cr_assert_eq(sf_buf_printf(&b, &err, "%d", 1234), SF_OK);
    cr_assert_eq(sf_buf_printf(&b, &err, "%d", 56789), SF_ERR_LIMIT);
    cr_assert_str_eq(sf_buf_str(&b), "1234");
    sf_buf_destroy(&b);
}

Test(buf, reset_keeps_memory_and_steal_hands_it_over)
{
    sf_buf b;
    sf_buf_init(&b, 100);
    sf_buf_puts(&b, "hello", NULL);
    size_t cap = b.cap;
    sf_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(sf_buf_str(&b), "");
    sf_buf_puts(&b, "world", NULL);
    size_t len = 0;
    char *p = sf_buf_steal(&b, &len);
    cr_assert_str_eq(p, "world");
    cr_assert_eq(len, 5);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    free(p);
    cr_assert_eq(sf_buf_puts(&b, "again", NULL), SF_OK, "usable after steal");
    cr_assert_str_eq(sf_buf_str(&b), "again");
    sf_buf_destroy(&b);
}

Test(buf, unlimited_maximum_still_allocates)
{
    sf_buf b;
    sf_buf_init(&b, SIZE_MAX);
    cr_assert_eq(sf_buf_puts(&b, "abc", NULL), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b), "abc");
    sf_buf_destroy(&b);
}

/* ---- sf_buf_put_g17 and sf_buf_put_i64 against printf, byte for byte ---- */

static uint64_t rng_next(uint64_t *s) /* splitmix64: reproducible everywhere */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * 0x1p-53;
}

static double from_bits(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Count of values checked, for the failure messages. */
typedef struct g17_check {
    sf_buf b;
    size_t n;
} g17_check;

static void g17_begin(g17_check *c)
{
    sf_buf_init(&c->b, 1 << 10);
    c->n = 0;
}

/* put_g17(v) must be snprintf("%.17g", v); asserts only on a mismatch (a
 * passing cr_assert per value would dominate the run time). */
static void g17_one(g17_check *c, double v)
{
    char want[64];
    int n = snprintf(want, sizeof want, "%.17g", v);
    sf_buf_reset(&c->b);
    sf_err err = {0};
    sf_status st = sf_buf_put_g17(&c->b, v, &err);
    c->n++;
    if (st == SF_OK && c->b.len == (size_t)n && strcmp(c->b.data, want) == 0)
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    cr_assert_fail("value %zu (bits %016llx): put_g17 gave \"%s\" (status %d), printf \"%s\"", c->n,
                   (unsigned long long)bits, sf_buf_str(&c->b), (int)st, want);
}

/* v, -v and k neighbours on either side of each. */
static void g17_around(g17_check *c, double v, int k)
{
    for (int sign = 0; sign < 2; sign++) {
        double x = sign ? -v : v, up = x, down = x;
        g17_one(c, x);
        for (int i = 0; i < k; i++) {
            up = nextafter(up, INFINITY);
            down = nextafter(down, -INFINITY);
            if (isfinite(up))
                g17_one(c, up);
            if (isfinite(down))
                g17_one(c, down);
        }
    }
}

static void g17_end(g17_check *c, size_t at_least)
{
    cr_assert_geq(c->n, at_least, "only %zu values were checked", c->n);
    sf_buf_destroy(&c->b);
}

Test(buf, put_g17_known_texts)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {1.0, "1"},
        {-1.0, "-1"},
        {0.5, "0.5"},
        {0.1, "0.10000000000000001"},
        {1.0 / 3, "0.33333333333333331"},
        {10234.567890123457, "10234.567890123457"},
        {123.5, "123.5"},
        {1e16, "10000000000000000"},
        {1e17, "1e+17"},
        {1e-5, "1.0000000000000001e-05"},
        {1e-4, "0.0001"},
        {9007199254740993.0, "9007199254740992"},
        {1125899906842624.25, "1125899906842624.2"}, /* a tie: half to even, down */
        {1125899906842624.75, "1125899906842624.8"}, /* a tie: half to even, up */
        {99999999999999999.0, "1e+17"},              /* rounds into a new digit */
        {-12345678901234567890.0, "-1.2345678901234567e+19"},
        {DBL_MAX, "1.7976931348623157e+308"},
    };
    sf_buf b;
    sf_buf_init(&b, 64);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sf_buf_reset(&b);
        cr_assert_eq(sf_buf_put_g17(&b, cases[i].v, NULL), SF_OK);
        cr_assert_str_eq(sf_buf_str(&b), cases[i].want, "case %zu", i);
    }
    sf_buf_destroy(&b);
}

Test(buf, put_g17_appends_and_respects_the_maximum)
{
    sf_buf b;
    sf_buf_init(&b, 20);
    sf_err err = {0};
    cr_assert_eq(sf_buf_puts(&b, "[", &err), SF_OK);
    cr_assert_eq(sf_buf_put_g17(&b, 2.5, &err), SF_OK);
    cr_assert_eq(sf_buf_put_i64(&b, -7, &err), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b), "[2.5-7");
    cr_assert_eq(sf_buf_put_g17(&b, 0.1, &err), SF_ERR_LIMIT, "19 more bytes do not fit in 14");
    cr_assert_eq(sf_buf_put_g17(&b, DBL_TRUE_MIN, &err), SF_ERR_LIMIT, "nor through printf");
    cr_assert_eq(sf_buf_put_i64(&b, INT64_MIN, &err), SF_ERR_LIMIT);
    cr_assert_str_eq(sf_buf_str(&b), "[2.5-7");
    cr_assert_eq(b.len, 6);
    sf_buf_destroy(&b);
}

/* Every room left in the buffer, so that both the in-place writing and the
 * copy are used, at the edges too (ASan builds check the bounds). */
Test(buf, put_g17_at_any_room_left_writes_the_text_and_no_more)
{
    const double v[] = {-12345678901234567.0,
                        -1234567890123456.7,
                        -0.00012345678901234567,
                        -1.2345678901234567e-30,
                        -1.2345678901234567e+40,
                        0.1,
                        -0.0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char want[64];
        int n = snprintf(want, sizeof want, "%.17g", v[i]);
        for (size_t fill = 0; fill <= 130; fill++) {
            sf_buf b;
            sf_buf_init(&b, 130);
            for (size_t k = 0; k < fill; k++)
                sf_buf_append(&b, "x", 1, NULL);
            sf_status st = sf_buf_put_g17(&b, v[i], NULL);
            if (fill + (size_t)n > 130) {
                cr_assert_eq(st, SF_ERR_LIMIT, "value %zu, fill %zu", i, fill);
                cr_assert_eq(b.len, fill);
            } else {
                cr_assert_eq(st, SF_OK, "value %zu, fill %zu", i, fill);
                cr_assert_eq(b.len, fill + (size_t)n);
                cr_assert_str_eq(b.data + fill, want, "value %zu, fill %zu", i, fill);
            }
            cr_assert_eq(b.data[b.len], '\0');
            sf_buf_destroy(&b);
        }
    }
}

Test(buf, put_g17_special_values_match_printf)
{
    g17_check c;
    g17_begin(&c);
    const double v[] = {0.0,
                        1.0,
                        0.1,
                        0.2,
                        0.3,
                        1.0 / 3,
                        2.0 / 3,
                        0.5,
                        1.5,
                        2.5,
                        100.0,
                        123.456,
                        10234.567890123457,
                        DBL_MIN,
                        DBL_MAX,
                        DBL_TRUE_MIN,
                        DBL_EPSILON,
                        DBL_MIN / 3,
                        0x1p-1060,
                        1e-11,
                        1e44,
                        9.999999999999999e-12,
                        9.999999999999999e43,
                        0x1p-36,
                        0x1p147,
                        1e17,
                        2e17,
                        1e18,
                        NAN,
                        INFINITY};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        g17_around(&c, v[i], 4);
    for (int i = 1; i < 200; i++) /* subnormals */
        g17_one(&c, from_bits((uint64_t)i * 0x00003fffffffffffULL / 200 + (uint64_t)i));
    g17_end(&c, 400);
}

Test(buf, put_g17_powers_of_ten_and_two_and_their_neighbours_match_printf)
{
    g17_check c;
    g17_begin(&c);
    for (int p = -325; p <= 308; p++) {
        char s[32];
        for (int d = 1; d <= 9; d += 4) {
            snprintf(s, sizeof s, "%de%d", d, p);
            g17_around(&c, strtod(s, NULL), 3);
        }
        snprintf(s, sizeof s, "9.9999999999999999e%d", p);
        g17_around(&c, strtod(s, NULL), 2);
    }
    for (int e = -1074; e <= 1023; e++)
        g17_around(&c, ldexp(1.0, e), 1);
    g17_end(&c, 20000);
}

Test(buf, put_g17_integers_match_printf)
{
    g17_check c;
    g17_begin(&c);
    for (int i = 0; i <= 20000; i++)
        g17_one(&c, (double)i);
    g17_around(&c, 0x1p53, 300); /* 2^53: from odd steps to steps of two */
    g17_around(&c, 0x1p54, 50);
    g17_around(&c, 0x1p57, 50);
    uint64_t seed = 53;
    for (int i = 0; i < 20000; i++)
        g17_one(&c, (double)(rng_next(&seed) >> (11 + i % 40)));
    g17_end(&c, 40000);
}

/* Doubles c / 2^(k+1) (c odd) whose 17-digit rounding is an exact tie
 * (x.5 at the 17th digit), and their neighbours, near ties. */
Test(buf, put_g17_ties_and_near_ties_match_printf)
{
    g17_check c;
    g17_begin(&c);
    uint64_t seed = 17;
    size_t ties = 0;
    for (int k = 1; k <= 27; k++) {
        double lo = pow(10, 16 - k), hi = pow(10, 17 - k);
        for (int i = 0; i < 300; i++) {
            double a = lo + (hi - lo) * rng_unit(&seed);
            double cm = floor(ldexp(a, k + 1));
            if (cm < 1 || cm >= 0x1p53)
                break;
            double t = ldexp(cm + (fmod(cm, 2) == 0), -(k + 1));
            if (t < lo || t >= hi)
                continue;
            g17_around(&c, t, 2);
            ties++;
        }
    }
    cr_assert_geq(ties, 2000, "only %zu ties", ties);
    for (int i = 0; i < 20000; i++) { /* 18 digits ending in 5, at any scale */
        char s[48];
        uint64_t digits17 = (uint64_t)(10000000000000000ULL + rng_next(&seed) % 90000000000000000ULL);
        snprintf(s, sizeof s, "%" PRIu64 "5e%d", digits17, (int)(rng_next(&seed) % 80) - 40);
        g17_around(&c, strtod(s, NULL), 1);
    }
    g17_end(&c, 100000);
}

Test(buf, put_g17_random_bit_patterns_match_printf)
{
    g17_check c;
    g17_begin(&c);
    uint64_t seed = 20240101;
    for (int i = 0; i < 100000; i++) {
        double v = from_bits(rng_next(&seed));
        if (isfinite(v))
            g17_one(&c, v);
    }
    for (int i = 0; i < 150000; i++) { /* exponents around the exact range 1e-11 .. 1e44 */
        uint64_t bits = rng_next(&seed);
        uint64_t be = 1023 - 40 + bits % 190;
        g17_one(&c, from_bits((bits & 0x800fffffffffffffULL) | be << 52));
    }
    g17_end(&c, 245000);
}

/* What results hold: equity, prices, returns, ratios; some on a cent grid. */
Test(buf, put_g17_result_like_values_match_printf)
{
    g17_check c;
    g17_begin(&c);
    uint64_t seed = 42;
    for (int i = 0; i < 150000; i++) {
        double v = pow(10, -6 + 15 * rng_unit(&seed));
        g17_one(&c, rng_next(&seed) & 1 ? -v : v);
    }
    for (int i = 0; i < 30000; i++)
        g17_one(&c, (double)(int64_t)(rng_next(&seed) % 2000000000) / 100 - 1e7);
    g17_end(&c, 180000);
}

Test(buf, put_i64_matches_printf)
{
    sf_buf b;
    sf_buf_init(&b, 64);
    int64_t fixed[] = {0, 1, -1, 9, 10, -10, 99, 100, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1704067200};
    uint64_t seed = 64;
    for (int i = 0; i < 100000; i++) {
        int64_t v = i < 12 ? fixed[i] : (int64_t)rng_next(&seed);
        if (i >= 12 && i < 12 + 19 * 3) { /* 10^p - 1, 10^p, 10^p + 1 */
            int64_t p = 1;
            for (int j = 0; j < (i - 12) / 3; j++)
                p *= 10;
            v = p + (i - 12) % 3 - 1;
        } else if (i % 3 == 0) {
            v >>= i % 63; /* every length */
        }
        char want[32];
        snprintf(want, sizeof want, "%" PRId64, v);
        sf_buf_reset(&b);
        cr_assert_eq(sf_buf_put_i64(&b, v, NULL), SF_OK);
        if (strcmp(sf_buf_str(&b), want) != 0)
            cr_assert_fail("put_i64 gave \"%s\", printf \"%s\"", sf_buf_str(&b), want);
    }
    sf_buf_reset(&b);
    sf_buf_put_i64(&b, INT64_MIN, NULL);
    cr_assert_str_eq(sf_buf_str(&b), "-9223372036854775808");
    sf_buf_destroy(&b);
}
