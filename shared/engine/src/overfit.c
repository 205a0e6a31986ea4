/* overfit: block statistics, PBO by CSCV and the Deflated Sharpe Ratio; see
 * sf/overfit.h.
 *
 * DESIGN
 * A set keeps its members member-major, 3S doubles each (counts, sums, sums
 * of squares), so a member's blocks are one cache line run. CSCV goes over
 * the members in chunks that stay in cache (CHUNK members, about 200 KB at
 * S = 16) and, for each chunk, over every split: pass 1 keeps each split's
 * best in-sample Sharpe and its member (strict >, members in order, so the
 * first of equals wins), pass 2 counts, for each split, the members whose
 * out-of-sample Sharpe is below or equal to the winner's. The winner's own
 * out-of-sample Sharpe is computed by the same function (block order, the
 * same operations), so it equals itself bit for bit. Memory is the set plus
 * a few words a split.
 */
#include "sf/overfit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512
#define EULER_GAMMA 0.57721566490153286061
#define SEED 0x5346b10c5eedULL

/* ---- compensated summation ---- */

typedef struct ksum {
    double s, c;
} ksum;

/* Neumaier's step. The larger magnitude of s and x is picked by selects, not
 * a branch (the operations, and so the bits, are those of the textbook
 * if/else; a branch mispredicts whenever the sum wanders near zero). */
static void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    int s_big = fabs(k->s) >= fabs(x);
    double big = s_big ? k->s : x, small = s_big ? x : k->s;
    k->c += (big - t) + small;
    k->s = t;
}

static double ksum_get(const ksum *k)
{
    return k->s + k->c;
}

/* ---- block statistics ---- */

sf_status sf_overfit_blocks_check(long long s, sf_err *err)
{
    if (s < SF_OVERFIT_BLOCKS_MIN || s > SF_OVERFIT_BLOCKS_MAX || s % 2 != 0)
        return sf_err_set(err, SF_ERR_INVALID, "blocks: must be an even number from %d to %d, not %lld",
                          SF_OVERFIT_BLOCKS_MIN, SF_OVERFIT_BLOCKS_MAX, s);
    return SF_OK;
}

static double ret_at(const double *eq, size_t i)
{
    return eq[i] == eq[i - 1] ? 0.0 : eq[i] / eq[i - 1] - 1.0;
}

/* ---- two compensated sums at once ---- */

/* Two ksums (x into lane 0, y into lane 1) stepped together: with SSE2 in
 * the two lanes of a register (the same IEEE operations lane by lane, the
 * select by masks; the compare is false on NaN like the scalar one), else
 * one after the other. Callers keep a ksum2 in a local so it stays in
 * registers through their loop. */
#if defined(__SSE2__)
#include <emmintrin.h>

typedef struct ksum2 {
    __m128d s, c;
} ksum2;

static ksum2 ksum2_zero(void)
{
    ksum2 k = {_mm_setzero_pd(), _mm_setzero_pd()};
    return k;
}

static void ksum2_add(ksum2 *k, double x, double y)
{
    const __m128d abs = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL));
    __m128d v = _mm_set_pd(y, x), t = _mm_add_pd(k->s, v);
    __m128d s_big = _mm_cmpge_pd(_mm_and_pd(k->s, abs), _mm_and_pd(v, abs));
    __m128d big = _mm_or_pd(_mm_and_pd(s_big, k->s), _mm_andnot_pd(s_big, v));
    __m128d small = _mm_or_pd(_mm_and_pd(s_big, v), _mm_andnot_pd(s_big, k->s));
    k->c = _mm_add_pd(k->c, _mm_add_pd(_mm_sub_pd(big, t), small));
    k->s = t;
}

/* Lane 0 and lane 1 as two ksums. */
static void ksum2_get(const ksum2 *k, ksum *x, ksum *y)
{
    double s[2], c[2];
    _mm_storeu_pd(s, k->s);
    _mm_storeu_pd(c, k->c);
    *x = (ksum){s[0], c[0]};
    *y = (ksum){s[1], c[1]};
}

/* From and to acc[4] = {x.s, y.s, x.c, y.c}. */
static ksum2 ksum2_load(const double *acc)
{
    ksum2 k = {_mm_loadu_pd(acc), _mm_loadu_pd(acc + 2)};
    return k;
}

static void ksum2_store(const ksum2 *k, double *acc)
{
    _mm_storeu_pd(acc, k->s);
    _mm_storeu_pd(acc + 2, k->c);
}
#else
typedef struct ksum2 {
    ksum x, y;
} ksum2;

static ksum2 ksum2_zero(void)
{
    ksum2 k = {{0, 0}, {0, 0}};
    return k;
}

static void ksum2_add(ksum2 *k, double x, double y)
{
    ksum_add(&k->x, x);
    ksum_add(&k->y, y);
}

static void ksum2_get(const ksum2 *k, ksum *x, ksum *y)
{
    *x = k->x;
    *y = k->y;
}

static ksum2 ksum2_load(const double *acc)
{
    ksum2 k = {{acc[0], acc[2]}, {acc[1], acc[3]}};
    return k;
}

static void ksum2_store(const ksum2 *k, double *acc)
{
    acc[0] = k->x.s;
    acc[1] = k->y.s;
    acc[2] = k->x.c;
    acc[3] = k->y.c;
}
#endif

/* Returns lo .. hi-1 (hi <= n) added to the two sums in acc (sf_blocks_scan's
 * layout), stopping after the first bar whose equity is not positive (the
 * ruin return is the last one used, as in sf_perf_compute; *ruin becomes 1);
 * returns the bar after the last return used. A zero return is skipped when
 * skip is set: adding +0.0 leaves a finite Neumaier state (s, c) bit for bit
 * as it is (neither is ever -0.0: both start at +0.0 and a sum rounds to
 * -0.0 only from two -0.0s), so the result is the same unless a sum ends
 * non-finite, which the caller checks. */
static size_t block_sums(const double *eq, size_t lo, size_t hi, int skip, double *acc, int *ruin)
{
    ksum2 k = ksum2_load(acc);
    size_t i = lo;
    for (; i < hi; i++) {
        double r = ret_at(eq, i);
        if (r != 0.0 || !skip)
            ksum2_add(&k, r, r * r);
        if (!(eq[i] > 0)) {
            *ruin = 1;
            i++;
            break;
        }
    }
    ksum2_store(&k, acc);
    return i;
}

/* Central third and fourth power sums about mean over returns 1..m (a zero
 * return's powers computed once, by the same operations). */
static void central_sums(const double *eq, size_t m, double mean, sf_blocks *out)
{
    ksum2 k = ksum2_zero();
    double z = 0.0 - mean, z2 = z * z, z3 = z2 * z, z4 = z2 * z2;
    for (size_t i = 1; i <= m; i++) {
        double d3 = z3, d4 = z4;
        if (eq[i] != eq[i - 1]) {
            double d = (eq[i] / eq[i - 1] - 1.0) - mean, d2 = d * d;
            d3 = d2 * d;
            d4 = d2 * d2;
        }
        ksum2_add(&k, d3, d4);
    }
    ksum k3, k4;
    ksum2_get(&k, &k3, &k4);
    out->c3 = ksum_get(&k3);
    out->c4 = ksum_get(&k4);
}

/* ---- the blocks, fed as the curve grows ---- */

void sf_blocks_scan_init(sf_blocks_scan *sc, size_t n, int s)
{
    memset(sc, 0, sizeof *sc);
    if (sf_overfit_blocks_check(s, NULL) != SF_OK || n == 0)
        return;
    sc->b.s = s;
    sc->n = n;
}

/* Block k begins: returns lo .. hi-1 of the equal split, cut at a ruin. */
static void scan_start(sf_blocks_scan *sc)
{
    size_t slots = sc->n - 1, s = (size_t)sc->b.s, k = (size_t)sc->k;
    size_t lo = 1 + k * slots / s, hi = 1 + (k + 1) * slots / s;
    hi = hi > sc->end ? sc->end : hi;
    lo = lo > hi ? hi : lo;
    sc->lo = sc->pos = lo;
    sc->hi = hi;
    memset(sc->acc, 0, sizeof sc->acc);
}

/* Block k is complete (pos is the bar after its last return): its count and
 * sums, summed again without skipping zeros when a sum is not finite. */
static void scan_close(sf_blocks_scan *sc, const double *eq)
{
    if (!isfinite(sc->acc[0]) || !isfinite(sc->acc[1])) {
        int ruin = 0;
        memset(sc->acc, 0, sizeof sc->acc);
        block_sums(eq, sc->lo, sc->hi, 0, sc->acc, &ruin);
    }
    ksum s1 = {sc->acc[0], sc->acc[2]}, s2 = {sc->acc[1], sc->acc[3]}, all = {sc->all[0], sc->all[1]};
    int k = sc->k;
    sc->b.n[k] = (uint32_t)(sc->pos - sc->lo);
    sc->b.sum[k] = ksum_get(&s1);
    sc->b.sumsq[k] = ksum_get(&s2);
    ksum_add(&all, sc->b.sum[k]);
    sc->all[0] = all.s;
    sc->all[1] = all.c;
    sc->k++;
}

void sf_blocks_scan_feed(sf_blocks_scan *sc, const double *equity, size_t upto)
{
    if (sc->b.s == 0 || upto == 0)
        return;
    if (sc->end == 0) { /* point 0 is here: returns 1 .. end-1, none when it is not positive */
        sc->end = sc->n >= 2 && equity[0] > 0 ? sc->n : 1;
        scan_start(sc);
    }
    while (sc->k < sc->b.s) {
        size_t to = sc->hi < upto ? sc->hi : upto;
        int ruin = 0;
        if (sc->pos < to)
            sc->pos = block_sums(equity, sc->pos, to, 1, sc->acc, &ruin);
        if (ruin)
            sc->end = sc->pos;
        else if (sc->pos < sc->hi)
            return; /* the rest of the block is not here yet */
        scan_close(sc, equity);
        if (sc->k < sc->b.s)
            scan_start(sc);
    }
}

void sf_blocks_scan_finish(sf_blocks_scan *sc, const double *equity, sf_blocks *out)
{
    memset(out, 0, sizeof *out);
    if (sc->b.s == 0)
        return;
    sf_blocks_scan_feed(sc, equity, sc->n);
    memcpy(out, &sc->b, sizeof *out);
    size_t m = sc->end - 1; /* the last return used (0: none) */
    ksum all = {sc->all[0], sc->all[1]};
    central_sums(equity, m, m ? ksum_get(&all) / (double)m : 0.0, out);
}

void sf_blocks_compute(const double *equity, size_t n, int s, sf_blocks *out)
{
    sf_blocks_scan sc;
    sf_blocks_scan_init(&sc, n, s);
    sf_blocks_scan_finish(&sc, equity, out);
}

/* Per-bar Sharpe from a count, a sum and a sum of squares. */
static double sharpe3(double cn, double s1, double s2)
{
    if (!(cn >= 2))
        return NAN;
    double mean = s1 / cn;
    double ss = s2 - s1 * mean;
    if (!(ss > 0))
        return 0.0;
    return mean / sqrt(ss / (cn - 1));
}

double sf_blocks_sharpe(const sf_blocks *b, uint32_t mask)
{
    double cn = 0, s1 = 0, s2 = 0;
    for (int k = 0; k < b->s; k++) {
        if (!(mask >> k & 1u))
            continue;
        cn += b->n[k];
        s1 += b->sum[k];
        s2 += b->sumsq[k];
    }
    return sharpe3(cn, s1, s2);
}

/* ---- packing ---- */

#define PACK_VERSION 1

static size_t packed_size(int s)
{
    return 4 + 4 * (size_t)s + 16 * (size_t)s + 16;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static const uint8_t *get_u32(const uint8_t *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++)
        *v |= (uint32_t)p[i] << (8 * i);
    return p + 4;
}

static const uint8_t *get_f64(const uint8_t *p, double *d)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    memcpy(d, &v, sizeof *d);
    return p + 8;
}

size_t sf_blocks_pack(const sf_blocks *b, uint8_t *out, size_t cap)
{
    if (b->s <= 0 || packed_size(b->s) > cap)
        return 0;
    uint8_t *p = out;
    *p++ = PACK_VERSION;
    *p++ = (uint8_t)b->s;
    *p++ = 0;
    *p++ = 0;
    for (int k = 0; k < b->s; k++)
        p = put_u32(p, b->n[k]);
    for (int k = 0; k < b->s; k++)
        p = put_f64(p, b->sum[k]);
    for (int k = 0; k < b->s; k++)
        p = put_f64(p, b->sumsq[k]);
    p = put_f64(p, b->c3);
    p = put_f64(p, b->c4);
    return (size_t)(p - out);
}

sf_status sf_blocks_unpack(const uint8_t *p, size_t len, sf_blocks *out, sf_err *err)
{
    memset(out, 0, sizeof *out);
    if (len < 4 || p[0] != PACK_VERSION || sf_overfit_blocks_check(p[1], NULL) != SF_OK || len != packed_size(p[1]))
        return sf_err_set(err, SF_ERR_PARSE, "could not read block statistics: %zu bytes, not a version %d record", len,
                          PACK_VERSION);
    int s = p[1];
    p += 4;
    for (int k = 0; k < s; k++)
        p = get_u32(p, &out->n[k]);
    for (int k = 0; k < s; k++)
        p = get_f64(p, &out->sum[k]);
    for (int k = 0; k < s; k++)
        p = get_f64(p, &out->sumsq[k]);
    p = get_f64(p, &out->c3);
    get_f64(p, &out->c4);
    out->s = s;
    return SF_OK;
}

/* ---- the set ---- */

struct sf_overfit_set {
    int s;
    size_t n, cap;
    double *v; /* 3s a member: counts, sums, sums of squares */
    double *c3, *c4;
    int64_t *index;
};

sf_status sf_overfit_set_new(int s, sf_overfit_set **out, sf_err *err)
{
    *out = NULL;
    sf_status st = sf_overfit_blocks_check(s, err);
    if (st != SF_OK)
        return st;
    sf_overfit_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate overfitting statistics");
    set->s = s;
    *out = set;
    return SF_OK;
}

static sf_status set_grow(sf_overfit_set *set, size_t cap, sf_err *err)
{
    size_t w = 3 * (size_t)set->s;
    double *v = realloc(set->v, cap * w * sizeof *v);
    if (v != NULL)
        set->v = v;
    double *c3 = realloc(set->c3, cap * sizeof *c3);
    if (c3 != NULL)
        set->c3 = c3;
    double *c4 = realloc(set->c4, cap * sizeof *c4);
    if (c4 != NULL)
        set->c4 = c4;
    int64_t *ix = realloc(set->index, cap * sizeof *ix);
    if (ix != NULL)
        set->index = ix;
    if (v == NULL || c3 == NULL || c4 == NULL || ix == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate overfitting statistics");
    set->cap = cap;
    return SF_OK;
}

sf_status sf_overfit_set_put(sf_overfit_set *set, size_t i, int64_t index, const sf_blocks *b, sf_err *err)
{
    if (b->s != set->s)
        return sf_err_set(err, SF_ERR_INVALID, "member %lld: %d blocks, the sweep has %d", (long long)index, b->s,
                          set->s);
    if (i >= set->n)
        return sf_err_set(err, SF_ERR_INVALID, "member slot %zu: the set holds %zu", i, set->n);
    int s = set->s;
    double *v = set->v + i * 3 * (size_t)s;
    for (int k = 0; k < s; k++) {
        v[k] = b->n[k];
        v[s + k] = b->sum[k];
        v[2 * s + k] = b->sumsq[k];
    }
    set->c3[i] = b->c3;
    set->c4[i] = b->c4;
    set->index[i] = index;
    return SF_OK;
}

sf_status sf_overfit_set_add(sf_overfit_set *set, int64_t index, const sf_blocks *b, sf_err *err)
{
    if (b->s != set->s)
        return sf_err_set(err, SF_ERR_INVALID, "member %lld: %d blocks, the sweep has %d", (long long)index, b->s,
                          set->s);
    if (set->n == set->cap && set_grow(set, set->cap ? set->cap * 2 : 256, err) != SF_OK)
        return SF_ERR_NOMEM;
    set->n++;
    return sf_overfit_set_put(set, set->n - 1, index, b, err);
}

sf_status sf_overfit_set_resize(sf_overfit_set *set, size_t n, sf_err *err)
{
    if (n > set->cap && set_grow(set, n, err) != SF_OK)
        return SF_ERR_NOMEM;
    for (size_t i = set->n; i < n; i++) {
        memset(set->v + i * 3 * (size_t)set->s, 0, 3 * (size_t)set->s * sizeof *set->v);
        set->c3[i] = set->c4[i] = 0;
        set->index[i] = (int64_t)i;
    }
    set->n = n;
    return SF_OK;
}

size_t sf_overfit_set_count(const sf_overfit_set *set)
{
    return set ? set->n : 0;
}

void sf_overfit_set_free(sf_overfit_set *set)
{
    if (set == NULL)
        return;
    free(set->v);
    free(set->c3);
    free(set->c4);
    free(set->index);
    free(set);
}

/* Member i's Sharpe over the h blocks of list, in list order. */
static double member_sharpe(const sf_overfit_set *set, size_t i, const uint8_t *list, int h)
{
    int s = set->s;
    const double *v = set->v + i * 3 * (size_t)s;
    double cn = 0, s1 = 0, s2 = 0;
    for (int j = 0; j < h; j++) {
        int k = list[j];
        cn += v[k];
        s1 += v[s + k];
        s2 += v[2 * s + k];
    }
    return sharpe3(cn, s1, s2);
}

/* ---- splits ---- */

typedef struct split {
    uint8_t list[SF_OVERFIT_BLOCKS_MAX]; /* the in-sample blocks, then the out-of-sample ones */
    size_t winner;                       /* SIZE_MAX: none */
    double best_is, win_oos;
    uint64_t below, equal;
} split;

static uint64_t binomial(int n, int k)
{
    uint64_t c = 1;
    for (int i = 1; i <= k; i++)
        c = c * (uint64_t)(n - k + i) / (uint64_t)i; /* exact: C(n-k+i, i) at each step */
    return c;
}

static void split_from_mask(split *sp, uint32_t mask, int s)
{
    int a = 0, b = s / 2;
    for (int k = 0; k < s; k++)
        sp->list[(mask >> k & 1u) ? a++ : b++] = (uint8_t)k;
    sp->winner = SIZE_MAX;
    sp->best_is = -INFINITY;
    sp->win_oos = -INFINITY;
    sp->below = sp->equal = 0;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A uniform half of s blocks (a partial Fisher-Yates shuffle). */
static uint32_t random_half(uint64_t *rng, int s)
{
    uint8_t perm[SF_OVERFIT_BLOCKS_MAX];
    for (int k = 0; k < s; k++)
        perm[k] = (uint8_t)k;
    uint32_t mask = 0;
    for (int k = 0; k < s / 2; k++) {
        int j = k + (int)(splitmix(rng) % (uint64_t)(s - k));
        uint8_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
        mask |= 1u << perm[k];
    }
    return mask;
}

/* Every split (Gosper's enumeration of the masks of s/2 bits) or k sampled. */
static void make_splits(split *sp, uint64_t k, int s, int sampled)
{
    if (sampled) {
        uint64_t rng = SEED ^ (uint64_t)s;
        for (uint64_t i = 0; i < k; i++)
            split_from_mask(&sp[i], random_half(&rng, s), s);
        return;
    }
    uint64_t x = (1ULL << (s / 2)) - 1;
    for (uint64_t i = 0; i < k; i++) {
        split_from_mask(&sp[i], (uint32_t)x, s);
        uint64_t c = x & (~x + 1), r = x + c;
        x = (((r ^ x) >> 2) / c) | r;
    }
}

/* Pass 1 over members [lo, hi): each split's best in-sample Sharpe. */
static void pass_winners(const sf_overfit_set *set, split *sp, uint64_t k, size_t lo, size_t hi)
{
    int h = set->s / 2;
    for (uint64_t j = 0; j < k; j++) {
        split *x = &sp[j];
        for (size_t i = lo; i < hi; i++) {
            double sr = member_sharpe(set, i, x->list, h);
            if (sr > x->best_is) {
                x->best_is = sr;
                x->winner = i;
            }
        }
    }
}

/* Pass 2 over members [lo, hi): out-of-sample Sharpe below / equal to the
 * winner's (no Sharpe counts as -Inf). */
static void pass_ranks(const sf_overfit_set *set, split *sp, uint64_t k, size_t lo, size_t hi)
{
    int h = set->s / 2;
    for (uint64_t j = 0; j < k; j++) {
        split *x = &sp[j];
        if (x->winner == SIZE_MAX)
            continue;
        uint64_t below = 0, equal = 0;
        double w = x->win_oos;
        for (size_t i = lo; i < hi; i++) {
            double sr = member_sharpe(set, i, x->list + h, h);
            sr = isnan(sr) ? -INFINITY : sr;
            below += sr < w;
            equal += sr == w;
        }
        x->below += below;
        x->equal += equal;
    }
}

static void run_cscv(const sf_overfit_set *set, split *sp, uint64_t k)
{
    int h = set->s / 2;
    for (size_t lo = 0; lo < set->n; lo += CHUNK)
        pass_winners(set, sp, k, lo, lo + CHUNK < set->n ? lo + CHUNK : set->n);
    for (uint64_t j = 0; j < k; j++) {
        if (sp[j].winner == SIZE_MAX)
            continue;
        double w = member_sharpe(set, sp[j].winner, sp[j].list + h, h);
        sp[j].win_oos = isnan(w) ? -INFINITY : w;
    }
    for (size_t lo = 0; lo < set->n; lo += CHUNK)
        pass_ranks(set, sp, k, lo, lo + CHUNK < set->n ? lo + CHUNK : set->n);
}

/* ---- summaries ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void logit_summary(double *lg, uint64_t k, sf_overfit *o)
{
    static const double q[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
    qsort(lg, k, sizeof *lg, cmp_double);
    for (int i = 0; i < 5; i++) {
        uint64_t r = (uint64_t)ceil(q[i] * (double)k); /* nearest rank */
        o->logit_q[i] = lg[r > 0 ? r - 1 : 0];
    }
    memset(o->logit_hist, 0, sizeof o->logit_hist);
    for (uint64_t j = 0; j < k; j++) {
        double b = ceil(lg[j]) + 4; /* (-inf,-4] -> 0, (-4,-3] -> 1, ... */
        int bin = b < 0 ? 0 : b > SF_OVERFIT_HIST_BINS - 1 ? SF_OVERFIT_HIST_BINS - 1 : (int)b;
        o->logit_hist[bin]++;
    }
}

/* PBO, the logits, the winners' out-of-sample Sharpe and the loss share. */
static void split_summary(const sf_overfit_set *set, const split *sp, uint64_t k, double *lg, sf_overfit *o)
{
    int h = set->s / 2;
    uint64_t used = 0, over = 0, loss = 0, reg = 0;
    double n1 = (double)set->n + 1, oos_sum = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (uint64_t j = 0; j < k; j++) {
        const split *x = &sp[j];
        if (x->winner == SIZE_MAX)
            continue;
        double rank = (double)x->below + ((double)x->equal + 1) / 2;
        double w = rank / n1, l = log(w / (1 - w));
        lg[used++] = l;
        over += l <= 0;
        loss += x->win_oos < 0;
        double is = member_sharpe(set, x->winner, x->list, h), oos = x->win_oos;
        if (isfinite(is) && isfinite(oos)) {
            reg++;
            oos_sum += oos;
            sx += is, sy += oos, sxx += is * is, sxy += is * oos;
        }
    }
    o->splits = used;
    o->pbo = used ? (double)over / (double)used : NAN;
    o->prob_loss = used ? (double)loss / (double)used : NAN;
    o->oos_sharpe_mean = reg ? oos_sum / (double)reg : NAN;
    double var = reg ? sxx - sx * sx / (double)reg : 0;
    o->degradation_slope = reg >= 2 && var > 0 ? (sxy - sx * sy / (double)reg) / var : NAN;
    if (used)
        logit_summary(lg, used, o);
}

/* ---- normal distribution ---- */

double sf_norm_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double acklam(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00};
    if (p < 0.02425 || p > 1 - 0.02425) {
        double q = sqrt(-2 * log(p < 0.5 ? p : 1 - p));
        double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                   ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        return p < 0.5 ? x : -x;
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

double sf_norm_ppf(double p)
{
    if (!(p >= 0 && p <= 1))
        return NAN;
    if (p == 0)
        return -INFINITY;
    if (p == 1)
        return INFINITY;
    double x = acklam(p);
    double e = sf_norm_cdf(x) - p; /* one Halley step */
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/* ---- DSR ---- */

/* Total Sharpe of member i, NaN when its whole series does not vary. */
static double total_sharpe(const sf_overfit_set *set, size_t i, const uint8_t *all)
{
    int s = set->s;
    const double *v = set->v + i * 3 * (size_t)s;
    double cn = 0, s1 = 0, s2 = 0;
    for (int k = 0; k < s; k++)
        cn += v[all[k]], s1 += v[s + all[k]], s2 += v[2 * s + all[k]];
    return cn >= 2 && s2 - s1 * (s1 / cn) > 0 ? member_sharpe(set, i, all, s) : NAN;
}

static void dsr_of_best(const sf_overfit_set *set, size_t best, double var, double trials, sf_overfit *o)
{
    int s = set->s;
    const double *v = set->v + best * 3 * (size_t)s;
    double t = 0, s1 = 0, s2 = 0;
    for (int k = 0; k < s; k++)
        t += v[k], s1 += v[s + k], s2 += v[2 * s + k];
    double m2 = (s2 - s1 * s1 / t) / t;
    o->returns = (size_t)t;
    o->skewness = set->c3[best] / t / pow(m2, 1.5);
    o->kurtosis = set->c4[best] / t / (m2 * m2);
    o->sharpe_variance = var;
    o->sr0 = trials > 1 ? sqrt(var) * ((1 - EULER_GAMMA) * sf_norm_ppf(1 - 1 / trials) +
                                       EULER_GAMMA * sf_norm_ppf(1 - 1 / (trials * M_E)))
                        : 0.0;
    double sr = o->best_sharpe;
    double den = 1 - o->skewness * sr + (o->kurtosis - 1) / 4 * sr * sr;
    o->dsr = NAN;
    if (!(den > 0) || !isfinite(den))
        snprintf(o->dsr_reason, sizeof o->dsr_reason, "the best member's returns are too skewed to deflate");
    else
        o->dsr = sf_norm_cdf((sr - o->sr0) * sqrt(t - 1) / sqrt(den));
}

/* The best Sharpe, the variance across members and the DSR; 0 when fewer
 * than two members have a Sharpe. */
static int deflate(const sf_overfit_set *set, double trials, sf_overfit *o)
{
    uint8_t all[SF_OVERFIT_BLOCKS_MAX];
    for (int k = 0; k < set->s; k++)
        all[k] = (uint8_t)k;
    size_t cnt = 0, best = SIZE_MAX;
    double mean = 0, m2 = 0, top = -INFINITY;
    for (size_t i = 0; i < set->n; i++) {
        double sr = total_sharpe(set, i, all);
        if (isnan(sr))
            continue;
        cnt++;
        double d = sr - mean; /* Welford, in member order */
        mean += d / (double)cnt;
        m2 += d * (sr - mean);
        if (sr > top)
            top = sr, best = i;
    }
    if (cnt < 2)
        return 0;
    o->best_index = set->index[best];
    o->best_sharpe = top;
    dsr_of_best(set, best, m2 / (double)(cnt - 1), trials, o);
    return 1;
}

/* ---- all together ---- */

static void verdict(sf_overfit *o)
{
    if (!o->ok) {
        snprintf(o->verdict, sizeof o->verdict, "not enough data: %.160s", o->reason);
        return;
    }
    const char *v = "possibly overfit";
    if (o->pbo >= 0.5 || !(o->dsr >= 0.5))
        v = "likely overfit";
    else if (o->pbo <= 0.1 && o->dsr >= 0.95)
        v = "no sign of overfitting";
    if (isnan(o->dsr))
        snprintf(o->verdict, sizeof o->verdict, "%s: PBO %.2f, DSR n/a", v, o->pbo);
    else
        snprintf(o->verdict, sizeof o->verdict, "%s: PBO %.2f, DSR %.2f", v, o->pbo, o->dsr);
}

static void report_init(const sf_overfit_set *set, double trials, sf_overfit *o)
{
    memset(o, 0, sizeof *o);
    o->blocks = set->s;
    o->members = set->n;
    o->trials = trials;
    o->splits_total = binomial(set->s, set->s / 2);
    o->best_index = -1;
    o->pbo = o->pbo_margin = o->oos_sharpe_mean = o->degradation_slope = o->prob_loss = NAN;
    o->best_sharpe = o->skewness = o->kurtosis = o->sharpe_variance = o->sr0 = o->dsr = NAN;
    for (int i = 0; i < 5; i++)
        o->logit_q[i] = NAN;
}

/* Why the set cannot be judged, or NULL. */
static const char *lacking(const sf_overfit_set *set, char *buf, size_t size)
{
    if (set->n < 2)
        return set->n ? "one member: PBO and DSR compare two or more" : "no member";
    double most = 0;
    for (size_t i = 0; i < set->n; i++) {
        double t = 0;
        for (int k = 0; k < set->s; k++)
            t += set->v[i * 3 * (size_t)set->s + k];
        most = t > most ? t : most;
    }
    if (most < 2.0 * set->s) {
        snprintf(buf, size, "%.0f returns, fewer than 2 for each of %d blocks", most, set->s);
        return buf;
    }
    return NULL;
}

static sf_status cscv(const sf_overfit_set *set, uint64_t work, sf_overfit *o, sf_err *err)
{
    uint64_t k = o->splits_total;
    o->sampled = k > SF_OVERFIT_SPLITS_MAX || k * set->n > work;
    if (o->sampled) {
        uint64_t want = work / set->n;
        want = want < SF_OVERFIT_SPLITS_MIN ? SF_OVERFIT_SPLITS_MIN : want;
        want = want > SF_OVERFIT_SPLITS_MAX ? SF_OVERFIT_SPLITS_MAX : want;
        o->sampled = want < k; /* as many draws as splits: take them all */
        k = o->sampled ? want : k;
    }
    split *sp = malloc(k * sizeof *sp);
    double *lg = malloc(k * sizeof *lg);
    if (sp == NULL || lg == NULL) {
        free(sp);
        free(lg);
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate %llu splits", (unsigned long long)k);
    }
    make_splits(sp, k, set->s, o->sampled);
    run_cscv(set, sp, k);
    split_summary(set, sp, k, lg, o);
    o->pbo_margin = o->sampled && o->splits ? 1 / sqrt((double)o->splits) : 0.0;
    free(sp);
    free(lg);
    return SF_OK;
}

sf_status sf_overfit_compute(const sf_overfit_set *set, const sf_overfit_opts *opts, sf_overfit *out, sf_err *err)
{
    double trials = opts && opts->effective_trials > 0 ? opts->effective_trials : (double)set->n;
    uint64_t work = opts && opts->work > 0 ? opts->work : SF_OVERFIT_WORK_DEFAULT;
    report_init(set, trials, out);
    char buf[SF_OVERFIT_TEXT_MAX];
    const char *why = lacking(set, buf, sizeof buf);
    if (why == NULL && !deflate(set, trials, out))
        why = "fewer than two members whose returns vary";
    if (why == NULL) {
        sf_status st = cscv(set, work, out, err);
        if (st != SF_OK)
            return st;
        if (out->splits == 0)
            why = "no split has an in-sample winner";
    }
    out->ok = why == NULL;
    if (why != NULL)
        snprintf(out->reason, sizeof out->reason, "%s", why);
    verdict(out);
    return SF_OK;
}

/* ---- JSON ---- */

static sf_status put_num(sf_buf *b, const char *key, double v, sf_err *err)
{
    sf_status st = sf_buf_printf(b, err, "\"%s\": ", key);
    if (st == SF_OK)
        st = isfinite(v) ? sf_buf_put_g17(b, v, err) : sf_buf_puts(b, "null", err);
    return st;
}

static sf_status put_text(sf_buf *b, const char *key, const char *text, sf_err *err)
{
    if (text == NULL || text[0] == '\0')
        return sf_buf_printf(b, err, "\"%s\": null", key);
    return sf_buf_printf(b, err, "\"%s\": \"%s\"", key, text); /* our own ASCII: no escapes */
}

static sf_status put_logits(const sf_overfit *o, sf_buf *b, sf_err *err)
{
    static const char *const qn[5] = {"p05", "p25", "median", "p75", "p95"};
    sf_status st = sf_buf_puts(b, "\"logit\": {", err);
    for (int i = 0; i < 5 && st == SF_OK; i++) {
        st = put_num(b, qn[i], o->logit_q[i], err);
        if (st == SF_OK)
            st = sf_buf_puts(b, ", ", err);
    }
    if (st == SF_OK)
        st = sf_buf_puts(b, "\"histogram\": {\"edges\": [-4, -3, -2, -1, 0, 1, 2, 3, 4], \"counts\": [", err);
    for (int i = 0; i < SF_OVERFIT_HIST_BINS && st == SF_OK; i++)
        st = sf_buf_printf(b, err, "%s%llu", i ? ", " : "", (unsigned long long)o->logit_hist[i]);
    return st == SF_OK ? sf_buf_puts(b, "]}}, ", err) : st;
}

static sf_status put_best(const sf_overfit *o, sf_buf *b, sf_err *err)
{
    if (o->best_index < 0)
        return sf_buf_puts(b, "\"best\": null, ", err);
    sf_status st = sf_buf_printf(b, err, "\"best\": {\"index\": %lld, ", (long long)o->best_index);
    if (st == SF_OK)
        st = put_num(b, "sharpe", o->best_sharpe, err);
    if (st == SF_OK)
        st = sf_buf_printf(b, err, ", \"returns\": %zu, ", o->returns);
    if (st == SF_OK)
        st = put_num(b, "skewness", o->skewness, err);
    if (st == SF_OK)
        st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_num(b, "kurtosis", o->kurtosis, err);
    return st == SF_OK ? sf_buf_puts(b, "}, ", err) : st;
}

sf_status sf_overfit_to_json(const sf_overfit *o, sf_buf *b, sf_err *err)
{
    sf_status st = sf_buf_printf(b, err, "{\"blocks\": %d, \"members\": %zu, ", o->blocks, o->members);
    if (st == SF_OK)
        st = put_num(b, "effective_trials", o->trials, err);
    if (st == SF_OK)
        st = sf_buf_printf(b, err, ", \"splits\": %llu, \"splits_total\": %llu, \"sampled\": %s, ",
                           (unsigned long long)o->splits, (unsigned long long)o->splits_total,
                           o->sampled ? "true" : "false");
    const struct {
        const char *k;
        double v;
    } head[] = {{"pbo", o->pbo}, {"pbo_margin", o->pbo_margin}};
    for (size_t i = 0; i < 2 && st == SF_OK; i++)
        if ((st = put_num(b, head[i].k, head[i].v, err)) == SF_OK)
            st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_logits(o, b, err);
    const struct {
        const char *k;
        double v;
    } mid[] = {{"oos_sharpe_mean", o->oos_sharpe_mean},
               {"degradation_slope", o->degradation_slope},
               {"prob_loss", o->prob_loss}};
    for (size_t i = 0; i < 3 && st == SF_OK; i++)
        if ((st = put_num(b, mid[i].k, mid[i].v, err)) == SF_OK)
            st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_best(o, b, err);
    const struct {
        const char *k;
        double v;
    } tail[] = {{"sharpe_variance", o->sharpe_variance}, {"sr0", o->sr0}, {"dsr", o->dsr}};
    for (size_t i = 0; i < 3 && st == SF_OK; i++)
        if ((st = put_num(b, tail[i].k, tail[i].v, err)) == SF_OK)
            st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_text(b, "dsr_reason", o->dsr_reason, err);
    if (st == SF_OK)
        st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_text(b, "reason", o->ok ? NULL : o->reason, err);
    if (st == SF_OK)
        st = sf_buf_puts(b, ", ", err);
    if (st == SF_OK)
        st = put_text(b, "verdict", o->verdict, err);
    return st == SF_OK ? sf_buf_puts(b, "}", err) : st;
}
