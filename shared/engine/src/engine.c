/* engine: one backtest run and the live decision; see sf/engine.h.
 *
 * DESIGN
 * A run has three phases. (1) Indicator outputs: each logic indicator's
 * outputs over the whole series, from the cache or computed into one private
 * block. (2) Per chunk of SF_ENGINE_CHUNK bars, the entry and exit trees are
 * evaluated into byte arrays by branch-free kernels (a
 * comparison leaf reads its operands through pointers already shifted by
 * their offsets; bars before the first fully defined index are false). (3) A
 * sequential loop over the chunk applies the five steps of a bar (pending
 * fill, stops, end of data, mark to market, decision) to the position state.
 * Signals depend only on bars <= i, and the state machine only reads bar i,
 * so no decision at bar i can see bar i+1. Each chunk's equity values go to
 * the metrics (sf_perf_curve_feed, and sf_blocks_scan_feed for block
 * statistics) while they are in cache, so no later pass reads the whole
 * curve from memory but the blocks' central moments (they need the mean of
 * every return first). A run that keeps no curve and has no block statistics
 * writes its equity into one chunk-sized buffer instead of an array of n.
 */
#include "sf/engine.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ====================================================================== */
/* signal kernels                                                          */
/* ====================================================================== */

/* o[j] = EXPR over operands that are arrays (V: a[j]) or scalars (S: ka).
 * a and b already point at the element for the chunk's first defined bar;
 * crosses read a[j - 1], which the caller guarantees exists. NaN compares
 * false everywhere (the SSE2 predicates used are the ordered ones). */
#define OPV_A(j) a[j]
#define OPS_A(j) ka
#define OPV_B(j) b[j]
#define OPS_B(j) kb
#define E_GT(A, B, j) (A(j) > B(j))
#define E_GTE(A, B, j) (A(j) >= B(j))
#define E_XA(A, B, j) ((A(j) > B(j)) & (A((j)-1) <= B((j)-1)))

#if defined(__SSE2__)
#include <emmintrin.h>

/* gcc's -O2 does not vectorise double compares into bytes, so four at a time
 * by hand: two 2-lane compares, a 4-bit mask, 4 bytes of 0/1 from a table
 * (x86 is little-endian: byte k is element k). */
static const uint32_t spread4[16] = {
    0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000, 0x00010001, 0x00010100, 0x00010101,
    0x01000000, 0x01000001, 0x01000100, 0x01000101, 0x01010000, 0x01010001, 0x01010100, 0x01010101,
};
#define XV_A(j) _mm_loadu_pd(a + (j))
#define XS_A(j) va
#define XV_B(j) _mm_loadu_pd(b + (j))
#define XS_B(j) vb
#define X_GT(A, B, j) _mm_cmpgt_pd(A(j), B(j))
#define X_GTE(A, B, j) _mm_cmpge_pd(A(j), B(j))
#define X_XA(A, B, j) _mm_and_pd(_mm_cmpgt_pd(A(j), B(j)), _mm_cmple_pd(A((j)-1), B((j)-1)))
#define DEF_KERNEL(name, EXPR, A, B, XEXPR, XA, XB)                                                                    \
    static void name(const double *restrict a, const double *restrict b, double ka, double kb, uint8_t *restrict o,    \
                     size_t n)                                                                                         \
    {                                                                                                                  \
        (void)a;                                                                                                       \
        (void)b;                                                                                                       \
        const __m128d va = _mm_set1_pd(ka), vb = _mm_set1_pd(kb);                                                      \
        (void)va;                                                                                                      \
        (void)vb;                                                                                                      \
        size_t j = 0;                                                                                                  \
        for (; j + 4 <= n; j += 4) {                                                                                   \
            int m = _mm_movemask_pd(XEXPR(XA, XB, j)) | _mm_movemask_pd(XEXPR(XA, XB, j + 2)) << 2;                    \
            memcpy(o + j, &spread4[m], 4);                                                                             \
        }                                                                                                              \
        for (; j < n; j++)                                                                                             \
            o[j] = (uint8_t)EXPR(A, B, j);                                                                             \
    }
#else
#define DEF_KERNEL(name, EXPR, A, B, XEXPR, XA, XB)                                                                    \
    static void name(const double *restrict a, const double *restrict b, double ka, double kb, uint8_t *restrict o,    \
                     size_t n)                                                                                         \
    {                                                                                                                  \
        (void)a;                                                                                                       \
        (void)b;                                                                                                       \
        (void)ka;                                                                                                      \
        (void)kb;                                                                                                      \
        for (size_t j = 0; j < n; j++)                                                                                 \
            o[j] = (uint8_t)EXPR(A, B, j);                                                                             \
    }
#endif

DEF_KERNEL(k_gt_vv, E_GT, OPV_A, OPV_B, X_GT, XV_A, XV_B)
DEF_KERNEL(k_gt_vs, E_GT, OPV_A, OPS_B, X_GT, XV_A, XS_B)
DEF_KERNEL(k_gt_sv, E_GT, OPS_A, OPV_B, X_GT, XS_A, XV_B)
DEF_KERNEL(k_gte_vv, E_GTE, OPV_A, OPV_B, X_GTE, XV_A, XV_B)
DEF_KERNEL(k_gte_vs, E_GTE, OPV_A, OPS_B, X_GTE, XV_A, XS_B)
DEF_KERNEL(k_gte_sv, E_GTE, OPS_A, OPV_B, X_GTE, XS_A, XV_B)
#if defined(__SSE2__)
/* A cross compares each bar once: bit k of gt is a[j+k] > b[j+k], of le
 * a[j+k] <= b[j+k] (both false on NaN, as the scalar form), and the cross at
 * j+k is gt's bit k and le's bit k-1, the previous group's top bit for k = 0. */
#define DEF_XKERNEL(name, A, B, XA, XB)                                                                                \
    static void name(const double *restrict a, const double *restrict b, double ka, double kb, uint8_t *restrict o,    \
                     size_t n)                                                                                         \
    {                                                                                                                  \
        (void)a;                                                                                                       \
        (void)b;                                                                                                       \
        const __m128d va = _mm_set1_pd(ka), vb = _mm_set1_pd(kb);                                                      \
        (void)va;                                                                                                      \
        (void)vb;                                                                                                      \
        size_t j = 0;                                                                                                  \
        unsigned prev = n > 0 && A(-1) <= B(-1);                                                                       \
        for (; j + 4 <= n; j += 4) {                                                                                   \
            __m128d a0 = XA(j), b0 = XB(j), a1 = XA(j + 2), b1 = XB(j + 2);                                            \
            unsigned gt =                                                                                              \
                (unsigned)(_mm_movemask_pd(_mm_cmpgt_pd(a0, b0)) | _mm_movemask_pd(_mm_cmpgt_pd(a1, b1)) << 2);        \
            unsigned le =                                                                                              \
                (unsigned)(_mm_movemask_pd(_mm_cmple_pd(a0, b0)) | _mm_movemask_pd(_mm_cmple_pd(a1, b1)) << 2);        \
            memcpy(o + j, &spread4[gt & (le << 1 | prev) & 15u], 4);                                                   \
            prev = le >> 3;                                                                                            \
        }                                                                                                              \
        for (; j < n; j++)                                                                                             \
            o[j] = (uint8_t)E_XA(A, B, j);                                                                             \
    }
DEF_XKERNEL(k_xa_vv, OPV_A, OPV_B, XV_A, XV_B)
DEF_XKERNEL(k_xa_vs, OPV_A, OPS_B, XV_A, XS_B)
DEF_XKERNEL(k_xa_sv, OPS_A, OPV_B, XS_A, XV_B)
#else
DEF_KERNEL(k_xa_vv, E_XA, OPV_A, OPV_B, X_XA, XV_A, XV_B)
DEF_KERNEL(k_xa_vs, E_XA, OPV_A, OPS_B, X_XA, XV_A, XS_B)
DEF_KERNEL(k_xa_sv, E_XA, OPS_A, OPV_B, X_XA, XS_A, XV_B)
#endif

typedef void (*kernel_fn)(const double *, const double *, double, double, uint8_t *, size_t);

enum { KOP_GT, KOP_GTE, KOP_XA };
enum { KV_VV, KV_VS, KV_SV };

static const kernel_fn kernel_table[3][3] = {
    [KOP_GT] = {k_gt_vv, k_gt_vs, k_gt_sv},
    [KOP_GTE] = {k_gte_vv, k_gte_vs, k_gte_sv},
    [KOP_XA] = {k_xa_vv, k_xa_vs, k_xa_sv},
};

/* How each comparison op maps onto a kernel: lt(a,b) = gt(b,a), etc. */
static const struct {
    sf_cond_op op;
    int kop;
    int swap;
} cmp_table[] = {
    {SF_COND_GT, KOP_GT, 0},   {SF_COND_GTE, KOP_GTE, 0},          {SF_COND_LT, KOP_GT, 1},
    {SF_COND_LTE, KOP_GTE, 1}, {SF_COND_CROSSES_ABOVE, KOP_XA, 0}, {SF_COND_CROSSES_BELOW, KOP_XA, 1},
};

/* ====================================================================== */
/* a run                                                                   */
/* ====================================================================== */

typedef struct col {
    const double *base; /* NULL for a constant */
    double k;           /* the constant */
    size_t offset;      /* bars back */
} col;

/* A comparison leaf, resolved once per run. */
typedef struct leaf {
    int is_leaf;
    kernel_fn fn; /* NULL when both sides are constants */
    col a, b;
    size_t lo;        /* first bar where every read index exists */
    uint8_t constant; /* value when fn is NULL */
} leaf;

typedef struct sim {
    /* parameters */
    int side;
    int fill_close;
    double fee, slip, pct, sl, tp;
    /* state */
    double cash, qty, entry_px, entry_fee, stop, target;
    int64_t entry_time;
    size_t entry_bar;
    int in_pos, pending, ruined;
    int has_stops; /* a stop loss or a take profit is set */
    size_t bars_in_pos;
    /* outputs */
    double *equity; /* equity[i - eq_base] is bar i's */
    size_t eq_base; /* 0, or the chunk's first bar when equity holds one chunk */
    sf_trade *trades;
    size_t n_trades, cap_trades;
} sim;

typedef struct run {
    const sf_logic *lg;
    const sf_bars *b;
    const sf_run_opts *opts;
    const double **ind; /* [indicator * SF_IND_MAX_OUTPUTS + output] */
    sf_indref **refs;   /* cache refs, one per indicator */
    double *own;        /* private indicator block */
    leaf *leaves;       /* one per condition node */
    uint8_t *tmp;       /* depth_max temp chunks */
    int depth_max;
    int equity_borrowed; /* m.equity is the cache's scratch */
    int equity_chunked;  /* m.equity is eq_chunk: one chunk's bars at a time */
    sim m;
    sf_perf_curve curve; /* the metrics' pass over the curve, fed chunk by chunk */
    sf_blocks_scan scan; /* the same for the block statistics (opts.blocks > 0) */
    /* Last, and not zeroed by run_new (40 KB): each chunk's signals and
     * equity are written for its len bars before anything reads them. */
    uint8_t entry_sig[SF_ENGINE_CHUNK];
    uint8_t exit_sig[SF_ENGINE_CHUNK];
    double eq_chunk[SF_ENGINE_CHUNK];
} run;

/* A run with every field before the signal buffers zeroed. */
static run *run_new(void)
{
    run *r = malloc(sizeof *r);
    if (r != NULL)
        memset(r, 0, offsetof(run, entry_sig));
    return r;
}

/* The cancel flag and the deadline of a run. */
static sf_ind_stop run_stop(const sf_run_opts *o)
{
    sf_ind_stop stop = {o->cancel, o->deadline_ms};
    return stop;
}

/* SF_ERR_CANCELLED "<what> cancelled" or SF_ERR_TIMEOUT "<what> ran past
 * its deadline" when st is one of them (or, for SF_OK, when the run's
 * stop says so now); st otherwise. */
static sf_status stopped(const sf_run_opts *o, sf_status st, const char *what, sf_err *err)
{
    if (st == SF_OK) {
        sf_ind_stop stop = run_stop(o);
        st = sf_ind_stop_check(&stop, err);
    }
    if (st == SF_ERR_CANCELLED)
        return sf_err_set(err, st, "%s cancelled", what);
    if (st == SF_ERR_TIMEOUT)
        return sf_err_set(err, st, "%s ran past its deadline", what);
    return st;
}

static const double *field_column(const sf_bars *b, sf_field f)
{
    const double *cols[SF_FIELD__COUNT] = {b->open, b->high, b->low, b->close, b->volume};
    return (unsigned)f < SF_FIELD__COUNT ? cols[f] : NULL;
}

/* ---- phase 1: indicator outputs ---- */

static sf_status ind_from_cache(run *r, int i, sf_err *err)
{
    const sf_logic_indicator *li = &r->lg->indicators[i];
    sf_status st = sf_indcache_acquire(r->opts->cache, &li->spec, &r->refs[i], err);
    if (st != SF_OK)
        return st;
    for (int k = 0; k < SF_IND_MAX_OUTPUTS; k++)
        r->ind[i * SF_IND_MAX_OUTPUTS + k] = sf_indref_output(r->refs[i], k);
    return SF_OK;
}

static sf_status ind_private(run *r, int i, double *block, sf_err *err)
{
    const sf_logic_indicator *li = &r->lg->indicators[i];
    const sf_ind_info *info = sf_ind_info_get(li->spec.type);
    double *outs[SF_IND_MAX_OUTPUTS] = {0};
    for (int k = 0; k < info->n_outputs; k++) {
        outs[k] = block + (size_t)k * r->b->n;
        r->ind[i * SF_IND_MAX_OUTPUTS + k] = outs[k];
    }
    sf_ind_stop stop = run_stop(r->opts);
    return sf_ind_compute_stop(&li->spec, r->b, outs, &stop, err);
}

/* Doubles a private computation of every indicator needs. */
static sf_status ind_private_size(const sf_logic *lg, size_t n, size_t *total, sf_err *err)
{
    *total = 0;
    for (int i = 0; i < lg->n_indicators; i++) {
        const sf_ind_info *info = sf_ind_info_get(lg->indicators[i].spec.type);
        if ((unsigned)lg->indicators[i].spec.type >= SF_IND__COUNT || info == NULL)
            return sf_err_set(err, SF_ERR_INVALID, "indicators.%s: unknown type", lg->indicators[i].name);
        *total += (size_t)info->n_outputs * n;
    }
    return SF_OK;
}

static sf_status phase_indicators(run *r, sf_err *err)
{
    int ni = r->lg->n_indicators;
    r->ind = calloc((size_t)(ni > 0 ? ni : 1) * SF_IND_MAX_OUTPUTS, sizeof *r->ind);
    r->refs = calloc((size_t)(ni > 0 ? ni : 1), sizeof *r->refs);
    if (r->ind == NULL || r->refs == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator table");
    size_t total;
    sf_status st = ind_private_size(r->lg, r->b->n, &total, err);
    if (st != SF_OK)
        return st;
    if (r->opts->cache == NULL && total > 0) {
        r->own = malloc(total * sizeof(double));
        if (r->own == NULL)
            return sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator outputs");
    }
    double *next = r->own;
    for (int i = 0; i < ni && st == SF_OK; i++) {
        if ((st = stopped(r->opts, SF_OK, "backtest", err)) != SF_OK)
            return st;
        if (r->opts->cache != NULL) {
            st = ind_from_cache(r, i, err);
            continue;
        }
        st = ind_private(r, i, next, err);
        next += (size_t)sf_ind_info_get(r->lg->indicators[i].spec.type)->n_outputs * r->b->n;
    }
    if (st == SF_ERR_CANCELLED || st == SF_ERR_TIMEOUT)
        return stopped(r->opts, st, "backtest", err);
    if (st != SF_OK)
        sf_err_prefix(err, "computing indicators: ");
    return st;
}

/* ---- phase 2: signals ---- */

static sf_status resolve_operand(const run *r, const sf_operand *o, col *c, sf_err *err)
{
    memset(c, 0, sizeof *c);
    if (o->kind == SF_OPD_NUMBER) {
        c->k = o->number;
        return SF_OK;
    }
    if (o->offset < 0)
        return sf_err_set(err, SF_ERR_INVALID, "logic: negative offset %d", o->offset);
    c->offset = (size_t)o->offset;
    if (o->kind == SF_OPD_FIELD)
        c->base = field_column(r->b, o->field);
    else if (o->kind == SF_OPD_OUTPUT && o->indicator >= 0 && o->indicator < r->lg->n_indicators && o->output >= 0 &&
             o->output < SF_IND_MAX_OUTPUTS)
        c->base = r->ind[o->indicator * SF_IND_MAX_OUTPUTS + o->output];
    if (c->base == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "logic: operand refers to nothing");
    return SF_OK;
}

static sf_status resolve_leaf(const run *r, const sf_cond *cd, leaf *lf, sf_err *err)
{
    size_t t = 0;
    while (t < sizeof cmp_table / sizeof cmp_table[0] && cmp_table[t].op != cd->op)
        t++;
    if (t == sizeof cmp_table / sizeof cmp_table[0])
        return sf_err_set(err, SF_ERR_INVALID, "logic: unknown condition op %d", (int)cd->op);
    const sf_operand *oa = cmp_table[t].swap ? &cd->b : &cd->a;
    const sf_operand *ob = cmp_table[t].swap ? &cd->a : &cd->b;
    sf_status st = resolve_operand(r, oa, &lf->a, err);
    if (st == SF_OK)
        st = resolve_operand(r, ob, &lf->b, err);
    if (st != SF_OK)
        return st;
    int kop = cmp_table[t].kop;
    lf->is_leaf = 1;
    lf->lo = (lf->a.base ? lf->a.offset : 0);
    if (lf->b.base && lf->b.offset > lf->lo)
        lf->lo = lf->b.offset;
    lf->lo += (kop == KOP_XA);
    if (lf->a.base == NULL && lf->b.base == NULL) {
        /* constant comparison: a cross of constants never happens */
        double x = lf->a.k, y = lf->b.k;
        lf->constant = (uint8_t)(kop == KOP_GT ? x > y : kop == KOP_GTE ? x >= y : 0);
        return SF_OK;
    }
    int kv = lf->a.base == NULL ? KV_SV : lf->b.base == NULL ? KV_VS : KV_VV;
    lf->fn = kernel_table[kop][kv];
    return SF_OK;
}

/* Resolve every leaf and measure the tree depth (bounded: the parser limits
 * it, and a cycle in a malformed program must not recurse forever). */
static sf_status resolve_tree(run *r, int node, int depth, sf_err *err)
{
    const sf_logic *lg = r->lg;
    if (node < 0 || node >= lg->n_conds || depth > SF_LOGIC_MAX_DEPTH + 2)
        return sf_err_set(err, SF_ERR_INVALID, "logic: malformed condition tree");
    if (depth + 1 > r->depth_max)
        r->depth_max = depth + 1;
    const sf_cond *cd = &lg->conds[node];
    if (cd->op != SF_COND_ALL && cd->op != SF_COND_ANY && cd->op != SF_COND_NOT)
        return resolve_leaf(r, cd, &r->leaves[node], err);
    for (int c = 0; c < cd->n_children; c++) {
        sf_status st = resolve_tree(r, lg->children[cd->first_child + c], depth + 1, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

static void eval_leaf(const leaf *lf, size_t s, size_t len, uint8_t *out)
{
    size_t end = s + len;
    size_t i0 = s > lf->lo ? s : lf->lo;
    if (i0 > end)
        i0 = end;
    memset(out, 0, i0 - s);
    if (i0 == end)
        return;
    if (lf->fn == NULL) {
        memset(out + (i0 - s), lf->constant, end - i0);
        return;
    }
    const double *a = lf->a.base ? lf->a.base + (i0 - lf->a.offset) : NULL;
    const double *b = lf->b.base ? lf->b.base + (i0 - lf->b.offset) : NULL;
    lf->fn(a, b, lf->a.k, lf->b.k, out + (i0 - s), end - i0);
}

static void eval_node(const run *r, int node, size_t s, size_t len, uint8_t *out, int depth)
{
    const sf_cond *cd = &r->lg->conds[node];
    if (r->leaves[node].is_leaf) {
        eval_leaf(&r->leaves[node], s, len, out);
        return;
    }
    const int *kids = r->lg->children + cd->first_child;
    if (cd->n_children == 0) {
        memset(out, cd->op == SF_COND_ALL, len);
        return;
    }
    eval_node(r, kids[0], s, len, out, depth + 1);
    uint8_t *t = r->tmp + (size_t)depth * SF_ENGINE_CHUNK;
    for (int c = 1; c < cd->n_children; c++) {
        eval_node(r, kids[c], s, len, t, depth + 1);
        if (cd->op == SF_COND_ALL)
            for (size_t j = 0; j < len; j++)
                out[j] &= t[j];
        else
            for (size_t j = 0; j < len; j++)
                out[j] |= t[j];
    }
    if (cd->op == SF_COND_NOT)
        for (size_t j = 0; j < len; j++)
            out[j] ^= 1;
}

static sf_status prepare_signals(run *r, sf_err *err)
{
    const sf_logic *lg = r->lg;
    r->leaves = calloc((size_t)(lg->n_conds > 0 ? lg->n_conds : 1), sizeof *r->leaves);
    if (r->leaves == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate condition plan");
    sf_status st = resolve_tree(r, lg->entry, 0, err);
    if (st == SF_OK && lg->exit >= 0)
        st = resolve_tree(r, lg->exit, 0, err);
    if (st != SF_OK)
        return st;
    r->tmp = malloc((size_t)r->depth_max * SF_ENGINE_CHUNK);
    if (r->tmp == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate signal buffers");
    return SF_OK;
}

/* ---- phase 3: the position state machine ---- */

static sf_status push_trade(sim *m, const sf_trade *t)
{
    if (m->n_trades == m->cap_trades) {
        size_t cap = m->cap_trades ? m->cap_trades * 2 : 64;
        sf_trade *p = realloc(m->trades, cap * sizeof *p);
        if (p == NULL)
            return SF_ERR_NOMEM;
        m->trades = p;
        m->cap_trades = cap;
    }
    m->trades[m->n_trades++] = *t;
    return SF_OK;
}

/* Enter at a raw price; slippage moves it against the trade. */
static void open_position(sim *m, double raw, int64_t ts, size_t i)
{
    double px = raw * (1.0 + m->side * m->slip);
    double qty = m->cash * m->pct / (px * (1.0 + m->fee));
    if (!(qty > 0.0) || !isfinite(qty))
        return;
    double fee = qty * px * m->fee;
    m->cash -= m->side * qty * px + fee;
    m->qty = qty;
    m->entry_px = px;
    m->entry_fee = fee;
    m->entry_time = ts;
    m->entry_bar = i;
    /* entry * (1 -/+ pct/100), computed as entry * (100 -/+ pct) / 100 so
     * round prices stay exact (100 and 10% give 110, not 110.00000000000001);
     * NaN when unset */
    m->stop = px * (100.0 - m->side * m->sl) / 100.0;
    m->target = px * (100.0 + m->side * m->tp) / 100.0;
    m->in_pos = 1;
}

static sf_status close_position(sim *m, double raw, int64_t ts, sf_exit_reason why)
{
    double px = raw * (1.0 - m->side * m->slip);
    double fee = m->qty * px * m->fee;
    m->cash += m->side * m->qty * px - fee;
    sf_trade t = {
        .side = m->side,
        .entry_time = m->entry_time,
        .entry_price = m->entry_px,
        .exit_time = ts,
        .exit_price = px,
        .qty = m->qty,
        .pnl = m->side * m->qty * (px - m->entry_px) - m->entry_fee - fee,
        .fees = m->entry_fee + fee,
        .exit_reason = why,
    };
    m->in_pos = 0;
    m->qty = 0.0;
    return push_trade(m, &t);
}

/* Step 2: gap through stop/target at the open (not on a next_open entry
 * bar, whose open is the entry), else the stop touched first, else the target. */
static sf_status check_stops(sim *m, const sf_bars *b, size_t i)
{
    double s = m->side;
    double adverse = m->side > 0 ? b->low[i] : b->high[i];
    double favour = m->side > 0 ? b->high[i] : b->low[i];
    if (i != m->entry_bar || m->fill_close) {
        double o = b->open[i];
        if (s * (o - m->stop) <= 0.0)
            return close_position(m, o, b->ts[i], SF_EXIT_STOP_LOSS);
        if (s * (o - m->target) >= 0.0)
            return close_position(m, o, b->ts[i], SF_EXIT_TAKE_PROFIT);
    }
    if (s * (adverse - m->stop) <= 0.0)
        return close_position(m, m->stop, b->ts[i], SF_EXIT_STOP_LOSS);
    if (s * (favour - m->target) >= 0.0)
        return close_position(m, m->target, b->ts[i], SF_EXIT_TAKE_PROFIT);
    return SF_OK;
}

/* Step 5: decide on bar i's close (never called on the last bar), against
 * the position as steps 1 and 2 left it: flat after an exit at the open or
 * inside the bar, so an entry signal may reopen. One decision per bar: an
 * exit taken here at the close returns without looking at the entry. */
static sf_status decide(sim *m, const sf_bars *b, size_t i, int entry, int exit_)
{
    if (!m->in_pos) {
        if (!entry)
            return SF_OK;
        if (m->fill_close)
            open_position(m, b->close[i], b->ts[i], i);
        else
            m->pending = 1;
        return SF_OK;
    }
    if (!exit_)
        return SF_OK;
    if (m->fill_close)
        return close_position(m, b->close[i], b->ts[i], SF_EXIT_SIGNAL);
    m->pending = -1;
    return SF_OK;
}

/* Equity at or below zero: close what is open, and stop trading. */
static sf_status ruin(sim *m, const sf_bars *b, size_t i)
{
    sf_status st = SF_OK;
    if (m->in_pos)
        st = close_position(m, b->close[i], b->ts[i], SF_EXIT_END_OF_DATA);
    m->cash = 0.0;
    m->pending = 0;
    m->ruined = 1;
    return st;
}

static sf_status sim_bar(sim *m, const sf_bars *b, size_t i, size_t last, int entry, int exit_)
{
    sf_status st = SF_OK;
    if (m->pending > 0)
        open_position(m, b->open[i], b->ts[i], i);
    else if (m->pending < 0 && m->in_pos)
        st = close_position(m, b->open[i], b->ts[i], SF_EXIT_SIGNAL);
    m->pending = 0;
    if (m->in_pos && m->has_stops && st == SF_OK)
        st = check_stops(m, b, i);
    if (m->in_pos && i == last && st == SF_OK)
        st = close_position(m, b->close[i], b->ts[i], SF_EXIT_END_OF_DATA);
    double eq = m->in_pos ? m->cash + m->side * m->qty * b->close[i] : m->cash;
    if (!m->ruined && !(eq > 0.0) && st == SF_OK)
        st = ruin(m, b, i);
    if (m->ruined)
        eq = 0.0;
    m->equity[i - m->eq_base] = eq;
    if (i != last && !m->ruined && st == SF_OK)
        st = decide(m, b, i, entry, exit_);
    m->bars_in_pos += (size_t)m->in_pos;
    return st;
}

/* Quiet bars run on locals (so the stores to equity[] cannot alias the
 * state) and leave the state as it was: flat with no entry signal, or
 * holding with no exit signal, no stop or target touched and equity > 0.
 * Both loops stop at the first bar that needs sim_bar. */
static size_t run_flat(const uint8_t *restrict en, double *restrict eq, double cash, size_t j, size_t end)
{
    while (j < end && !en[j]) {
        eq[j] = cash;
        j++;
    }
    return j;
}

typedef struct hold {
    const double *adverse, *favour, *close; /* low/high (mirrored for shorts), close */
    double side, sq, cash, stop, target;    /* sq = side * qty */
} hold;

static size_t run_hold(const hold *h, const uint8_t *restrict ex, double *restrict eq, size_t j, size_t end)
{
    const double *restrict adv = h->adverse, *restrict fav = h->favour, *restrict cl = h->close;
    while (j < end && !ex[j]) {
        /* open lies within [low, high], so no touch means no gap either */
        if (h->side * (adv[j] - h->stop) <= 0.0 || h->side * (fav[j] - h->target) >= 0.0)
            break;
        double e = h->cash + h->sq * cl[j];
        if (!(e > 0.0))
            break;
        eq[j] = e;
        j++;
    }
    return j;
}

/* Holding with neither stop nor target: only the exit signal and ruin. */
static size_t run_hold_free(const hold *h, const uint8_t *restrict ex, double *restrict eq, size_t j, size_t end)
{
    const double *restrict cl = h->close;
    while (j < end && !ex[j]) {
        double e = h->cash + h->sq * cl[j];
        if (!(e > 0.0))
            break;
        eq[j] = e;
        j++;
    }
    return j;
}

static size_t quiet_run(run *r, size_t s, size_t j, size_t end)
{
    sim *m = &r->m;
    const sf_bars *b = r->b;
    double *eq = m->equity + (s - m->eq_base);
    if (!m->in_pos)
        return run_flat(r->entry_sig, eq, m->cash, j, end);
    hold h = {
        .adverse = (m->side > 0 ? b->low : b->high) + s,
        .favour = (m->side > 0 ? b->high : b->low) + s,
        .close = b->close + s,
        .side = m->side,
        .sq = m->side * m->qty,
        .cash = m->cash,
        .stop = m->stop,
        .target = m->target,
    };
    size_t k = m->has_stops ? run_hold(&h, r->exit_sig, eq, j, end) : run_hold_free(&h, r->exit_sig, eq, j, end);
    m->bars_in_pos += k - j;
    return k;
}

static sf_status sim_chunk(run *r, size_t s, size_t len)
{
    sim *m = &r->m;
    const sf_bars *b = r->b;
    size_t last = b->n - 1;
    size_t end = last - s < len ? last - s : len; /* quiet runs never take the last bar */
    size_t j = 0;
    while (j < len) {
        if (m->pending == 0 && j < end) {
            j = quiet_run(r, s, j, end);
            if (j == len)
                break;
        }
        sf_status st = sim_bar(m, b, s + j, last, r->entry_sig[j], r->exit_sig[j]);
        if (st != SF_OK)
            return st;
        j++;
    }
    return SF_OK;
}

static void sim_init(sim *m, const sf_logic *lg)
{
    memset(m, 0, sizeof *m);
    m->side = lg->side >= 0 ? 1 : -1;
    m->fill_close = lg->fill == SF_FILL_CLOSE;
    m->fee = lg->fee_bps / 10000.0;
    m->slip = lg->slippage_bps / 10000.0;
    m->pct = lg->position_pct / 100.0;
    m->sl = lg->stop_loss_pct;
    m->tp = lg->take_profit_pct;
    m->has_stops = !isnan(m->sl) || !isnan(m->tp);
    m->cash = lg->initial_capital;
    m->stop = m->target = NAN;
    if (!(m->cash > 0.0)) {
        m->cash = 0.0;
        m->ruined = 1;
    }
}

/* Fills on signal bars read open/ts/close sparsely, which the hardware
 * prefetcher does not follow: before simulating a chunk, ask for the lines of
 * every bar that has a signal and of the bar after it. A word of 8 signal
 * bytes (0 or 1 each) is skipped when quiet, and otherwise only its set bytes
 * are visited (bit 8k is byte k on a little-endian machine; elsewhere the
 * hints land on other bars of the word, which changes no result). */
static void prefetch_events(const run *r, size_t s, size_t len)
{
    const sf_bars *b = r->b;
    size_t last = b->n - 1;
    for (size_t j = 0; j < len; j += 8) {
        uint64_t e = 0, x = 0;
        size_t w = len - j < 8 ? len - j : 8;
        memcpy(&e, r->entry_sig + j, w);
        memcpy(&x, r->exit_sig + j, w);
        for (uint64_t ev = e | x; ev != 0; ev &= ev - 1) {
            size_t i = s + j + (size_t)__builtin_ctzll(ev) / 8, nx = i < last ? i + 1 : i;
            __builtin_prefetch(b->open + nx);
            __builtin_prefetch(b->ts + nx);
            __builtin_prefetch(b->close + i);
        }
    }
}

/* Bar s starts a chunk: a chunk-sized curve now holds its bars. */
static void chunk_equity(run *r, size_t s)
{
    if (r->equity_chunked)
        r->m.eq_base = s;
}

/* The chunk's equity values, final now, to the metrics. */
static void feed_metrics(run *r, size_t s, size_t len)
{
    sim *m = &r->m;
    sf_perf_curve_feed(&r->curve, m->equity + (s - m->eq_base), len);
    if (r->opts->blocks > 0)
        sf_blocks_scan_feed(&r->scan, m->equity, s + len);
}

static sf_status phase_simulate(run *r, sf_err *err)
{
    size_t n = r->b->n;
    sf_perf_curve_init(&r->curve, n);
    sf_blocks_scan_init(&r->scan, n, r->opts->blocks > 0 ? r->opts->blocks : 0);
    for (size_t s = 0; s < n; s += SF_ENGINE_CHUNK) {
        sf_status st = stopped(r->opts, SF_OK, "backtest", err);
        if (st != SF_OK)
            return st;
        size_t len = n - s < SF_ENGINE_CHUNK ? n - s : SF_ENGINE_CHUNK;
        eval_node(r, r->lg->entry, s, len, r->entry_sig, 0);
        if (r->lg->exit >= 0)
            eval_node(r, r->lg->exit, s, len, r->exit_sig, 0);
        else
            memset(r->exit_sig, 0, len);
        prefetch_events(r, s, len);
        chunk_equity(r, s);
        if (sim_chunk(r, s, len) != SF_OK)
            return sf_err_set(err, SF_ERR_NOMEM, "could not record trade");
        feed_metrics(r, s, len);
        if (r->opts->progress != NULL)
            r->opts->progress(r->opts->progress_user, s + len, n);
    }
    return SF_OK;
}

/* ---- result ---- */

static sf_status build_result(run *r, sf_result **out, sf_err *err)
{
    const sf_bars *b = r->b;
    sim *m = &r->m;
    sf_result *res = calloc(1, sizeof *res);
    if (res == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate result");
    sf_perf_curve_finish(&r->curve, b->ts, r->lg->initial_capital, m->trades, m->n_trades, m->bars_in_pos,
                         r->lg->periods_per_year, &res->perf);
    if (r->opts->blocks > 0) /* sweep members: the returns' block statistics (sf/overfit.h) */
        sf_blocks_scan_finish(&r->scan, m->equity, &res->blocks);
    res->initial_capital = r->lg->initial_capital;
    res->n_trades = m->n_trades;
    if (r->opts->keep_trades) {
        res->trades = m->trades;
        m->trades = NULL;
    }
    if (r->opts->keep_equity) {
        res->ts = malloc(b->n * sizeof *res->ts);
        if (res->ts == NULL) {
            sf_result_free(res);
            return sf_err_set(err, SF_ERR_NOMEM, "could not allocate equity curve");
        }
        memcpy(res->ts, b->ts, b->n * sizeof *res->ts);
        res->equity = m->equity;
        res->n_equity = b->n;
        m->equity = NULL;
    }
    *out = res;
    return SF_OK;
}

static void run_destroy(run *r)
{
    for (int i = 0; r->refs != NULL && i < r->lg->n_indicators; i++)
        sf_indcache_release(r->opts->cache, r->refs[i]);
    free(r->refs);
    free(r->ind);
    free(r->own);
    free(r->leaves);
    free(r->tmp);
    if (r->equity_borrowed)
        sf_indcache_scratch_put(r->opts->cache, r->m.equity);
    else if (!r->equity_chunked)
        free(r->m.equity);
    free(r->m.trades);
}

/* The equity curve: one chunk's bars in the run itself when neither the
 * result nor the block statistics need the whole curve; the cache's scratch
 * when there is a cache and the result does not keep the curve (a sweep
 * member: its pages stay mapped from member to member); else a new array the
 * result may take. */
static sf_status equity_alloc(run *r, sf_err *err)
{
    r->equity_chunked = !r->opts->keep_equity && r->opts->blocks <= 0;
    r->equity_borrowed = !r->equity_chunked && r->opts->cache != NULL && !r->opts->keep_equity;
    if (r->equity_chunked)
        r->m.equity = r->eq_chunk;
    else if (r->equity_borrowed)
        r->m.equity = sf_indcache_scratch_get(r->opts->cache);
    else
        r->m.equity = malloc(r->b->n * sizeof *r->m.equity);
    if (r->m.equity == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate equity curve");
    return SF_OK;
}

static sf_status run_check(const sf_logic *lg, const sf_bars *b, const sf_run_opts *o, sf_err *err)
{
    if (lg == NULL || b == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "backtest: no logic or no bars");
    if (b->n == 0)
        return sf_err_set(err, SF_ERR_INVALID, "backtest: the bar series is empty");
    if (o->cache != NULL && sf_indcache_bars(o->cache) != b)
        return sf_err_set(err, SF_ERR_INVALID, "backtest: the indicator cache belongs to other bars");
    if (lg->entry < 0 || lg->entry >= lg->n_conds)
        return sf_err_set(err, SF_ERR_INVALID, "backtest: the logic has no entry condition");
    return SF_OK;
}

void sf_run_opts_init(sf_run_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->keep_equity = 1;
    opts->keep_trades = 1;
}

sf_status sf_engine_run(const sf_logic *logic, const sf_bars *bars, const sf_run_opts *opts, sf_result **out,
                        sf_err *err)
{
    sf_run_opts defaults;
    sf_run_opts_init(&defaults);
    *out = NULL;
    run *r = run_new();
    if (r == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate run state");
    r->lg = logic;
    r->b = bars;
    r->opts = opts != NULL ? opts : &defaults;
    sf_status st = run_check(logic, bars, r->opts, err);
    if (st == SF_OK)
        st = phase_indicators(r, err);
    if (st == SF_OK)
        st = prepare_signals(r, err);
    if (st == SF_OK) {
        sim_init(&r->m, logic);
        st = equity_alloc(r, err);
    }
    if (st == SF_OK)
        st = phase_simulate(r, err);
    if (st == SF_OK)
        st = build_result(r, out, err);
    run_destroy(r);
    free(r);
    return st;
}

/* a + b * c, saturating at SIZE_MAX */
static size_t add_mul(size_t a, size_t b, size_t c)
{
    if (c != 0 && b > (SIZE_MAX - a) / c)
        return SIZE_MAX;
    return a + b * c;
}

size_t sf_engine_working_set(const sf_logic *logic, size_t n, int keep_equity)
{
    if (logic == NULL)
        return SIZE_MAX;
    size_t outputs = 0, scratch = 0;
    for (int i = 0; i < logic->n_indicators; i++) {
        const sf_ind_info *info = sf_ind_info_get(logic->indicators[i].spec.type);
        size_t s = sf_ind_scratch_bytes(&logic->indicators[i].spec, n);
        outputs += info != NULL ? (size_t)info->n_outputs : SF_IND_MAX_OUTPUTS;
        scratch = s > scratch ? s : scratch;
    }
    size_t conds = (size_t)(logic->n_conds > 0 ? logic->n_conds : 1);
    size_t bytes = add_mul(sizeof(run), scratch, 1);
    bytes = add_mul(bytes, conds, sizeof(leaf) + SF_ENGINE_CHUNK);
    bytes =
        add_mul(bytes, (size_t)(logic->n_indicators + 1), SF_IND_MAX_OUTPUTS * sizeof(double *) + sizeof(sf_indref *));
    size_t per_bar = sizeof(double) * (outputs + 1) + (keep_equity ? sizeof(int64_t) : 0);
    return add_mul(bytes, n, per_bar);
}

sf_status sf_engine_signals(const sf_logic *logic, const sf_bars *bars, sf_indcache *cache, uint8_t *entry,
                            uint8_t *exit_, sf_err *err)
{
    sf_run_opts opts;
    sf_run_opts_init(&opts);
    opts.cache = cache;
    run *r = run_new();
    if (r == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate run state");
    r->lg = logic;
    r->b = bars;
    r->opts = &opts;
    sf_status st = run_check(logic, bars, r->opts, err);
    if (st == SF_OK)
        st = phase_indicators(r, err);
    if (st == SF_OK)
        st = prepare_signals(r, err);
    for (size_t s = 0; st == SF_OK && s < bars->n; s += SF_ENGINE_CHUNK) {
        size_t len = bars->n - s < SF_ENGINE_CHUNK ? bars->n - s : SF_ENGINE_CHUNK;
        eval_node(r, logic->entry, s, len, entry + s, 0);
        if (logic->exit >= 0)
            eval_node(r, logic->exit, s, len, exit_ + s, 0);
        else
            memset(exit_ + s, 0, len);
    }
    run_destroy(r);
    free(r);
    return st;
}

void sf_result_free(sf_result *result)
{
    if (result == NULL)
        return;
    free(result->trades);
    free(result->ts);
    free(result->equity);
    free(result);
}

/* ====================================================================== */
/* the live decision                                                       */
/* ====================================================================== */

/* DESIGN: the same state machine (sim_bar) over every bar, with no end of
 * data (last = SIZE_MAX, so nothing closes at the final close and bar n-2
 * still decides); the final bar runs steps 1, 2 and 4 with its signals
 * withheld, and the decision that step 5 would take on its close is read
 * off the state instead of being taken. */

static const char *const signal_names[SF_SIGNAL__COUNT] = {
    [SF_SIGNAL_FLAT] = "flat",
    [SF_SIGNAL_ENTER] = "enter",
    [SF_SIGNAL_EXIT] = "exit",
    [SF_SIGNAL_HOLD] = "hold",
};

const char *sf_signal_name(sf_signal signal)
{
    return (unsigned)signal < SF_SIGNAL__COUNT ? signal_names[signal] : "unknown";
}

/* Step 5 on the last bar's close, as a report, against the position as steps
 * 1 and 2 of that bar left it. trades_before: trades closed before that bar
 * began. A stop, target or ruin inside the bar is reported as an exit unless
 * the entry condition reopens the position at the close (then as the entry,
 * with that exit's reason). An exit that filled at the open was already
 * reported, as the exit signal on the bar before. */
static void live_decision(const sim *m, size_t trades_before, int entry, int exit_, sf_decision *out)
{
    out->exit_reason = SF_EXIT_SIGNAL;
    if (m->n_trades > trades_before)
        out->exit_reason = m->trades[m->n_trades - 1].exit_reason;
    if (m->in_pos)
        out->signal = exit_ ? SF_SIGNAL_EXIT : SF_SIGNAL_HOLD;
    else if (!m->ruined && entry)
        out->signal = SF_SIGNAL_ENTER;
    else if (out->exit_reason != SF_EXIT_SIGNAL)
        out->signal = SF_SIGNAL_EXIT;
    else
        out->signal = SF_SIGNAL_FLAT;
    out->side = out->signal == SF_SIGNAL_FLAT ? 0 : m->side;
}

static sf_status live_chunk(run *r, size_t s, size_t len, sf_decision *out)
{
    sim *m = &r->m;
    size_t last = r->b->n - 1;
    for (size_t j = 0; j < len; j++) {
        size_t i = s + j;
        int final = i == last;
        size_t before = m->n_trades;
        sf_status st = sim_bar(m, r->b, i, SIZE_MAX, final ? 0 : r->entry_sig[j], final ? 0 : r->exit_sig[j]);
        if (st != SF_OK)
            return st;
        if (final)
            live_decision(m, before, r->entry_sig[j], r->exit_sig[j], out);
    }
    return SF_OK;
}

static sf_status live_simulate(run *r, sf_decision *out, sf_err *err)
{
    const sf_bars *b = r->b;
    for (size_t s = 0; s < b->n; s += SF_ENGINE_CHUNK) {
        sf_status st = stopped(r->opts, SF_OK, "logic execution", err);
        if (st != SF_OK)
            return st;
        size_t len = b->n - s < SF_ENGINE_CHUNK ? b->n - s : SF_ENGINE_CHUNK;
        eval_node(r, r->lg->entry, s, len, r->entry_sig, 0);
        if (r->lg->exit >= 0)
            eval_node(r, r->lg->exit, s, len, r->exit_sig, 0);
        else
            memset(r->exit_sig, 0, len);
        chunk_equity(r, s);
        if (live_chunk(r, s, len, out) != SF_OK)
            return sf_err_set(err, SF_ERR_NOMEM, "could not record trade");
    }
    out->bar = b->n - 1;
    out->bar_time = b->ts[b->n - 1];
    out->close = b->close[b->n - 1];
    return SF_OK;
}

sf_status sf_engine_decide(const sf_logic *logic, const sf_bars *bars, const sf_run_opts *opts, sf_decision *out,
                           sf_err *err)
{
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.keep_equity = o.keep_trades = 0;
    if (opts != NULL) {
        o.cancel = opts->cancel;
        o.deadline_ms = opts->deadline_ms;
        o.cache = opts->cache;
    }
    memset(out, 0, sizeof *out);
    run *r = run_new();
    if (r == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate run state");
    r->lg = logic;
    r->b = bars;
    r->opts = &o;
    sf_status st = run_check(logic, bars, r->opts, err);
    if (st == SF_OK)
        st = phase_indicators(r, err);
    if (st == SF_OK)
        st = prepare_signals(r, err);
    if (st == SF_OK) {
        sim_init(&r->m, logic);
        st = equity_alloc(r, err);
    }
    if (st == SF_OK)
        st = live_simulate(r, out, err);
    run_destroy(r);
    free(r);
    return st;
}
