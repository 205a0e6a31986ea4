/* sweep: a grid of backtests on N threads, ranked; see sf/sweep.h.
 *
 * DESIGN
 * The grid is validated once up front, so a member that fails later is an
 * engine problem (out of memory, cancel) rather than bad input. Workers pull
 * combination indices from an atomic counter and write each member's sf_perf
 * into its own slot of one array (no lock on the hot path); only failures
 * take the mutex, and the failure with the lowest index is the one reported,
 * so the error does not depend on scheduling either. Ranking happens after
 * every thread is joined, on (key, index) pairs ordered by sf/rank.h (the
 * farm's leaderboard orders the same way).
 */
#include "sf/sweep.h"

#include "sf/rank.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAMS_JSON_MAX ((size_t)64 * 1024)

void sf_sweep_opts_init(sf_sweep_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->threads = 1;
    opts->blocks = SF_OVERFIT_BLOCKS_DEFAULT;
}

/* ---- the run ---- */

typedef struct sweep {
    const sf_grid *grid;
    const char *json;
    size_t len;
    const sf_bars *bars;
    const sf_sweep_opts *opts;
    sf_indcache *cache;
    size_t n;
    sf_perf *perfs;         /* one slot per combination, written by one thread */
    sf_overfit_set *blocks; /* the same; NULL without overfitting statistics */
    int n_blocks;           /* their S; 0 = none */
    atomic_size_t next;     /* next combination to take */
    atomic_size_t done;     /* combinations finished */
    atomic_int stop;        /* a member failed: take no more */
    pthread_mutex_t mu;     /* guards the fail_* fields */
    int mu_ready;
    size_t fail_index; /* SIZE_MAX while nothing failed */
    sf_err fail_err;
} sweep;

static sf_status run_member(sweep *s, size_t idx, sf_err *err)
{
    char *text = NULL;
    size_t tlen = 0;
    sf_status st = sf_grid_apply(s->grid, idx, s->json, s->len, &text, &tlen, err);
    if (st != SF_OK)
        return st;
    sf_logic *lg = NULL;
    st = sf_logic_parse(text, tlen, &lg, NULL, err);
    free(text);
    if (st != SF_OK)
        return st;
    sf_run_opts ro;
    sf_run_opts_init(&ro);
    ro.cancel = s->opts->cancel;
    ro.keep_equity = 0;
    ro.keep_trades = 0;
    ro.cache = s->cache;
    ro.blocks = s->n_blocks;
    sf_result *res = NULL;
    st = sf_engine_run(lg, s->bars, &ro, &res, err);
    if (st == SF_OK)
        s->perfs[idx] = res->perf;
    if (st == SF_OK && s->blocks)
        st = sf_overfit_set_put(s->blocks, idx, (int64_t)idx, &res->blocks, err);
    sf_result_free(res);
    sf_logic_free(lg);
    return st;
}

static void record_failure(sweep *s, size_t idx, const sf_err *e)
{
    pthread_mutex_lock(&s->mu);
    if (idx < s->fail_index) {
        s->fail_index = idx;
        s->fail_err = *e;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->stop, 1);
}

static int should_stop(const sweep *s)
{
    if (atomic_load_explicit(&s->stop, memory_order_relaxed))
        return 1;
    return s->opts->cancel != NULL && atomic_load_explicit(s->opts->cancel, memory_order_relaxed) != 0;
}

static void *worker(void *p)
{
    sweep *s = p;
    while (!should_stop(s)) {
        size_t idx = atomic_fetch_add(&s->next, 1);
        if (idx >= s->n)
            break;
        sf_err e;
        sf_err_clear(&e);
        if (run_member(s, idx, &e) != SF_OK) {
            record_failure(s, idx, &e);
            break;
        }
        size_t d = atomic_fetch_add(&s->done, 1) + 1;
        if (s->opts->progress != NULL)
            s->opts->progress(s->opts->progress_user, d, s->n);
    }
    return NULL;
}

static sf_status run_threads(sweep *s, int nthreads, sf_err *err)
{
    pthread_t th[SF_SWEEP_MAX_THREADS];
    int started = 0;
    for (; started < nthreads; started++) {
        if (pthread_create(&th[started], NULL, worker, s) != 0)
            break;
        char name[16];
        snprintf(name, sizeof name, "sf-sweep-%d", started % 1000);
        pthread_setname_np(th[started], name);
    }
    if (started < nthreads)
        atomic_store(&s->stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (started < nthreads)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not start sweep thread %d of %d", started + 1, nthreads);
    return SF_OK;
}

/* ---- ranking ---- */

typedef struct ranked {
    double key; /* sf_rank_key: larger is better, NaN last */
    size_t index;
} ranked;

static int ranked_cmp(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    return sf_rank_cmp(a->key, a->index, b->key, b->index);
}

static sf_status member_fill(const sweep *s, const ranked *rk, size_t rank, sf_sweep_member *m, sf_err *err)
{
    sf_buf b;
    sf_buf_init(&b, PARAMS_JSON_MAX);
    sf_status st = sf_grid_params_json(s->grid, rk->index, &b, err);
    if (st != SF_OK) {
        sf_buf_destroy(&b);
        return st;
    }
    size_t len;
    m->params_json = sf_buf_steal(&b, &len);
    if (m->params_json == NULL)
        m->params_json = strdup("{}");
    if (m->params_json == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate sweep parameters");
    m->rank = rank;
    m->index = rk->index;
    m->perf = s->perfs[rk->index];
    return SF_OK;
}

static sf_status rank_members(const sweep *s, const sf_rank_metric *metric, sf_sweep_result *res, sf_err *err)
{
    ranked *rk = malloc(s->n * sizeof *rk);
    if (rk == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate the ranking");
    for (size_t i = 0; i < s->n; i++) {
        rk[i].key = sf_rank_key(metric, &s->perfs[i]);
        rk[i].index = i;
    }
    qsort(rk, s->n, sizeof *rk, ranked_cmp);
    size_t k = s->opts->top_k == 0 || s->opts->top_k > s->n ? s->n : s->opts->top_k;
    res->members = calloc(k ? k : 1, sizeof *res->members);
    sf_status st = res->members ? SF_OK : sf_err_set(err, SF_ERR_NOMEM, "could not allocate sweep members");
    for (size_t i = 0; i < k && st == SF_OK; i++) {
        st = member_fill(s, &rk[i], i + 1, &res->members[i], err);
        res->n_members = i + (st == SF_OK);
    }
    free(rk);
    return st;
}

/* ---- entry point ---- */

static sf_status check_opts(const sf_sweep_opts *o, const sf_rank_metric **metric, sf_err *err)
{
    if (o->threads < 0 || o->threads > SF_SWEEP_MAX_THREADS)
        return sf_err_set(err, SF_ERR_INVALID, "threads: must be between 1 and %d", SF_SWEEP_MAX_THREADS);
    if (o->blocks > 0 && sf_overfit_blocks_check(o->blocks, err) != SF_OK)
        return SF_ERR_INVALID;
    if (!(o->effective_trials >= 0))
        return sf_err_set(err, SF_ERR_INVALID, "effective trials: must be 1 or more");
    *metric = sf_rank_find(o->rank_by ? o->rank_by : SF_RANK_DEFAULT);
    if (*metric == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "rank by \"%.40s\": unknown metric (one of %s)", o->rank_by,
                          SF_RANK_LIST);
    return SF_OK;
}

static sf_status sweep_setup(sweep *s, sf_err *err)
{
    s->n = sf_grid_size(s->grid);
    s->perfs = calloc(s->n ? s->n : 1, sizeof *s->perfs);
    if (s->perfs == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate %zu sweep results", s->n);
    s->n_blocks = s->opts->blocks == 0 ? SF_OVERFIT_BLOCKS_DEFAULT : s->opts->blocks > 0 ? s->opts->blocks : 0;
    if (s->n_blocks > 0) {
        sf_status st = sf_overfit_set_new(s->n_blocks, &s->blocks, err);
        if (st == SF_OK)
            st = sf_overfit_set_resize(s->blocks, s->n, err);
        if (st != SF_OK)
            return st;
    }
    atomic_init(&s->next, 0);
    atomic_init(&s->done, 0);
    atomic_init(&s->stop, 0);
    s->fail_index = SIZE_MAX;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not create sweep mutex");
    s->mu_ready = 1;
    if (s->opts->cache != NULL) {
        s->cache = s->opts->cache;
        return SF_OK;
    }
    size_t bytes = s->opts->cache_bytes ? s->opts->cache_bytes : SF_SWEEP_CACHE_DEFAULT;
    return sf_indcache_new(s->bars, bytes, &s->cache, err);
}

static sf_status sweep_execute(sweep *s, const sf_rank_metric *metric, sf_sweep_result **out, sf_err *err)
{
    int nthreads = s->opts->threads > 0 ? s->opts->threads : 1;
    if ((size_t)nthreads > s->n)
        nthreads = (int)s->n;
    sf_status st = run_threads(s, nthreads, err);
    if (st != SF_OK)
        return st;
    if (s->fail_index != SIZE_MAX) {
        if (err != NULL)
            *err = s->fail_err;
        if (s->fail_err.code != SF_ERR_CANCELLED)
            sf_err_prefix(err, "combination %zu", s->fail_index);
        return s->fail_err.code != SF_OK ? s->fail_err.code : SF_ERR_INTERNAL;
    }
    if (atomic_load(&s->done) < s->n)
        return sf_err_set(err, SF_ERR_CANCELLED, "sweep cancelled");
    sf_sweep_result *res = calloc(1, sizeof *res);
    if (res == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate sweep result");
    res->n_combos = s->n;
    snprintf(res->rank_by, sizeof res->rank_by, "%s", metric->name);
    sf_indcache_get_stats(s->cache, &res->cache);
    st = rank_members(s, metric, res, err);
    if (st == SF_OK && s->blocks) {
        sf_overfit_opts oo = {.effective_trials = s->opts->effective_trials};
        st = sf_overfit_compute(s->blocks, &oo, &res->overfit, err);
        res->has_overfit = st == SF_OK;
    }
    if (st != SF_OK) {
        sf_sweep_result_free(res);
        return st;
    }
    *out = res;
    return SF_OK;
}

sf_status sf_sweep_run(const sf_grid *grid, const char *logic_json, size_t len, const sf_bars *bars,
                       const sf_sweep_opts *opts, sf_sweep_result **out, sf_logic_errors *errs, sf_err *err)
{
    sf_sweep_opts defaults;
    sf_sweep_opts_init(&defaults);
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    const sf_rank_metric *metric = NULL;
    sf_status st = check_opts(opts, &metric, err);
    if (st != SF_OK)
        return st;
    if (grid == NULL || logic_json == NULL || bars == NULL || bars->n == 0)
        return sf_err_set(err, SF_ERR_INVALID, "sweep: no grid, logic or bars");
    st = sf_grid_validate(grid, logic_json, len, NULL, errs, err);
    if (st != SF_OK)
        return st;
    sweep s = {.grid = grid, .json = logic_json, .len = len, .bars = bars, .opts = opts};
    st = sweep_setup(&s, err);
    if (st == SF_OK)
        st = sweep_execute(&s, metric, out, err);
    if (s.cache != opts->cache)
        sf_indcache_free(s.cache);
    if (s.mu_ready)
        pthread_mutex_destroy(&s.mu);
    free(s.perfs);
    sf_overfit_set_free(s.blocks);
    return st;
}

void sf_sweep_result_free(sf_sweep_result *result)
{
    if (result == NULL)
        return;
    for (size_t i = 0; i < result->n_members; i++)
        free(result->members[i].params_json);
    free(result->members);
    free(result);
}
