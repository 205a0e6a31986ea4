/* Tests for sf/overfit.h: block statistics (the Sharpe of any union of blocks
 * equals the Sharpe of those blocks' raw returns), packing, the normal
 * distribution, and PBO and DSR against a straightforward reference written
 * here (raw return arrays, every split, two-pass moments: none of the
 * module's chunked fast path) on constructed sweeps: pure noise (PBO near
 * 0.5, the best's DSR low) and one member with an edge in every block (PBO
 * near 0, DSR near 1). Edge cases give a reason, and never NaN in JSON.
 * Also: the sampled path within its stated margin, determinism, the local
 * sweep (thread-count independent), and the time for 100,000 members. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/bars.h"
#include "sf/grid.h"
#include "sf/overfit.h"
#include "sf/result.h"
#include "sf/sweep.h"

#define EULER_GAMMA 0.57721566490153286061

/* ---- synthetic members ---- */

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *x)
{
    double u = ((double)(rng_next(x) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(rng_next(x) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* An equity curve of n points from returns drift + sd * noise. */
static double *curve(size_t n, double drift, double sd, uint64_t seed)
{
    double *eq = malloc(n * sizeof *eq);
    uint64_t x = seed;
    eq[0] = 10000;
    for (size_t i = 1; i < n; i++)
        eq[i] = eq[i - 1] * (1 + drift + sd * gauss(&x));
    return eq;
}

/* ---- the reference ---- */

/* Sharpe of the returns of the blocks in mask, from the curve itself. */
static double ref_sharpe(const double *eq, size_t n, int s, uint32_t mask)
{
    size_t slots = n - 1, cnt = 0;
    double sum = 0;
    for (int pass = 0; pass < 2; pass++) {
        double mean = cnt ? sum / (double)cnt : 0, ss = 0;
        for (int k = 0; k < s; k++) {
            if (!(mask >> k & 1u))
                continue;
            for (size_t i = 1 + (size_t)k * slots / (size_t)s; i < 1 + (size_t)(k + 1) * slots / (size_t)s; i++) {
                double r = eq[i] / eq[i - 1] - 1;
                if (pass == 0)
                    sum += r, cnt++;
                else
                    ss += (r - mean) * (r - mean);
            }
        }
        if (pass == 1)
            return cnt < 2 ? NAN : ss > 0 ? mean / sqrt(ss / (double)(cnt - 1)) : 0;
    }
    return NAN;
}

typedef struct ref_out {
    double pbo, prob_loss, dsr, best_sharpe;
    size_t splits;
} ref_out;

static double ref_ppf(double p) /* bisection on erfc: slow and plain */
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static void ref_pbo(double **eq, size_t members, size_t n, int s, ref_out *o)
{
    uint32_t full = (1u << s) - 1;
    size_t over = 0, loss = 0, splits = 0;
    double *oos = malloc(members * sizeof *oos);
    for (uint32_t mask = 0; mask <= full; mask++) {
        if (__builtin_popcount(mask) != s / 2)
            continue;
        size_t best = 0;
        double top = -INFINITY;
        for (size_t m = 0; m < members; m++) {
            double is = ref_sharpe(eq[m], n, s, mask);
            if (is > top)
                top = is, best = m;
            oos[m] = ref_sharpe(eq[m], n, s, full & ~mask);
        }
        double below = 0, equal = 0;
        for (size_t m = 0; m < members; m++)
            below += oos[m] < oos[best], equal += oos[m] == oos[best];
        double w = (below + (equal + 1) / 2) / ((double)members + 1);
        over += log(w / (1 - w)) <= 0;
        loss += oos[best] < 0;
        splits++;
    }
    free(oos);
    o->splits = splits;
    o->pbo = (double)over / (double)splits;
    o->prob_loss = (double)loss / (double)splits;
}

static void ref_dsr(double **eq, size_t members, size_t n, ref_out *o)
{
    double *sr = malloc(members * sizeof *sr), mean = 0, var = 0;
    size_t best = 0;
    for (size_t m = 0; m < members; m++) {
        sr[m] = ref_sharpe(eq[m], n, 2, 3);
        mean += sr[m] / (double)members;
        best = sr[m] > sr[best] ? m : best;
    }
    for (size_t m = 0; m < members; m++)
        var += (sr[m] - mean) * (sr[m] - mean) / (double)(members - 1);
    double t = (double)(n - 1), mu = 0, m2 = 0, m3 = 0, m4 = 0;
    for (size_t i = 1; i < n; i++)
        mu += (eq[best][i] / eq[best][i - 1] - 1) / t;
    for (size_t i = 1; i < n; i++) {
        double d = eq[best][i] / eq[best][i - 1] - 1 - mu;
        m2 += d * d / t, m3 += d * d * d / t, m4 += d * d * d * d / t;
    }
    double skew = m3 / pow(m2, 1.5), kurt = m4 / (m2 * m2), nn = (double)members;
    double sr0 = sqrt(var) * ((1 - EULER_GAMMA) * ref_ppf(1 - 1 / nn) + EULER_GAMMA * ref_ppf(1 - 1 / (nn * M_E)));
    double z = (sr[best] - sr0) * sqrt(t - 1) / sqrt(1 - skew * sr[best] + (kurt - 1) / 4 * sr[best] * sr[best]);
    o->dsr = 0.5 * erfc(-z / sqrt(2));
    o->best_sharpe = sr[best];
    free(sr);
}

/* ---- helpers ---- */

static sf_overfit_set *set_of(double **eq, size_t members, size_t n, int s)
{
    sf_overfit_set *set = NULL;
    cr_assert_eq(sf_overfit_set_new(s, &set, NULL), SF_OK);
    for (size_t m = 0; m < members; m++) {
        sf_blocks b;
        sf_blocks_compute(eq[m], n, s, &b);
        cr_assert_eq(sf_overfit_set_add(set, (int64_t)m, &b, NULL), SF_OK);
    }
    return set;
}

static void free_curves(double **eq, size_t members)
{
    for (size_t m = 0; m < members; m++)
        free(eq[m]);
    free(eq);
}

/* The report as JSON, parsed; never "nan" or "inf" in the text. */
static json_t *rendered(const sf_overfit *o)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    cr_assert_eq(sf_overfit_to_json(o, &b, NULL), SF_OK);
    const char *text = sf_buf_str(&b);
    cr_assert_null(strstr(text, "nan"), "%s", text);
    cr_assert_null(strstr(text, "inf"), "%s", text);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, text);
    sf_buf_destroy(&b);
    return j;
}

/* ---- block statistics ---- */

Test(overfit, union_sharpe_equals_the_raw_returns_sharpe)
{
    size_t n = 5003;
    double *eq = curve(n, 0.0004, 0.01, 7);
    for (int s = 2; s <= 32; s += 6) {
        sf_blocks b;
        sf_blocks_compute(eq, n, s, &b);
        cr_assert_eq(b.s, s);
        uint64_t x = 99;
        for (int t = 0; t < 50; t++) {
            uint32_t mask = (uint32_t)rng_next(&x) & (uint32_t)((1ull << s) - 1);
            mask = mask ? mask : 1;
            double got = sf_blocks_sharpe(&b, mask), want = ref_sharpe(eq, n, s, mask);
            cr_assert(fabs(got - want) <= 1e-12 * fabs(want), "s %d mask %x: %.17g vs %.17g", s, mask, got, want);
        }
    }
    free(eq);
}

Test(overfit, blocks_stop_at_ruin_and_pack_round_trips)
{
    double eq[9] = {100, 110, 99, 0, 0, 0, 0, 0, 0};
    sf_blocks b;
    sf_blocks_compute(eq, 9, 4, &b);
    cr_assert_eq(b.n[0] + b.n[1] + b.n[2] + b.n[3], 3, "returns up to the ruin bar only");
    cr_assert_eq(b.n[0], 2);
    cr_assert_eq(b.n[1], 1);
    cr_assert_eq(b.n[3], 0);
    uint8_t buf[SF_OVERFIT_PACKED_MAX];
    size_t len = sf_blocks_pack(&b, buf, sizeof buf);
    cr_assert_eq(len, 4 + 20 * 4 + 16);
    sf_blocks back;
    cr_assert_eq(sf_blocks_unpack(buf, len, &back, NULL), SF_OK);
    cr_assert_eq(memcmp(&back, &b, sizeof b), 0, "bit for bit");
    sf_err err;
    cr_assert_eq(sf_blocks_unpack(buf, len - 1, &back, &err), SF_ERR_PARSE);
    cr_assert_eq(sf_overfit_blocks_check(3, NULL), SF_ERR_INVALID);
    cr_assert_eq(sf_overfit_blocks_check(34, NULL), SF_ERR_INVALID);
    cr_assert_eq(sf_overfit_blocks_check(0, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "even") != NULL, "%s", err.msg);
}

Test(overfit, normal_cdf_and_inverse)
{
    cr_assert(fabs(sf_norm_ppf(0.975) - 1.959963984540054) < 1e-14);
    cr_assert(fabs(sf_norm_ppf(0.5)) < 1e-15);
    cr_assert(fabs(sf_norm_cdf(1.959963984540054) - 0.975) < 1e-15);
    for (double p = 1e-12; p < 1; p = p < 0.01 ? p * 10 : p + 0.0137)
        cr_assert(fabs(sf_norm_cdf(sf_norm_ppf(p)) - p) <= 1e-14 * (p < 0.5 ? p : 1 - p) + 1e-300, "p %.17g", p);
    cr_assert(isinf(sf_norm_ppf(0)) && sf_norm_ppf(0) < 0);
    cr_assert(isnan(sf_norm_ppf(1.5)));
}

/* ---- PBO and DSR against the reference ---- */

static void check_against_reference(double **eq, size_t members, size_t n, int s, sf_overfit *o)
{
    sf_overfit_set *set = set_of(eq, members, n, s);
    cr_assert_eq(sf_overfit_compute(set, NULL, o, NULL), SF_OK);
    sf_overfit_set_free(set);
    ref_out r;
    ref_pbo(eq, members, n, s, &r);
    ref_dsr(eq, members, n, &r);
    cr_assert(o->ok, "%s", o->reason);
    cr_assert_eq(o->sampled, 0);
    cr_assert_eq(o->splits, r.splits);
    cr_assert_eq(o->splits_total, r.splits);
    cr_assert(fabs(o->pbo - r.pbo) < 1e-12, "pbo %.17g vs %.17g", o->pbo, r.pbo);
    cr_assert(fabs(o->prob_loss - r.prob_loss) < 1e-12);
    cr_assert(fabs(o->best_sharpe - r.best_sharpe) < 1e-12 * fabs(r.best_sharpe));
    cr_assert(fabs(o->dsr - r.dsr) < 1e-9, "dsr %.17g vs %.17g", o->dsr, r.dsr);
}

Test(overfit, pure_noise_has_pbo_near_half_and_a_low_dsr)
{
    size_t members = 40, n = 2001;
    double **eq = malloc(members * sizeof *eq);
    for (size_t m = 0; m < members; m++)
        eq[m] = curve(n, 0, 0.01, 1000 + m);
    sf_overfit o;
    check_against_reference(eq, members, n, 10, &o);
    cr_assert(o.pbo > 0.3 && o.pbo < 0.7, "pbo %g", o.pbo);
    cr_assert(o.dsr < 0.9, "dsr %g", o.dsr);
    cr_assert(strncmp(o.verdict, "likely overfit: PBO ", 20) == 0, "%s", o.verdict);
    json_t *j = rendered(&o);
    cr_assert(json_is_real(json_object_get(j, "pbo")));
    cr_assert(json_is_null(json_object_get(j, "reason")));
    json_decref(j);
    free_curves(eq, members);
}

Test(overfit, a_real_edge_has_pbo_near_zero_and_dsr_near_one)
{
    size_t members = 40, n = 2001;
    double **eq = malloc(members * sizeof *eq);
    for (size_t m = 0; m < members; m++)
        eq[m] = curve(n, m == 17 ? 0.003 : 0, 0.01, 2000 + m);
    sf_overfit o;
    check_against_reference(eq, members, n, 10, &o);
    cr_assert(o.pbo < 0.05, "pbo %g", o.pbo);
    cr_assert(o.dsr > 0.99, "dsr %g", o.dsr);
    cr_assert_eq(o.best_index, 17);
    cr_assert(strncmp(o.verdict, "no sign of overfitting: PBO 0.00, DSR 1.00", 42) == 0, "%s", o.verdict);
    free_curves(eq, members);
}

Test(overfit, effective_trials_change_sr0)
{
    size_t members = 20, n = 1001;
    double **eq = malloc(members * sizeof *eq);
    for (size_t m = 0; m < members; m++)
        eq[m] = curve(n, 0.0005, 0.01, 3000 + m);
    sf_overfit_set *set = set_of(eq, members, n, 8);
    sf_overfit a, b, c;
    sf_overfit_opts few = {.effective_trials = 3}, one = {.effective_trials = 1};
    cr_assert_eq(sf_overfit_compute(set, NULL, &a, NULL), SF_OK);
    cr_assert_eq(sf_overfit_compute(set, &few, &b, NULL), SF_OK);
    cr_assert_eq(sf_overfit_compute(set, &one, &c, NULL), SF_OK);
    cr_assert(b.sr0 < a.sr0 && b.dsr > a.dsr, "fewer trials deflate less");
    cr_assert_eq(c.sr0, 0.0, "one trial: no deflation");
    cr_assert_eq(a.pbo, b.pbo, "trials do not change the PBO");
    sf_overfit_set_free(set);
    free_curves(eq, members);
}

/* ---- not enough data ---- */

static void check_lacking(double **eq, size_t members, size_t n, int s, const char *why)
{
    sf_overfit_set *set = set_of(eq, members, n, s);
    sf_overfit o;
    cr_assert_eq(sf_overfit_compute(set, NULL, &o, NULL), SF_OK);
    sf_overfit_set_free(set);
    cr_assert_eq(o.ok, 0);
    cr_assert(strstr(o.reason, why) != NULL, "%s", o.reason);
    cr_assert(strncmp(o.verdict, "not enough data: ", 17) == 0, "%s", o.verdict);
    json_t *j = rendered(&o);
    cr_assert(json_is_null(json_object_get(j, "pbo")));
    cr_assert(json_is_null(json_object_get(j, "dsr")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), o.reason);
    json_decref(j);
}

Test(overfit, edge_cases_give_a_reason_never_nan)
{
    double **eq = malloc(3 * sizeof *eq);
    for (int m = 0; m < 3; m++)
        eq[m] = curve(400, 0, 0.01, 4000 + (uint64_t)m);
    check_lacking(eq, 1, 400, 16, "one member");
    check_lacking(eq, 3, 20, 16, "fewer than 2 for each of 16 blocks");
    for (int m = 0; m < 3; m++)
        for (size_t i = 0; i < 400; i++)
            eq[m][i] = 10000; /* never trades */
    check_lacking(eq, 3, 400, 16, "fewer than two members whose returns vary");
    sf_overfit_set *empty = NULL;
    cr_assert_eq(sf_overfit_set_new(16, &empty, NULL), SF_OK);
    sf_overfit o;
    cr_assert_eq(sf_overfit_compute(empty, NULL, &o, NULL), SF_OK);
    cr_assert_eq(o.ok, 0);
    json_decref(rendered(&o));
    sf_overfit_set_free(empty);
    free_curves(eq, 3);
}

/* ---- bounds and determinism ---- */

Test(overfit, sampled_splits_stay_within_the_stated_margin)
{
    size_t members = 60, n = 1601;
    double **eq = malloc(members * sizeof *eq);
    for (size_t m = 0; m < members; m++)
        eq[m] = curve(n, m % 3 == 0 ? 0.0003 : 0, 0.01, 5000 + m);
    sf_overfit_set *set = set_of(eq, members, n, 16);
    sf_overfit all, some, again;
    sf_overfit_opts small = {.work = 1};
    cr_assert_eq(sf_overfit_compute(set, NULL, &all, NULL), SF_OK);
    cr_assert_eq(sf_overfit_compute(set, &small, &some, NULL), SF_OK);
    cr_assert_eq(sf_overfit_compute(set, &small, &again, NULL), SF_OK);
    cr_assert_eq(all.sampled, 0);
    cr_assert_eq(all.splits, 12870);
    cr_assert_eq(some.sampled, 1);
    cr_assert_eq(some.splits, SF_OVERFIT_SPLITS_MIN);
    cr_assert(fabs(some.pbo - all.pbo) <= some.pbo_margin, "%g vs %g +- %g", some.pbo, all.pbo, some.pbo_margin);
    cr_assert_eq(memcmp(&some, &again, sizeof some), 0, "deterministic, bit for bit");
    sf_overfit_set_free(set);
    free_curves(eq, members);
}

Test(overfit, hundred_thousand_members_in_bounded_time)
{
    size_t members = 100000;
    sf_overfit_set *set = NULL;
    cr_assert_eq(sf_overfit_set_new(16, &set, NULL), SF_OK);
    uint64_t x = 42;
    for (size_t m = 0; m < members; m++) {
        sf_blocks b = {.s = 16};
        double mu = 1e-4 * gauss(&x);
        for (int k = 0; k < 16; k++) {
            b.n[k] = 500;
            double mean = mu + 0.01 * gauss(&x) / sqrt(500), var = 1e-4 * (1 + 0.1 * gauss(&x) / sqrt(250));
            b.sum[k] = 500 * mean;
            b.sumsq[k] = 499 * var + 500 * mean * mean;
        }
        b.c3 = 0;
        b.c4 = 3 * 8000 * 1e-8;
        cr_assert_eq(sf_overfit_set_add(set, (int64_t)m, &b, NULL), SF_OK);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sf_overfit o;
    cr_assert_eq(sf_overfit_compute(set, NULL, &o, NULL), SF_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_log_info("100,000 members, 16 blocks: %llu of %llu splits in %.2f s, PBO %.3f +- %.3f",
                (unsigned long long)o.splits, (unsigned long long)o.splits_total, s, o.pbo, o.pbo_margin);
    fprintf(stderr, "overfit: 100,000 members, 16 blocks: %llu splits in %.2f s\n", (unsigned long long)o.splits, s);
    cr_assert(o.ok, "%s", o.reason);
    cr_assert_eq(o.sampled, 1);
    cr_assert_eq(o.splits, SF_OVERFIT_SPLITS_MIN); /* work / members is below the minimum */
    cr_assert(o.pbo_margin < 0.05);
    sf_overfit_set_free(set);
}

/* ---- the local sweep ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static char *sweep_json(const sf_bars *bars, const char *logic, size_t llen, const sf_grid *grid, int threads)
{
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = threads;
    o.top_k = 3;
    sf_sweep_result *res = NULL;
    sf_err err;
    cr_assert_eq(sf_sweep_run(grid, logic, llen, bars, &o, &res, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(res->has_overfit, 1);
    cr_assert_eq(res->overfit.members, 32);
    cr_assert_eq(res->overfit.blocks, SF_OVERFIT_BLOCKS_DEFAULT);
    /* the best by Sharpe is the leaderboard's first, and the DSR's Sharpe is its per-bar Sharpe */
    cr_assert_eq((size_t)res->overfit.best_index, res->members[0].index);
    cr_assert(fabs(res->overfit.best_sharpe * sqrt(252) - res->members[0].perf.sharpe) <
              1e-12 * fabs(res->members[0].perf.sharpe));
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    cr_assert_eq(sf_sweep_to_json(res, &b, NULL), SF_OK);
    sf_sweep_result_free(res);
    return sf_buf_steal(&b, NULL);
}

Test(overfit, local_sweep_reports_the_same_with_any_thread_count)
{
    sf_bars *bars = NULL;
    cr_assert_eq(sf_bars_load_csv_file(SF_SOURCE_DIR "/tests/data/engine/bars.csv", SF_BARS_MAX_DEFAULT, &bars, NULL),
                 SF_OK);
    size_t llen, glen;
    char *logic = slurp(SF_SOURCE_DIR "/examples/sma-cross.json", &llen);
    char *gtext = slurp(SF_SOURCE_DIR "/examples/sma-grid.json", &glen);
    sf_grid *grid = NULL;
    cr_assert_eq(sf_grid_parse(gtext, glen, 0, &grid, NULL), SF_OK);
    char *one = sweep_json(bars, logic, llen, grid, 1), *three = sweep_json(bars, logic, llen, grid, 3);
    cr_assert_str_eq(one, three);
    json_t *j = json_loads(one, 0, NULL);
    json_t *of = json_object_get(j, "overfit");
    cr_assert(json_is_real(json_object_get(of, "pbo")));
    cr_assert(json_is_string(json_object_get(of, "verdict")));
    json_decref(j);
    free(one);
    free(three);
    sf_grid_free(grid);
    free(gtext);
    free(logic);
    sf_bars_free(bars);
}

/* Block statistics fed as the curve grows (the engine feeds each chunk) are
 * sf_blocks_compute's bit for bit: pieces that end inside blocks and on their
 * edges, a curve with flat stretches, and one ruined inside a block. */
Test(overfit, blocks_fed_as_the_curve_grows_equal_the_whole_curves)
{
    enum { N = 10007 };
    for (int ruined = 0; ruined < 2; ruined++) {
        double *eq = curve(N, 0.0002, 0.01, 11 + (uint64_t)ruined);
        for (size_t i = 0; i < N; i++)
            if (i % 200 < 60 && i > 0)
                eq[i] = eq[i - 1]; /* out of the market */
        if (ruined)
            for (size_t i = 7001; i < N; i++)
                eq[i] = i == 7001 ? -5.0 : 0.0;
        for (int s = 2; s <= SF_OVERFIT_BLOCKS_MAX; s += 10) {
            sf_blocks whole, got;
            sf_blocks_compute(eq, N, s, &whole);
            const size_t steps[] = {1, 13, 626, 4096, N};
            for (size_t p = 0; p < sizeof steps / sizeof steps[0]; p++) {
                sf_blocks_scan sc;
                sf_blocks_scan_init(&sc, N, s);
                for (size_t upto = 0; upto < N; upto += steps[p])
                    sf_blocks_scan_feed(&sc, eq, upto);
                sf_blocks_scan_finish(&sc, eq, &got);
                cr_assert_eq(memcmp(&got, &whole, sizeof got), 0, "s %d, steps of %zu, ruined %d", s, steps[p], ruined);
            }
            if (ruined)
                cr_assert_lt(whole.n[s - 1], N / s, "the last block is cut at the ruin");
        }
        free(eq);
    }
}
