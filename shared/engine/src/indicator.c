/*
 * indicator: TA-Lib-compatible technical indicators; see sf/indicator.h.
 *
 * DESIGN
 * Each type is one row of info_table (names, parameters, outputs: what the
 * logic parser and the CLI see) and one row of impl_table (its lookback and
 * its compute function). A compute function writes its outputs from the
 * lookback on; sf_ind_compute then writes NaN before it.
 *
 * Values follow TA-Lib (0.4 / 0.6 releases) in its default compatibility
 * mode with no unstable period, and keep TA-Lib's order of floating-point
 * operations (running sums that subtract the trailing value after the
 * division, Wilder steps written "prev *= p-1; prev += x; prev /= p", its
 * 1e-8 zero tests) so results agree with TA-Lib to the last bit or nearly.
 * Where TA-Lib rescans a window for its extreme (MAX, MIN, STOCH, WILLR) we
 * use a monotonic deque instead: the same values in O(n).
 *
 * Where releases differ we follow the current TA-Lib source: cci reads 0 on
 * a window whose deviation is below 1e-8 (TA-Lib 0.4.0 tested != 0.0 and
 * printed +-66.67 of rounding noise on flat windows); macd with signal 1
 * starts at bar slow-1 (0.4.0's EMA lookback of period 1 was -1, which
 * shifted its outputs by a bar). mfi keeps the released "total below 1.0
 * reads 0" rule.
 *
 * Deviations from TA-Lib's parameter ranges (documented in the table):
 * period 1 is accepted for sma, ema, highest and lowest (TA-Lib: 2); the
 * value is then the source itself. bbands' stddev is limited to 0.01..100
 * and psar's accelerations to 0..1 (TA-Lib: any real).
 *
 * Cost: O(n) per call whatever the period, except cci, whose mean deviation
 * is summed over the window in TA-Lib's order up to period CCI_EXACT_MAX
 * (bit for bit) and above it from an order-statistic tree over the bars'
 * ranks, O(n log n) (cci_long: within 1e-9 relative). Scratch memory (deque
 * indices, rings; at most 2 * SF_IND_PERIOD_MAX entries; cci_long's tree,
 * 64 bytes a bar) is allocated once per call and freed before return;
 * nothing is allocated per bar.
 */
#include "sf/indicator.h"
#include "sf/time.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ----------------------------------------------------------- */

#define PMAX ((double)SF_IND_PERIOD_MAX)
#define P_INT(nm, id, def, lo)                                                                                         \
    {                                                                                                                  \
        (nm), (id), 1, (def), (lo), PMAX                                                                               \
    }
#define PERIOD(def, lo) P_INT("period", SF_IP_PERIOD, (def), (lo))
#define REQUIRED NAN

static const sf_ind_info info_table[SF_IND__COUNT] = {
    [SF_IND_SMA] = {"sma", 1, SF_FIELD_CLOSE, 1, {PERIOD(REQUIRED, 1)}, 1, {"value"}},
    [SF_IND_EMA] = {"ema", 1, SF_FIELD_CLOSE, 1, {PERIOD(REQUIRED, 1)}, 1, {"value"}},
    [SF_IND_WMA] = {"wma", 1, SF_FIELD_CLOSE, 1, {PERIOD(REQUIRED, 1)}, 1, {"value"}},
    [SF_IND_RSI] = {"rsi", 1, SF_FIELD_CLOSE, 1, {PERIOD(14, 2)}, 1, {"value"}},
    [SF_IND_MACD] = {"macd",
                     1,
                     SF_FIELD_CLOSE,
                     3,
                     {P_INT("fast", SF_IP_FAST, 12, 2), P_INT("slow", SF_IP_SLOW, 26, 2),
                      P_INT("signal", SF_IP_SIGNAL, 9, 1)},
                     3,
                     {"macd", "signal", "hist"}},
    [SF_IND_BBANDS] = {"bbands",
                       1,
                       SF_FIELD_CLOSE,
                       2,
                       {PERIOD(20, 2), {"stddev", SF_IP_STDDEV, 0, 2, 0.01, 100}},
                       3,
                       {"lower", "middle", "upper"}},
    [SF_IND_ATR] = {"atr", 0, SF_FIELD_CLOSE, 1, {PERIOD(14, 1)}, 1, {"value"}},
    [SF_IND_ADX] = {"adx", 0, SF_FIELD_CLOSE, 1, {PERIOD(14, 2)}, 1, {"value"}},
    [SF_IND_CCI] = {"cci", 0, SF_FIELD_CLOSE, 1, {PERIOD(20, 2)}, 1, {"value"}},
    [SF_IND_STOCH] = {"stoch",
                      0,
                      SF_FIELD_CLOSE,
                      3,
                      {P_INT("k", SF_IP_K, 14, 1), P_INT("k_smooth", SF_IP_K_SMOOTH, 3, 1), P_INT("d", SF_IP_D, 3, 1)},
                      2,
                      {"k", "d"}},
    [SF_IND_ROC] = {"roc", 1, SF_FIELD_CLOSE, 1, {PERIOD(10, 1)}, 1, {"value"}},
    [SF_IND_HIGHEST] = {"highest", 1, SF_FIELD_HIGH, 1, {PERIOD(REQUIRED, 1)}, 1, {"value"}},
    [SF_IND_LOWEST] = {"lowest", 1, SF_FIELD_LOW, 1, {PERIOD(REQUIRED, 1)}, 1, {"value"}},
    [SF_IND_OBV] = {"obv", 1, SF_FIELD_CLOSE, 0, {{0}}, 1, {"value"}},
    [SF_IND_DEMA] = {"dema", 1, SF_FIELD_CLOSE, 1, {PERIOD(30, 2)}, 1, {"value"}},
    [SF_IND_TEMA] = {"tema", 1, SF_FIELD_CLOSE, 1, {PERIOD(30, 2)}, 1, {"value"}},
    [SF_IND_WILLR] = {"willr", 0, SF_FIELD_CLOSE, 1, {PERIOD(14, 2)}, 1, {"value"}},
    [SF_IND_MFI] = {"mfi", 0, SF_FIELD_CLOSE, 1, {PERIOD(14, 2)}, 1, {"value"}},
    [SF_IND_PSAR] = {"psar",
                     0,
                     SF_FIELD_CLOSE,
                     2,
                     {{"accel", SF_IP_ACCEL, 0, 0.02, 0, 1}, {"max_accel", SF_IP_MAX_ACCEL, 0, 0.2, 0, 1}},
                     1,
                     {"value"}},
};

static const char *const field_names[SF_FIELD__COUNT] = {
    "open", "high", "low", "close", "volume",
};

const sf_ind_info *sf_ind_info_get(sf_ind_type type)
{
    if ((int)type < 0 || type >= SF_IND__COUNT)
        return NULL;
    return &info_table[type];
}

const sf_ind_info *sf_ind_info_find(const char *name, sf_ind_type *type)
{
    if (name == NULL)
        return NULL;
    for (int t = 0; t < SF_IND__COUNT; t++) {
        if (strcmp(info_table[t].name, name) != 0)
            continue;
        if (type != NULL)
            *type = (sf_ind_type)t;
        return &info_table[t];
    }
    return NULL;
}

int sf_field_find(const char *name)
{
    if (name == NULL)
        return -1;
    for (int f = 0; f < SF_FIELD__COUNT; f++)
        if (strcmp(field_names[f], name) == 0)
            return f;
    return -1;
}

const char *sf_field_name(sf_field f)
{
    if ((int)f < 0 || f >= SF_FIELD__COUNT)
        return NULL;
    return field_names[f];
}

void sf_ind_spec_default(sf_ind_type type, sf_ind_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->type = type;
    const sf_ind_info *info = sf_ind_info_get(type);
    if (info == NULL)
        return;
    spec->source = info->default_source;
    for (int i = 0; i < info->n_params; i++)
        spec->param[info->params[i].id] = info->params[i].def;
}

void sf_ind_spec_normalize(sf_ind_spec *spec)
{
    const sf_ind_info *info = sf_ind_info_get(spec->type);
    if (info == NULL)
        return;
    double keep[SF_IP__COUNT] = {0};
    for (int i = 0; i < info->n_params; i++) {
        sf_ind_param_id id = info->params[i].id;
        keep[id] = spec->param[id] + 0.0; /* -0.0 becomes 0.0 */
    }
    memcpy(spec->param, keep, sizeof keep);
    if (!info->has_source)
        spec->source = info->default_source;
}

/* ---- validation ---------------------------------------------------------- */

sf_status sf_ind_param_check(const sf_ind_param_info *p, double v, const char *path, sf_err *err)
{
    const char *kind = p->is_int ? "an integer" : "a number";
    if (isnan(v))
        return sf_err_set(err, SF_ERR_INVALID, "%s: is required", path);
    if (v < p->min || (p->is_int && v != floor(v)))
        return sf_err_set(err, SF_ERR_INVALID, "%s: must be %s >= %.15g", path, kind, p->min);
    if (v > p->max)
        return sf_err_set(err, SF_ERR_INVALID, "%s: must be %s <= %.15g", path, kind, p->max);
    return SF_OK;
}

sf_status sf_ind_spec_validate(const sf_ind_spec *spec, const char *prefix, sf_err *err)
{
    const sf_ind_info *info = sf_ind_info_get(spec->type);
    if (info == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "%s: unknown indicator type %d", prefix ? prefix : "indicator",
                          (int)spec->type);
    if (prefix == NULL)
        prefix = info->name;
    if (info->has_source && sf_field_name(spec->source) == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "%s.source: must be open, high, low, close or volume", prefix);
    for (int i = 0; i < info->n_params; i++) {
        const sf_ind_param_info *p = &info->params[i];
        char path[256];
        snprintf(path, sizeof path, "%s.%s", prefix, p->name);
        sf_status st = sf_ind_param_check(p, spec->param[p->id], path, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

/* ---- shared pieces ------------------------------------------------------- */

typedef struct ind_in {
    const sf_bars *b;
    const double *src;   /* the chosen source column (close if none) */
    const double *param; /* the spec's parameters, validated */
    size_t n;
    const sf_ind_stop *stop; /* may be NULL */
} ind_in;

static size_t ip(const double *param, sf_ind_param_id id)
{
    return (size_t)param[id];
}

/* TA-Lib's TA_IS_ZERO. */
static int is_zero(double v)
{
    return v > -0.00000001 && v < 0.00000001;
}

static size_t wrap(size_t v, size_t cap)
{
    return v >= cap ? v - cap : v;
}

/* Simple moving average of x over p bars, for x defined from index `from`:
 * writes out[from + p - 1 .. n-1]. TA-Lib's TA_INT_SMA arithmetic. out must
 * not alias x. */
static void sma_run(const double *x, size_t from, size_t n, size_t p, double *out)
{
    if (from >= n || n - from < p)
        return;
    double total = 0.0;
    size_t i = from, trail = from;
    for (; i < from + p - 1; i++)
        total += x[i];
    for (; i < n; i++) {
        total += x[i];
        double t = total;
        total -= x[trail++];
        out[i] = t / (double)p;
    }
}

/* An EMA fed one value at a time: NaN until `p` values have come, then the
 * SMA of those as the seed, then ((x - prev) * k) + prev, k = 2 / (p + 1). */
typedef struct ema_state {
    double k, sum, prev;
    size_t p, count;
} ema_state;

static void ema_init(ema_state *e, size_t p)
{
    e->k = 2.0 / (double)(p + 1);
    e->sum = 0.0;
    e->prev = NAN;
    e->p = p;
    e->count = 0;
}

static double ema_feed(ema_state *e, double x)
{
    if (e->count < e->p) {
        e->sum += x;
        if (++e->count == e->p)
            e->prev = e->sum / (double)e->p;
        return e->prev;
    }
    e->prev = ((x - e->prev) * e->k) + e->prev;
    return e->prev;
}

static int ema_ready(const ema_state *e)
{
    return e->count == e->p;
}

/* A monotonic deque of indices over a window of `cap` bars: its front is the
 * index of the window's maximum (or minimum). Amortised O(1) per push. */
typedef struct mono_q {
    size_t *idx;
    size_t cap, head, len;
    int want_max;
} mono_q;

static void mq_init(mono_q *q, size_t *storage, size_t cap, int want_max)
{
    q->idx = storage;
    q->cap = cap;
    q->head = 0;
    q->len = 0;
    q->want_max = want_max;
}

static void mq_push(mono_q *q, const double *x, size_t i)
{
    if (q->len > 0 && q->idx[q->head] + q->cap <= i) {
        q->head = wrap(q->head + 1, q->cap);
        q->len--;
    }
    while (q->len > 0) {
        double back = x[q->idx[wrap(q->head + q->len - 1, q->cap)]];
        if (q->want_max ? back > x[i] : back < x[i])
            break;
        q->len--;
    }
    q->idx[wrap(q->head + q->len, q->cap)] = i;
    q->len++;
}

static double mq_front(const mono_q *q, const double *x)
{
    return x[q->idx[q->head]];
}

/* Scratch for one call; NULL (err filled) when out of memory. */
static void *scratch_alloc(size_t count, size_t size, sf_err *err)
{
    void *p = calloc(count ? count : 1, size);
    if (p == NULL)
        sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator scratch: out of memory");
    return p;
}

/* TA-Lib's TRANGE at bar i >= 1. */
static double true_range(double h, double l, double prev_close)
{
    double greatest = h - l;
    double v = fabs(prev_close - h);
    if (v > greatest)
        greatest = v;
    v = fabs(prev_close - l);
    if (v > greatest)
        greatest = v;
    return greatest;
}

static double typical_price(const sf_bars *b, size_t i)
{
    return (b->high[i] + b->low[i] + b->close[i]) / 3.0;
}

/* ---- moving averages ----------------------------------------------------- */

static sf_status ind_sma(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    sma_run(in->src, 0, in->n, ip(in->param, SF_IP_PERIOD), outs[0]);
    return SF_OK;
}

static sf_status ind_ema(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    ema_state e;
    ema_init(&e, ip(in->param, SF_IP_PERIOD));
    for (size_t i = 0; i < in->n; i++)
        outs[0][i] = ema_feed(&e, in->src[i]);
    return SF_OK;
}

/* TA-Lib's WMA: periodSum carries sum(w * x); periodSub the plain sum, so a
 * step subtracts one copy of every value in the window. */
static sf_status ind_wma(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    const double *x = in->src;
    if (n < p)
        return SF_OK;
    if (p == 1) {
        memcpy(outs[0], x, n * sizeof *x);
        return SF_OK;
    }
    double divider = (double)(p * (p + 1) / 2);
    double sum = 0.0, sub = 0.0, trailing = 0.0;
    size_t i = 0, trail = 0;
    for (; i < p - 1; i++) {
        sub += x[i];
        sum += x[i] * (double)(i + 1);
    }
    for (; i < n; i++) {
        sub += x[i];
        sub -= trailing;
        sum += x[i] * (double)p;
        trailing = x[trail++];
        outs[0][i] = sum / divider;
        sum -= sub;
    }
    return SF_OK;
}

static sf_status ind_dema(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    ema_state e1, e2;
    size_t p = ip(in->param, SF_IP_PERIOD);
    ema_init(&e1, p);
    ema_init(&e2, p);
    for (size_t i = 0; i < in->n; i++) {
        double a = ema_feed(&e1, in->src[i]);
        if (!ema_ready(&e1))
            continue;
        double b = ema_feed(&e2, a);
        if (ema_ready(&e2))
            outs[0][i] = (2.0 * a) - b;
    }
    return SF_OK;
}

static sf_status ind_tema(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    ema_state e1, e2, e3;
    size_t p = ip(in->param, SF_IP_PERIOD);
    ema_init(&e1, p);
    ema_init(&e2, p);
    ema_init(&e3, p);
    for (size_t i = 0; i < in->n; i++) {
        double a = ema_feed(&e1, in->src[i]);
        if (!ema_ready(&e1))
            continue;
        double b = ema_feed(&e2, a);
        if (!ema_ready(&e2))
            continue;
        double c = ema_feed(&e3, b);
        if (ema_ready(&e3))
            outs[0][i] = c + ((3.0 * a) - (3.0 * b));
    }
    return SF_OK;
}

/* TA-Lib's MACD (default compatibility): both price EMAs are seeded on the
 * slow EMA's first bar, so the fast EMA's seed is the mean of
 * x[slow-fast .. slow-1]; the signal EMA starts on the first MACD value.
 * fast > slow is swapped, as TA-Lib does. */
static sf_status ind_macd(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t fast = ip(in->param, SF_IP_FAST), slow = ip(in->param, SF_IP_SLOW);
    if (slow < fast) {
        size_t t = slow;
        slow = fast;
        fast = t;
    }
    ema_state ef, es, eg;
    ema_init(&ef, fast);
    ema_init(&es, slow);
    ema_init(&eg, ip(in->param, SF_IP_SIGNAL));
    for (size_t i = 0; i < in->n; i++) {
        double s = ema_feed(&es, in->src[i]);
        double f = i + fast >= slow ? ema_feed(&ef, in->src[i]) : NAN;
        if (!ema_ready(&es))
            continue;
        double m = f - s;
        double g = ema_feed(&eg, m);
        if (!ema_ready(&eg))
            continue;
        outs[0][i] = m;
        outs[1][i] = g;
        outs[2][i] = m - g;
    }
    return SF_OK;
}

/* Middle = SMA; deviation = sqrt(E[x^2] - middle^2) from a running sum of
 * squares (TA-Lib's TA_INT_stddev_using_precalc_ma), 0 below 1e-8. */
static sf_status ind_bbands(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    double k = in->param[SF_IP_STDDEV];
    const double *x = in->src;
    double *lo = outs[0], *mid = outs[1], *up = outs[2];
    if (n < p)
        return SF_OK;
    sma_run(x, 0, n, p, mid);
    double total2 = 0.0;
    for (size_t i = 0; i + 1 < p; i++)
        total2 += x[i] * x[i];
    for (size_t i = p - 1; i < n; i++) {
        total2 += x[i] * x[i];
        double mean2 = total2 / (double)p;
        total2 -= x[i + 1 - p] * x[i + 1 - p];
        mean2 -= mid[i] * mid[i];
        double width = (mean2 < 0.00000001 ? 0.0 : sqrt(mean2)) * k;
        up[i] = mid[i] + width;
        lo[i] = mid[i] - width;
    }
    return SF_OK;
}

/* ---- oscillators ----------------------------------------------------------- */

static double rsi_value(double gain, double loss)
{
    double sum = gain + loss;
    return is_zero(sum) ? 0.0 : 100.0 * (gain / sum);
}

/* First averages: plain means of the first p changes; then Wilder. */
static sf_status ind_rsi(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    const double *x = in->src;
    if (n <= p)
        return SF_OK;
    double gain = 0.0, loss = 0.0;
    for (size_t i = 1; i <= p; i++) {
        double d = x[i] - x[i - 1];
        if (d < 0.0)
            loss -= d;
        else
            gain += d;
    }
    loss /= (double)p;
    gain /= (double)p;
    outs[0][p] = rsi_value(gain, loss);
    for (size_t i = p + 1; i < n; i++) {
        double d = x[i] - x[i - 1];
        loss *= (double)(p - 1);
        gain *= (double)(p - 1);
        if (d < 0.0)
            loss -= d;
        else
            gain += d;
        loss /= (double)p;
        gain /= (double)p;
        outs[0][i] = rsi_value(gain, loss);
    }
    return SF_OK;
}

/* TA-Lib's STOCH with SMA smoothing. Pass 1 writes the raw %K into outs[0];
 * the slow %K (SMA of it) goes to outs[1], the %D (SMA of that) back into
 * outs[0]; then the two are swapped, so no bar-sized scratch is needed. */
static sf_status ind_stoch(const ind_in *in, double *const *outs, sf_err *err)
{
    size_t k = ip(in->param, SF_IP_K), ks = ip(in->param, SF_IP_K_SMOOTH);
    size_t d = ip(in->param, SF_IP_D), n = in->n;
    const sf_bars *b = in->b;
    if (n <= (k - 1) + (ks - 1) + (d - 1))
        return SF_OK;
    size_t *scratch = scratch_alloc(2 * k, sizeof *scratch, err);
    if (scratch == NULL)
        return SF_ERR_NOMEM;
    mono_q hi, lo;
    mq_init(&hi, scratch, k, 1);
    mq_init(&lo, scratch + k, k, 0);
    for (size_t i = 0; i < n; i++) {
        mq_push(&hi, b->high, i);
        mq_push(&lo, b->low, i);
        if (i + 1 < k)
            continue;
        double ll = mq_front(&lo, b->low);
        double diff = (mq_front(&hi, b->high) - ll) / 100.0;
        outs[0][i] = diff != 0.0 ? (b->close[i] - ll) / diff : 0.0;
    }
    free(scratch);
    sma_run(outs[0], k - 1, n, ks, outs[1]);
    sma_run(outs[1], k - 1 + ks - 1, n, d, outs[0]);
    for (size_t i = (k - 1) + (ks - 1) + (d - 1); i < n; i++) {
        double t = outs[0][i];
        outs[0][i] = outs[1][i];
        outs[1][i] = t;
    }
    return SF_OK;
}

static sf_status ind_willr(const ind_in *in, double *const *outs, sf_err *err)
{
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    const sf_bars *b = in->b;
    if (n < p)
        return SF_OK;
    size_t *scratch = scratch_alloc(2 * p, sizeof *scratch, err);
    if (scratch == NULL)
        return SF_ERR_NOMEM;
    mono_q hi, lo;
    mq_init(&hi, scratch, p, 1);
    mq_init(&lo, scratch + p, p, 0);
    for (size_t i = 0; i < n; i++) {
        mq_push(&hi, b->high, i);
        mq_push(&lo, b->low, i);
        if (i + 1 < p)
            continue;
        double hh = mq_front(&hi, b->high);
        double diff = (hh - mq_front(&lo, b->low)) / (0 - 100.0);
        outs[0][i] = diff != 0.0 ? (hh - b->close[i]) / diff : 0.0;
    }
    free(scratch);
    return SF_OK;
}

/* ---- cci over long windows: O(log period) a bar ---- */

/* Periods above this take the order-statistic path; up to it the window is
 * summed in TA-Lib's order (bit for bit, at most 2 x 128 steps a bar). */
#define CCI_EXACT_MAX 128
/* cci_long's bytes a bar: prices, sorted prices, ranks, two trees, pairs and their sort buffer */
#define CCI_TREE_BYTES (8 + 8 + 4 + 4 + 8 + 2 * 16)

typedef struct cci_tree {
    size_t n;
    double *sorted; /* every typical price, ascending (ties by bar) */
    uint32_t *rank; /* bar -> 1-based position in sorted */
    uint32_t *cnt;  /* Fenwick tree: window values by rank */
    double *sum;    /* Fenwick tree: their offsets from ref */
    double ref;     /* the median price: offsets stay small, so do their rounding errors */
} cci_tree;

typedef struct cci_pair {
    uint64_t key; /* the price's bits, ordered as the price (finite) */
    uint32_t bar;
} cci_pair;

static uint64_t cci_key(double v)
{
    uint64_t k;
    memcpy(&k, &v, sizeof k);
    return k >> 63 ? ~k : k | ((uint64_t)1 << 63);
}

/* Sort pairs by key, ties in their order (LSD radix, a byte a pass: O(n),
 * the stop read every SF_IND_STOP_WORK pairs); tmp holds n pairs. */
static sf_status cci_sort(cci_pair *pairs, cci_pair *tmp, size_t n, const sf_ind_stop *stop, sf_err *err)
{
    sf_status st = SF_OK;
    for (int shift = 0; shift < 64 && st == SF_OK; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((pairs[i].key >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n && st == SF_OK; i++) {
            tmp[count[(pairs[i].key >> shift) & 0xff]++] = pairs[i];
            if (i % SF_IND_STOP_WORK == 0)
                st = sf_ind_stop_check(stop, err);
        }
        memcpy(pairs, tmp, n * sizeof *pairs);
    }
    return st;
}

static void fw_add(cci_tree *t, size_t r, int dc, double dv)
{
    for (; r <= t->n; r += r & (~r + 1)) {
        t->cnt[r] = (uint32_t)((int64_t)t->cnt[r] + dc);
        t->sum[r] += dv;
    }
}

/* Count and offset sum of the window values of rank <= r. */
static void fw_prefix(const cci_tree *t, size_t r, size_t *cnt, double *sum)
{
    size_t c = 0;
    double v = 0.0;
    for (; r > 0; r -= r & (~r + 1)) {
        c += t->cnt[r];
        v += t->sum[r];
    }
    *cnt = c;
    *sum = v;
}

/* Number of sorted values strictly below m. */
static size_t cci_below(const cci_tree *t, double m)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->sorted[mid] < m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The tree over tp[0 .. n-1], empty (every value ranked, none in the
 * window); SF_ERR_NOMEM or the stop's status otherwise (cci_tree_free
 * then too). */
static sf_status cci_tree_new(cci_tree *t, const double *tp, size_t n, const sf_ind_stop *stop, sf_err *err)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->sorted = scratch_alloc(n, sizeof *t->sorted, err);
    t->rank = scratch_alloc(n, sizeof *t->rank, err);
    t->cnt = scratch_alloc(n + 1, sizeof *t->cnt, err);
    t->sum = scratch_alloc(n + 1, sizeof *t->sum, err);
    cci_pair *pairs = scratch_alloc(2 * n, sizeof *pairs, err);
    if (t->sorted == NULL || t->rank == NULL || t->cnt == NULL || t->sum == NULL || pairs == NULL) {
        free(pairs);
        return SF_ERR_NOMEM;
    }
    sf_status st = SF_OK;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        pairs[i] = (cci_pair){cci_key(tp[i]), (uint32_t)i};
        if (i % SF_IND_STOP_WORK == 0)
            st = sf_ind_stop_check(stop, err);
    }
    if (st == SF_OK)
        st = cci_sort(pairs, pairs + n, n, stop, err);
    for (size_t k = 0; k < n && st == SF_OK; k++) {
        t->sorted[k] = tp[pairs[k].bar];
        t->rank[pairs[k].bar] = (uint32_t)(k + 1);
    }
    t->ref = n > 0 ? t->sorted[n / 2] : 0.0;
    free(pairs);
    return st;
}

static void cci_tree_free(cci_tree *t)
{
    free(t->sorted);
    free(t->rank);
    free(t->cnt);
    free(t->sum);
}

/* TA-Lib's cci value from the window's sum of absolute deviations dev. */
static double cci_value(double last, double avg, double dev, size_t p)
{
    double t = last - avg;
    return !is_zero(t) && !is_zero(dev) ? t / (0.015 * (dev / (double)p)) : 0.0;
}

/* sum |x - m| over the window = (m - ref) * below - S_below + S_above -
 * (m - ref) * above, with S the sums of offsets x - ref of the values below
 * and at or above the mean m (ranks from one binary search). The mean is a
 * compensated running sum (Neumaier). Within 1e-9 relative of the exact
 * path (tests/unit/test_indicator.c). */
static sf_status cci_long(const ind_in *in, size_t p, double *out, sf_err *err)
{
    size_t n = in->n;
    double *tp = scratch_alloc(n, sizeof *tp, err);
    if (tp == NULL)
        return SF_ERR_NOMEM;
    sf_status st = SF_OK;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        tp[i] = typical_price(in->b, i);
        if (i % SF_IND_STOP_WORK == 0)
            st = sf_ind_stop_check(in->stop, err);
    }
    cci_tree t = {0};
    if (st == SF_OK)
        st = cci_tree_new(&t, tp, n, in->stop, err);
    double sum = 0.0, comp = 0.0, total = 0.0;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        double add[2] = {tp[i], i >= p ? -tp[i - p] : 0.0};
        for (int k = 0; k < 2; k++) { /* Neumaier: sum + comp is the window's sum */
            double s2 = sum + add[k];
            comp += fabs(sum) >= fabs(add[k]) ? (sum - s2) + add[k] : (add[k] - s2) + sum;
            sum = s2;
        }
        fw_add(&t, t.rank[i], 1, tp[i] - t.ref);
        total += tp[i] - t.ref;
        if (i >= p) {
            fw_add(&t, t.rank[i - p], -1, -(tp[i - p] - t.ref));
            total -= tp[i - p] - t.ref;
        }
        if (i % (SF_IND_STOP_WORK / 64) == 0)
            st = sf_ind_stop_check(in->stop, err);
        if (i + 1 < p || st != SF_OK)
            continue;
        double avg = (sum + comp) / (double)p, m = avg - t.ref, below_sum;
        size_t below;
        fw_prefix(&t, cci_below(&t, avg), &below, &below_sum);
        double dev = m * (double)below - below_sum + (total - below_sum) - m * (double)(p - below);
        out[i] = cci_value(tp[i], avg, dev, p);
    }
    cci_tree_free(&t);
    free(tp);
    return st;
}

/* Typical prices live in a ring in TA-Lib's slot order, and the mean and the
 * mean deviation are summed over the ring in that order, as TA-Lib does (bit
 * for bit); above CCI_EXACT_MAX, cci_long. */
static sf_status ind_cci(const ind_in *in, double *const *outs, sf_err *err)
{
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    if (n < p)
        return SF_OK;
    if (p > CCI_EXACT_MAX)
        return cci_long(in, p, outs[0], err);
    double *ring = scratch_alloc(p, sizeof *ring, err);
    if (ring == NULL)
        return SF_ERR_NOMEM;
    for (size_t i = 0; i + 1 < p; i++)
        ring[i] = typical_price(in->b, i);
    size_t slot = p - 1, every = p < SF_IND_STOP_WORK ? SF_IND_STOP_WORK / p : 1;
    for (size_t i = p - 1; i < n; i++) {
        sf_status st = i % every == 0 ? sf_ind_stop_check(in->stop, err) : SF_OK;
        if (st != SF_OK) {
            free(ring);
            return st;
        }
        double last = typical_price(in->b, i);
        ring[slot] = last;
        double avg = 0.0, dev = 0.0;
        for (size_t j = 0; j < p; j++)
            avg += ring[j];
        avg /= (double)p;
        for (size_t j = 0; j < p; j++)
            dev += fabs(ring[j] - avg);
        double t = last - avg;
        outs[0][i] = !is_zero(t) && !is_zero(dev) ? t / (0.015 * (dev / (double)p)) : 0.0;
        slot = wrap(slot + 1, p);
    }
    free(ring);
    return SF_OK;
}

/* Percent change over `period` bars; a zero divisor gives 0, as TA-Lib. */
static sf_status ind_roc(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD);
    const double *x = in->src;
    for (size_t i = p; i < in->n; i++) {
        double prev = x[i - p];
        outs[0][i] = prev != 0.0 ? ((x[i] / prev) - 1.0) * 100.0 : 0.0;
    }
    return SF_OK;
}

static double mfi_value(double pos, double neg)
{
    double sum = pos + neg;
    return sum < 1.0 ? 0.0 : 100.0 * (pos / sum);
}

/* One bar of money flow into the rings at `slot`; returns nothing, updates
 * the sums. A bar whose typical price did not move counts on neither side. */
static void mfi_bar(const sf_bars *b, size_t i, double *prev_tp, double *pos_ring, double *neg_ring, size_t slot,
                    double *pos, double *neg)
{
    double tp = typical_price(b, i);
    double d = tp - *prev_tp;
    *prev_tp = tp;
    double flow = tp * b->volume[i];
    pos_ring[slot] = d > 0.0 ? flow : 0.0;
    neg_ring[slot] = d < 0.0 ? flow : 0.0;
    if (d > 0.0)
        *pos += flow;
    else if (d < 0.0)
        *neg += flow;
}

/* TA-Lib's MFI as released (0.4 / 0.6): a window whose total money flow is
 * below 1.0 reads 0. */
static sf_status ind_mfi(const ind_in *in, double *const *outs, sf_err *err)
{
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    if (n <= p)
        return SF_OK;
    double *ring = scratch_alloc(2 * p, sizeof *ring, err);
    if (ring == NULL)
        return SF_ERR_NOMEM;
    double *pos_ring = ring, *neg_ring = ring + p;
    double prev_tp = typical_price(in->b, 0), pos = 0.0, neg = 0.0;
    for (size_t i = 1; i <= p; i++)
        mfi_bar(in->b, i, &prev_tp, pos_ring, neg_ring, i - 1, &pos, &neg);
    outs[0][p] = mfi_value(pos, neg);
    size_t slot = 0;
    for (size_t i = p + 1; i < n; i++) {
        pos -= pos_ring[slot];
        neg -= neg_ring[slot];
        mfi_bar(in->b, i, &prev_tp, pos_ring, neg_ring, slot, &pos, &neg);
        outs[0][i] = mfi_value(pos, neg);
        slot = wrap(slot + 1, p);
    }
    free(ring);
    return SF_OK;
}

/* ---- volatility and trend ---------------------------------------------------- */

/* First ATR at bar p: the mean of TR[1..p]; then Wilder. */
static sf_status ind_atr(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    const sf_bars *b = in->b;
    if (n <= p)
        return SF_OK;
    double sum = 0.0;
    for (size_t i = 1; i <= p; i++)
        sum += true_range(b->high[i], b->low[i], b->close[i - 1]);
    double atr = sum / (double)p;
    outs[0][p] = atr;
    for (size_t i = p + 1; i < n; i++) {
        atr *= (double)(p - 1);
        atr += true_range(b->high[i], b->low[i], b->close[i - 1]);
        atr /= (double)p;
        outs[0][i] = atr;
    }
    return SF_OK;
}

typedef struct adx_state {
    double plus_dm, minus_dm, tr; /* Wilder sums */
    double prev_high, prev_low, prev_close;
    double p;
} adx_state;

/* Advance to bar i: directional movement and true range, summed (smooth = 0,
 * TA-Lib's first p-1 bars) or Wilder-smoothed. */
static void adx_step(adx_state *s, const sf_bars *b, size_t i, int smooth)
{
    double h = b->high[i], l = b->low[i];
    double up = h - s->prev_high, down = s->prev_low - l;
    s->prev_high = h;
    s->prev_low = l;
    if (smooth) {
        s->minus_dm -= s->minus_dm / s->p;
        s->plus_dm -= s->plus_dm / s->p;
    }
    if (down > 0 && up < down)
        s->minus_dm += down;
    else if (up > 0 && up > down)
        s->plus_dm += up;
    double tr = true_range(h, l, s->prev_close);
    s->tr = smooth ? s->tr - s->tr / s->p + tr : s->tr + tr;
    s->prev_close = b->close[i];
}

/* DX of the current sums; 0 (no value) when TA-Lib skips the bar. */
static int adx_dx(const adx_state *s, double *dx)
{
    if (is_zero(s->tr))
        return 0;
    double minus_di = 100.0 * (s->minus_dm / s->tr);
    double plus_di = 100.0 * (s->plus_dm / s->tr);
    double sum = minus_di + plus_di;
    if (is_zero(sum))
        return 0;
    *dx = 100.0 * (fabs(minus_di - plus_di) / sum);
    return 1;
}

/* TA-Lib's ADX: DM and TR summed over bars 1..p-1, smoothed from bar p; the
 * first ADX (bar 2p-1) is the mean of the DX of bars p..2p-1; then Wilder. */
static sf_status ind_adx(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    size_t p = ip(in->param, SF_IP_PERIOD), n = in->n;
    const sf_bars *b = in->b;
    if (n <= 2 * p - 1)
        return SF_OK;
    adx_state s = {0, 0, 0, b->high[0], b->low[0], b->close[0], (double)p};
    for (size_t i = 1; i < p; i++)
        adx_step(&s, b, i, 0);
    double sum_dx = 0.0, dx;
    for (size_t i = p; i < 2 * p; i++) {
        adx_step(&s, b, i, 1);
        if (adx_dx(&s, &dx))
            sum_dx += dx;
    }
    double adx = sum_dx / (double)p;
    outs[0][2 * p - 1] = adx;
    for (size_t i = 2 * p; i < n; i++) {
        adx_step(&s, b, i, 1);
        if (adx_dx(&s, &dx))
            adx = (adx * (double)(p - 1) + dx) / (double)p;
        outs[0][i] = adx;
    }
    return SF_OK;
}

static sf_status ind_extreme(const ind_in *in, double *out, int want_max, sf_err *err)
{
    size_t p = ip(in->param, SF_IP_PERIOD);
    if (in->n < p)
        return SF_OK;
    size_t *scratch = scratch_alloc(p, sizeof *scratch, err);
    if (scratch == NULL)
        return SF_ERR_NOMEM;
    mono_q q;
    mq_init(&q, scratch, p, want_max);
    for (size_t i = 0; i < in->n; i++) {
        mq_push(&q, in->src, i);
        if (i + 1 >= p)
            out[i] = mq_front(&q, in->src);
    }
    free(scratch);
    return SF_OK;
}

static sf_status ind_highest(const ind_in *in, double *const *outs, sf_err *err)
{
    return ind_extreme(in, outs[0], 1, err);
}

static sf_status ind_lowest(const ind_in *in, double *const *outs, sf_err *err)
{
    return ind_extreme(in, outs[0], 0, err);
}

/* Starts at bar 0 with that bar's volume; the source decides the sign. */
static sf_status ind_obv(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    const double *x = in->src, *v = in->b->volume;
    if (in->n == 0)
        return SF_OK;
    double obv = v[0], prev = x[0];
    for (size_t i = 0; i < in->n; i++) {
        if (x[i] > prev)
            obv += v[i];
        else if (x[i] < prev)
            obv -= v[i];
        outs[0][i] = obv;
        prev = x[i];
    }
    return SF_OK;
}

/* ---- parabolic SAR ----------------------------------------------------------- */

typedef struct sar_state {
    int is_long;
    double sar, ep, af, accel, max_accel;
    double new_high, new_low;
} sar_state;

/* Clamp the SAR out of yesterday's and today's range (below the lows when
 * long, above the highs when short). */
static void sar_clamp(sar_state *s, double prev_high, double prev_low)
{
    if (s->is_long) {
        if (s->sar > prev_low)
            s->sar = prev_low;
        if (s->sar > s->new_low)
            s->sar = s->new_low;
    } else {
        if (s->sar < prev_high)
            s->sar = prev_high;
        if (s->sar < s->new_high)
            s->sar = s->new_high;
    }
}

/* One bar of TA-Lib's SAR; returns the value output for that bar. */
static double sar_bar(sar_state *s, double high, double low)
{
    double prev_high = s->new_high, prev_low = s->new_low;
    s->new_high = high;
    s->new_low = low;
    int hit = s->is_long ? low <= s->sar : high >= s->sar;
    if (hit) {
        s->is_long = !s->is_long;
        s->sar = s->ep;
        sar_clamp(s, prev_high, prev_low);
        double out = s->sar;
        s->af = s->accel;
        s->ep = s->is_long ? high : low;
        s->sar = s->sar + s->af * (s->ep - s->sar);
        sar_clamp(s, prev_high, prev_low);
        return out;
    }
    double out = s->sar;
    if (s->is_long ? high > s->ep : low < s->ep) {
        s->ep = s->is_long ? high : low;
        s->af += s->accel;
        if (s->af > s->max_accel)
            s->af = s->max_accel;
    }
    s->sar = s->sar + s->af * (s->ep - s->sar);
    sar_clamp(s, prev_high, prev_low);
    return out;
}

/* The first direction is short when bar 1 has a -DM (TA-Lib's MINUS_DM of
 * period 1), else long; the first SAR is bar 0's low (long) or high. */
static sf_status ind_psar(const ind_in *in, double *const *outs, sf_err *err)
{
    (void)err;
    const sf_bars *b = in->b;
    if (in->n < 2)
        return SF_OK;
    sar_state s;
    s.max_accel = in->param[SF_IP_MAX_ACCEL];
    s.accel = in->param[SF_IP_ACCEL];
    if (s.accel > s.max_accel)
        s.accel = s.max_accel;
    s.af = s.accel;
    double up = b->high[1] - b->high[0], down = b->low[0] - b->low[1];
    s.is_long = !(down > 0 && up < down);
    s.ep = s.is_long ? b->high[1] : b->low[1];
    s.sar = s.is_long ? b->low[0] : b->high[0];
    s.new_high = b->high[1];
    s.new_low = b->low[1];
    for (size_t i = 1; i < in->n; i++)
        outs[0][i] = sar_bar(&s, b->high[i], b->low[i]);
    return SF_OK;
}

/* ---- lookbacks and dispatch ------------------------------------------------- */

static size_t lb_period_minus1(const double *p)
{
    return ip(p, SF_IP_PERIOD) - 1;
}
static size_t lb_period(const double *p)
{
    return ip(p, SF_IP_PERIOD);
}
static size_t lb_zero(const double *p)
{
    (void)p;
    return 0;
}
static size_t lb_one(const double *p)
{
    (void)p;
    return 1;
}
static size_t lb_adx(const double *p)
{
    return 2 * ip(p, SF_IP_PERIOD) - 1;
}
static size_t lb_dema(const double *p)
{
    return 2 * (ip(p, SF_IP_PERIOD) - 1);
}
static size_t lb_tema(const double *p)
{
    return 3 * (ip(p, SF_IP_PERIOD) - 1);
}

static size_t lb_macd(const double *p)
{
    size_t fast = ip(p, SF_IP_FAST), slow = ip(p, SF_IP_SLOW);
    return (slow > fast ? slow : fast) - 1 + ip(p, SF_IP_SIGNAL) - 1;
}

static size_t lb_stoch(const double *p)
{
    return ip(p, SF_IP_K) - 1 + ip(p, SF_IP_K_SMOOTH) - 1 + ip(p, SF_IP_D) - 1;
}

typedef sf_status (*ind_fn)(const ind_in *in, double *const *outs, sf_err *err);

static const struct {
    size_t (*lookback)(const double *param);
    ind_fn compute;
} impl_table[SF_IND__COUNT] = {
    [SF_IND_SMA] = {lb_period_minus1, ind_sma},
    [SF_IND_EMA] = {lb_period_minus1, ind_ema},
    [SF_IND_WMA] = {lb_period_minus1, ind_wma},
    [SF_IND_RSI] = {lb_period, ind_rsi},
    [SF_IND_MACD] = {lb_macd, ind_macd},
    [SF_IND_BBANDS] = {lb_period_minus1, ind_bbands},
    [SF_IND_ATR] = {lb_period, ind_atr},
    [SF_IND_ADX] = {lb_adx, ind_adx},
    [SF_IND_CCI] = {lb_period_minus1, ind_cci},
    [SF_IND_STOCH] = {lb_stoch, ind_stoch},
    [SF_IND_ROC] = {lb_period, ind_roc},
    [SF_IND_HIGHEST] = {lb_period_minus1, ind_highest},
    [SF_IND_LOWEST] = {lb_period_minus1, ind_lowest},
    [SF_IND_OBV] = {lb_zero, ind_obv},
    [SF_IND_DEMA] = {lb_dema, ind_dema},
    [SF_IND_TEMA] = {lb_tema, ind_tema},
    [SF_IND_WILLR] = {lb_period_minus1, ind_willr},
    [SF_IND_MFI] = {lb_period, ind_mfi},
    [SF_IND_PSAR] = {lb_one, ind_psar},
};

size_t sf_ind_lookback(const sf_ind_spec *spec)
{
    if (spec == NULL || sf_ind_spec_validate(spec, NULL, NULL) != SF_OK)
        return SIZE_MAX;
    return impl_table[spec->type].lookback(spec->param);
}

/* Every type's scratch is at most two words per unit of its largest whole
 * parameter (deque indices, rings); cci above CCI_EXACT_MAX holds its
 * order-statistic tree over every bar instead (cci_long). */
size_t sf_ind_scratch_bytes(const sf_ind_spec *spec, size_t n)
{
    if (spec == NULL || sf_ind_spec_validate(spec, NULL, NULL) != SF_OK)
        return 0;
    const sf_ind_info *info = &info_table[spec->type];
    size_t most = 1;
    for (int k = 0; k < info->n_params; k++)
        if (info->params[k].is_int && ip(spec->param, info->params[k].id) > most)
            most = ip(spec->param, info->params[k].id);
    if (spec->type == SF_IND_CCI && most > CCI_EXACT_MAX)
        return n > SIZE_MAX / CCI_TREE_BYTES ? SIZE_MAX : (n + 1) * CCI_TREE_BYTES + 64;
    return (most + 1) * 2 * sizeof(double) + 64;
}

static const double *field_column(const sf_bars *b, sf_field f)
{
    const double *cols[SF_FIELD__COUNT] = {b->open, b->high, b->low, b->close, b->volume};
    return cols[f];
}

sf_status sf_ind_stop_check(const sf_ind_stop *stop, sf_err *err)
{
    if (stop == NULL)
        return SF_OK;
    if (stop->cancel != NULL && atomic_load_explicit(stop->cancel, memory_order_relaxed) != 0)
        return sf_err_set(err, SF_ERR_CANCELLED, "cancelled");
    if (stop->deadline_ms > 0 && sf_time_mono_ms() >= stop->deadline_ms)
        return sf_err_set(err, SF_ERR_TIMEOUT, "deadline passed");
    return SF_OK;
}

sf_status sf_ind_compute(const sf_ind_spec *spec, const sf_bars *bars, double *const *outs, sf_err *err)
{
    return sf_ind_compute_stop(spec, bars, outs, NULL, err);
}

sf_status sf_ind_compute_stop(const sf_ind_spec *spec, const sf_bars *bars, double *const *outs,
                              const sf_ind_stop *stop, sf_err *err)
{
    if (spec == NULL || bars == NULL || outs == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "could not compute indicator: missing argument");
    sf_status st = sf_ind_spec_validate(spec, NULL, err);
    if (st != SF_OK)
        return st;
    const sf_ind_info *info = &info_table[spec->type];
    for (int o = 0; o < info->n_outputs; o++)
        if (outs[o] == NULL)
            return sf_err_set(err, SF_ERR_INVALID, "could not compute %s: output %s has no array", info->name,
                              info->outputs[o]);
    ind_in in = {bars, field_column(bars, info->has_source ? spec->source : SF_FIELD_CLOSE), spec->param, bars->n,
                 stop};
    st = sf_ind_stop_check(stop, err);
    if (st == SF_OK)
        st = impl_table[spec->type].compute(&in, outs, err);
    if (st != SF_OK)
        return st;
    size_t lb = impl_table[spec->type].lookback(spec->param);
    size_t upto = lb < bars->n ? lb : bars->n;
    for (int o = 0; o < info->n_outputs; o++)
        for (size_t i = 0; i < upto; i++)
            outs[o][i] = NAN;
    return SF_OK;
}
