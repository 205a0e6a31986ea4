/* bench_fmt: the cost of formatting result numbers, printf against sf_buf's
 * printf-free sf_buf_put_g17 / sf_buf_put_i64 (shared/base/src/buf.c).
 *
 * Values are what sf_result_to_json writes: an equity curve around 10,000,
 * prices on a cent grid, returns and ratios from 1e-6 to 1e9 of both signs,
 * some zeros. Each case formats all of them into one reused sf_buf and reports
 * ns per number (best of --reps) and the bytes written, which must agree
 * between the ways (tests/unit/test_buf.c checks the bytes themselves).
 *
 *   sf-bench-fmt [--n COUNT] [--reps R]      (defaults: 10000000, 1)
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/buf.h"

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1p-53;
}

static void make_values(double *v, int64_t *ts, size_t n)
{
    uint64_t seed = 20240101;
    double equity = 10000;
    for (size_t i = 0; i < n; i++) {
        ts[i] = 1704067200 + (int64_t)i * 60;
        switch (i % 4) {
        case 0: /* an equity curve */
            equity *= 1 + (rng_unit(&seed) - 0.5) * 0.01;
            v[i] = equity;
            break;
        case 1: /* a price on a cent grid */ v[i] = (double)(int64_t)(rng_next(&seed) % 10000000) / 100; break;
        case 2: /* returns, ratios, fees, pnl: 1e-6 .. 1e9, both signs */
            v[i] = pow(10, -6 + 15 * rng_unit(&seed)) * (rng_next(&seed) & 1 ? -1 : 1);
            break;
        default: v[i] = i % 64 == 3 ? 0.0 : equity / 10000 - 1; /* total_return-like */
        }
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef enum fmt_case { PRINTF_TWICE, PRINTF_ONCE, PUT_G17, PRINTF_I64_TWICE, PRINTF_I64, PUT_I64 } fmt_case;

static const char *case_names[] = {
    "double, sf_buf_printf before (vsnprintf to measure + to write)",
    "double, sf_buf_printf now (one vsnprintf when it fits)",
    "double, sf_buf_put_g17",
    "int64, sf_buf_printf(\"%lld\") before (two vsnprintf)",
    "int64, sf_buf_printf(\"%lld\") now",
    "int64, sf_buf_put_i64",
};

/* Format everything once; returns seconds, *bytes the text's length. */
static double run(fmt_case c, const double *v, const int64_t *ts, size_t n, uint64_t *bytes)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    char tmp[64];
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        if (b.len > (1 << 20) - 64) {
            *bytes += b.len;
            sf_buf_reset(&b);
        }
        switch (c) {
        case PRINTF_TWICE: {
            int len = snprintf(NULL, 0, "%.17g", v[i]);
            snprintf(tmp, (size_t)len + 1, "%.17g", v[i]);
            sf_buf_append(&b, tmp, (size_t)len, NULL);
            break;
        }
        case PRINTF_ONCE: sf_buf_printf(&b, NULL, "%.17g", v[i]); break;
        case PUT_G17: sf_buf_put_g17(&b, v[i], NULL); break;
        case PRINTF_I64_TWICE: {
            int len = snprintf(NULL, 0, "%lld", (long long)ts[i]);
            snprintf(tmp, (size_t)len + 1, "%lld", (long long)ts[i]);
            sf_buf_append(&b, tmp, (size_t)len, NULL);
            break;
        }
        case PRINTF_I64: sf_buf_printf(&b, NULL, "%lld", (long long)ts[i]); break;
        case PUT_I64: sf_buf_put_i64(&b, ts[i], NULL); break;
        }
    }
    double t = now() - t0;
    *bytes += b.len;
    sf_buf_destroy(&b);
    return t;
}

/* Values the exact path cannot take (snprintf does them): 0 < |v| < 2^-36
 * or |v| >= 2^147, by the range documented in sf/buf.h. */
static size_t count_fallbacks(const double *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs(v[i]);
        k += a != 0 && (a < 0x1p-36 || a >= 0x1p147);
    }
    return k;
}

/* --n COUNT, --reps R; non-zero on anything else. */
static int parse_args(int argc, char **argv, size_t *n, int *reps)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return 1;
        char *end;
        long long v = strtoll(argv[i + 1], &end, 10);
        if (strcmp(argv[i], "--n") == 0 && *end == '\0' && v >= 1 && v <= 1000000000)
            *n = (size_t)v;
        else if (strcmp(argv[i], "--reps") == 0 && *end == '\0' && v >= 1 && v <= 100)
            *reps = (int)v;
        else
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = 10000000;
    int reps = 1;
    if (parse_args(argc, argv, &n, &reps)) {
        fprintf(stderr, "usage: sf-bench-fmt [--n COUNT (1..1e9)] [--reps R (1..100)]\n");
        return 2;
    }
    double *v = malloc(n * sizeof *v);
    int64_t *ts = malloc(n * sizeof *ts);
    if (v == NULL || ts == NULL) {
        fprintf(stderr, "sf-bench-fmt: out of memory\n");
        return 1;
    }
    make_values(v, ts, n);
    printf("%zu numbers, best of %d; outside the exact range (snprintf fallback): %zu\n", n, reps,
           count_fallbacks(v, n));
    for (int c = PRINTF_TWICE; c <= PUT_I64; c++) {
        double best = 0;
        uint64_t bytes = 0;
        for (int r = 0; r < reps; r++) {
            bytes = 0;
            double t = run((fmt_case)c, v, ts, n, &bytes);
            best = r == 0 || t < best ? t : best;
        }
        printf("%-64s %7.1f ns/number  (%" PRIu64 " bytes)\n", case_names[c], best * 1e9 / (double)n, bytes);
    }
    free(v);
    free(ts);
    return 0;
}
