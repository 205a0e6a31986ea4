/* Tests for the indicator cache (sf/indcache.h): outputs bit for bit those
 * of sf_ind_compute, which specs share an entry, hits and misses, least
 * recently used eviction under the byte bound, pins, private computations
 * that do not fit, failures that leave nothing behind, and threads sharing
 * one cache (one computation per spec; under eviction every reader still
 * sees the right values). Bars: a deterministic random walk. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf/engine.h"
#include "sf/indcache.h"
#include "sf/indicator.h"
#include "sf/logic.h"

#define N 1000
#define ONE ((size_t)N * sizeof(double)) /* bytes of one output */

static sf_bars *walk(size_t n, uint64_t seed)
{
    sf_bars *b = NULL;
    cr_assert_eq(sf_bars_new(n, &b, NULL), SF_OK);
    double p = 100;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(seed >> 11) / 9007199254740992.0 - 0.5;
        double o = p;
        p *= 1 + u * 0.04;
        b->ts[i] = 1704067200 + (int64_t)i * 86400;
        b->open[i] = o;
        b->close[i] = p;
        b->high[i] = fmax(o, p) * 1.01;
        b->low[i] = fmin(o, p) * 0.99;
        b->volume[i] = 1000 + (double)(seed >> 54);
    }
    return b;
}

static sf_ind_spec spec_of(sf_ind_type type, double period)
{
    sf_ind_spec s;
    sf_ind_spec_default(type, &s);
    if (!isnan(period))
        s.param[SF_IP_PERIOD] = period;
    return s;
}

static sf_indcache *new_cache(const sf_bars *b, size_t max_bytes)
{
    sf_indcache *c = NULL;
    sf_err err;
    cr_assert_eq(sf_indcache_new(b, max_bytes, &c, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_indcache_bars(c), b);
    return c;
}

static sf_indref *acquire(sf_indcache *c, sf_ind_spec s)
{
    sf_indref *r = NULL;
    sf_err err;
    cr_assert_eq(sf_indcache_acquire(c, &s, &r, &err), SF_OK, "%s", err.msg);
    cr_assert_not_null(r);
    return r;
}

static sf_indcache_stats stats(sf_indcache *c)
{
    sf_indcache_stats st;
    sf_indcache_get_stats(c, &st);
    return st;
}

/* The ref's outputs equal a direct sf_ind_compute, byte for byte (NaN too). */
static void assert_same_as_compute(const sf_indref *r, sf_ind_spec s, const sf_bars *b)
{
    const sf_ind_info *info = sf_ind_info_get(s.type);
    double *want[SF_IND_MAX_OUTPUTS] = {0};
    for (int k = 0; k < info->n_outputs; k++)
        want[k] = malloc(b->n * sizeof(double));
    cr_assert_eq(sf_ind_compute(&s, b, want, NULL), SF_OK);
    for (int k = 0; k < info->n_outputs; k++) {
        const double *got = sf_indref_output(r, k);
        cr_assert_not_null(got, "%s output %d", info->name, k);
        cr_assert_eq(memcmp(got, want[k], b->n * sizeof(double)), 0, "%s output %d differs", info->name, k);
        free(want[k]);
    }
    cr_assert_null(sf_indref_output(r, info->n_outputs), "past the last output");
}

Test(indcache, outputs_are_those_of_sf_ind_compute_bit_for_bit)
{
    sf_bars *b = walk(N, 1);
    sf_indcache *c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    const sf_ind_type types[] = {SF_IND_SMA, SF_IND_MACD, SF_IND_BBANDS, SF_IND_STOCH, SF_IND_PSAR};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        sf_ind_spec s = spec_of(types[t], NAN);
        if (types[t] == SF_IND_SMA)
            s.param[SF_IP_PERIOD] = 20;
        sf_indref *r = acquire(c, s);
        assert_same_as_compute(r, s, b);
        cr_assert_null(sf_indref_output(r, -1));
        sf_indcache_release(c, r);
    }
    cr_assert_null(sf_indref_output(NULL, 0));
    sf_indcache_release(c, NULL); /* accepted */
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed, 5);
    cr_assert_eq(st.hits, 0);
    cr_assert_eq(st.bytes, (1 + 3 + 3 + 2 + 1) * ONE, "every output of every spec is held");
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, equal_specs_share_one_entry_and_different_ones_do_not)
{
    sf_bars *b = walk(N, 2);
    sf_indcache *c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    sf_ind_spec sma = spec_of(SF_IND_SMA, 10);
    sf_indref *r0 = acquire(c, sma);

    sf_ind_spec noise = sma; /* a parameter sma does not take */
    noise.param[SF_IP_STDDEV] = 7;
    sf_indref *r1 = acquire(c, noise);
    cr_assert_eq(sf_indref_output(r1, 0), sf_indref_output(r0, 0), "unused parameters ignored");

    sf_ind_spec atr = spec_of(SF_IND_ATR, 14), atr2 = atr; /* atr takes no source */
    atr.source = SF_FIELD_OPEN;
    atr2.source = SF_FIELD_VOLUME;
    sf_indref *r2 = acquire(c, atr), *r3 = acquire(c, atr2);
    cr_assert_eq(sf_indref_output(r3, 0), sf_indref_output(r2, 0), "a source it does not take");

    sf_ind_spec psar = spec_of(SF_IND_PSAR, NAN), psar2 = psar; /* the sign of a zero */
    psar.param[SF_IP_ACCEL] = 0.0;
    psar2.param[SF_IP_ACCEL] = -0.0;
    sf_indref *r4 = acquire(c, psar), *r5 = acquire(c, psar2);
    cr_assert_eq(sf_indref_output(r5, 0), sf_indref_output(r4, 0), "-0.0 is 0.0");

    sf_ind_spec on_open = sma; /* sma takes a source: another entry */
    on_open.source = SF_FIELD_OPEN;
    sf_indref *r6 = acquire(c, on_open);
    cr_assert_neq(sf_indref_output(r6, 0), sf_indref_output(r0, 0));
    assert_same_as_compute(r6, on_open, b);
    sf_indref *r7 = acquire(c, spec_of(SF_IND_SMA, 11)); /* another period */
    cr_assert_neq(sf_indref_output(r7, 0), sf_indref_output(r0, 0));

    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed, 5, "sma(10), atr, psar, sma(10) of open, sma(11)");
    cr_assert_eq(st.hits, 3);
    sf_indref *all[] = {r0, r1, r2, r3, r4, r5, r6, r7};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        sf_indcache_release(c, all[k]);
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, eviction_drops_the_least_recently_used_unpinned_entry)
{
    sf_bars *b = walk(N, 3);
    sf_indcache *c = new_cache(b, 2 * ONE);
    sf_ind_spec a = spec_of(SF_IND_SMA, 5), bb = spec_of(SF_IND_SMA, 6), cc = spec_of(SF_IND_SMA, 7);
    sf_indcache_release(c, acquire(c, a));
    sf_indcache_release(c, acquire(c, bb));
    sf_indcache_release(c, acquire(c, a)); /* a is now more recent than b */
    sf_indref *rc = acquire(c, cc);        /* evicts b */
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.evicted, 1);
    cr_assert_eq(st.bytes, 2 * ONE, "held bytes stay within the bound");
    sf_indcache_release(c, acquire(c, a)); /* still there */
    cr_assert_eq(stats(c).hits, 2);
    cr_assert_eq(stats(c).computed, 3);
    sf_indref *rb = acquire(c, bb); /* b again: recomputed, evicting a, not the pinned c */
    st = stats(c);
    cr_assert_eq(st.computed, 4);
    cr_assert_eq(st.evicted, 2);
    assert_same_as_compute(rb, bb, b);
    assert_same_as_compute(rc, cc, b);
    sf_indcache_release(c, rb);
    sf_indcache_release(c, rc);
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, pinned_entries_stay_and_what_does_not_fit_is_computed_privately)
{
    sf_bars *b = walk(N, 4);
    sf_indcache *c = new_cache(b, ONE);
    sf_ind_spec a = spec_of(SF_IND_EMA, 9), m = spec_of(SF_IND_MACD, NAN);
    sf_indref *ra = acquire(c, a);
    sf_indref *rm = acquire(c, m); /* 3 outputs never fit; a is pinned anyway */
    sf_ind_spec a2 = spec_of(SF_IND_EMA, 10);
    sf_indref *ra2 = acquire(c, a2); /* fits only by evicting the pinned a */
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed, 1);
    cr_assert_eq(st.uncached, 2);
    cr_assert_eq(st.evicted, 0);
    cr_assert_eq(st.bytes, ONE);
    assert_same_as_compute(rm, m, b);
    assert_same_as_compute(ra2, a2, b);
    sf_indcache_release(c, rm); /* private: freed here (ASan checks) */
    sf_indcache_release(c, ra2);
    sf_indcache_release(c, acquire(c, a)); /* a was never evicted */
    cr_assert_eq(stats(c).hits, 1);
    sf_indcache_release(c, ra);
    sf_indref *again = acquire(c, a2); /* now a is unpinned: a2 takes its place */
    st = stats(c);
    cr_assert_eq(st.computed, 2);
    cr_assert_eq(st.evicted, 1);
    cr_assert_eq(st.bytes, ONE);
    sf_indcache_release(c, again);
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, a_zero_bound_caches_nothing_and_still_serves)
{
    sf_bars *b = walk(N, 5);
    sf_indcache *c = new_cache(b, 0);
    sf_ind_spec s = spec_of(SF_IND_RSI, 14);
    for (int k = 0; k < 3; k++) {
        sf_indref *r = acquire(c, s);
        assert_same_as_compute(r, s, b);
        sf_indcache_release(c, r);
    }
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.uncached, 3);
    cr_assert_eq(st.computed + st.hits + st.evicted + st.bytes, 0);
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, failures_leave_nothing_behind)
{
    sf_indcache *c = (sf_indcache *)1;
    sf_err err;
    cr_assert_eq(sf_indcache_new(NULL, ONE, &c, &err), SF_ERR_INVALID);
    cr_assert_null(c);
    cr_assert_str_eq(err.msg, "indicator cache: no bars");
    sf_indcache_free(NULL); /* accepted */

    sf_bars *b = walk(N, 6);
    c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    sf_ind_spec bad = spec_of(SF_IND_SMA, 10);
    bad.type = SF_IND__COUNT;
    sf_indref *r = (sf_indref *)1;
    cr_assert_eq(sf_indcache_acquire(c, &bad, &r, &err), SF_ERR_INVALID);
    cr_assert_null(r);
    cr_assert_str_eq(err.msg, "indicator: unknown type 19");
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed + st.hits + st.uncached + st.bytes, 0);

    /* a valid type whose computation fails (period 0) is not kept: the next
     * acquire computes again */
    sf_ind_spec zero = spec_of(SF_IND_SMA, 0);
    for (int k = 1; k <= 2; k++) {
        r = (sf_indref *)1;
        cr_assert_eq(sf_indcache_acquire(c, &zero, &r, &err), SF_ERR_INVALID);
        cr_assert_null(r);
        st = stats(c);
        cr_assert_eq(st.computed, (uint64_t)k);
        cr_assert_eq(st.bytes, 0);
        cr_assert_eq(st.hits, 0);
    }
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, a_run_refuses_a_cache_over_other_bars)
{
    sf_bars *b = walk(N, 7), *other = walk(N, 7); /* equal values, other series */
    sf_indcache *c = new_cache(other, SF_INDCACHE_MAX_DEFAULT);
    const char *json = "{\"name\": \"t\", \"indicators\": {\"s\": {\"type\": \"sma\", \"period\": 3}},"
                       " \"entry\": {\"gt\": [\"close\", \"s\"]}}";
    sf_logic *lg = NULL;
    sf_err err;
    cr_assert_eq(sf_logic_parse(json, strlen(json), &lg, NULL, &err), SF_OK, "%s", err.msg);
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.cache = c;
    sf_result *res = NULL;
    cr_assert_eq(sf_engine_run(lg, b, &o, &res, &err), SF_ERR_INVALID);
    cr_assert_null(res);
    cr_assert_str_eq(err.msg, "backtest: the indicator cache belongs to other bars");
    cr_assert_eq(stats(c).computed, 0);
    cr_assert_eq(sf_engine_run(lg, other, &o, &res, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(stats(c).computed, 1);
    sf_result_free(res);
    sf_logic_free(lg);
    sf_indcache_free(c);
    sf_bars_free(other);
    sf_bars_free(b);
}

/* ---- threads ---- */

typedef struct acq_arg {
    sf_indcache *cache;
    sf_ind_spec spec;
    sf_status st;
    const double *out;
} acq_arg;

static void *acquire_once(void *p)
{
    acq_arg *a = p;
    sf_indref *ref = NULL;
    a->st = sf_indcache_acquire(a->cache, &a->spec, &ref, NULL);
    a->out = sf_indref_output(ref, 0);
    sf_indcache_release(a->cache, ref);
    return NULL;
}

static void run_threads(acq_arg *args, int n)
{
    pthread_t th[16];
    for (int k = 0; k < n; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, acquire_once, &args[k]), 0);
    for (int k = 0; k < n; k++)
        pthread_join(th[k], NULL);
}

Test(indcache, concurrent_requests_for_one_spec_compute_it_once)
{
    sf_bars *b = walk(200000, 8); /* long enough that the others arrive while it computes */
    sf_indcache *c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    acq_arg args[8];
    for (int k = 0; k < 8; k++)
        args[k] = (acq_arg){.cache = c, .spec = spec_of(SF_IND_RSI, 14)};
    run_threads(args, 8);
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed, 1);
    cr_assert_eq(st.hits, 7);
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(args[k].st, SF_OK);
        cr_assert_eq(args[k].out, args[0].out, "every thread sees the same buffer");
    }
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, concurrent_requests_for_a_failing_spec_each_fail_and_leave_nothing)
{
    sf_bars *b = walk(N, 9);
    sf_indcache *c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    acq_arg args[8];
    for (int k = 0; k < 8; k++)
        args[k] = (acq_arg){.cache = c, .spec = spec_of(SF_IND_SMA, 0)};
    run_threads(args, 8);
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed, 8, "a waiter whose computation failed computes for itself");
    cr_assert_eq(st.hits + st.bytes, 0);
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(args[k].st, SF_ERR_INVALID);
        cr_assert_null(args[k].out);
    }
    sf_indcache_free(c);
    sf_bars_free(b);
}

enum { N_SPECS = 5, N_ROUNDS = 300, N_THREADS = 4 };

typedef struct churn_arg {
    sf_indcache *cache;
    const sf_ind_spec *specs;
    double *const *want; /* want[s]: output 0 of specs[s] */
    size_t n;
    unsigned seed;
    int bad; /* reads that differed from want */
} churn_arg;

/* Acquire specs in a per-thread order under a bound of two entries, so
 * entries are evicted, recomputed and computed privately all the time. */
static void *churn(void *p)
{
    churn_arg *a = p;
    for (int round = 0; round < N_ROUNDS; round++) {
        a->seed = a->seed * 1103515245u + 12345u;
        int s = (int)((a->seed >> 16) % N_SPECS);
        sf_indref *r = NULL;
        if (sf_indcache_acquire(a->cache, &a->specs[s], &r, NULL) != SF_OK) {
            a->bad++;
            continue;
        }
        a->bad += memcmp(sf_indref_output(r, 0), a->want[s], a->n * sizeof(double)) != 0;
        sf_indcache_release(a->cache, r);
    }
    return NULL;
}

Test(indcache, threads_under_eviction_always_read_the_right_values)
{
    sf_bars *b = walk(N, 10);
    sf_indcache *c = new_cache(b, 2 * ONE);
    sf_ind_spec specs[N_SPECS];
    double *want[N_SPECS];
    for (int s = 0; s < N_SPECS; s++) {
        specs[s] = spec_of(SF_IND_EMA, 3 + s);
        want[s] = malloc(ONE);
        double *outs[SF_IND_MAX_OUTPUTS] = {want[s]};
        cr_assert_eq(sf_ind_compute(&specs[s], b, outs, NULL), SF_OK);
    }
    pthread_t th[N_THREADS];
    churn_arg args[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        args[k] = (churn_arg){.cache = c, .specs = specs, .want = want, .n = N, .seed = 17u * (unsigned)k + 1};
        cr_assert_eq(pthread_create(&th[k], NULL, churn, &args[k]), 0);
    }
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < N_THREADS; k++)
        cr_assert_eq(args[k].bad, 0, "thread %d read wrong values %d times", k, args[k].bad);
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.computed + st.hits + st.uncached, (uint64_t)N_THREADS * N_ROUNDS,
                 "every acquire is a computation, a hit or a private computation");
    cr_assert_leq(st.bytes, 2 * ONE);
    cr_assert_gt(st.evicted, 0);
    for (int s = 0; s < N_SPECS; s++)
        free(want[s]);
    sf_indcache_free(c);
    sf_bars_free(b);
}

Test(indcache, a_spec_bigger_than_the_whole_bound_evicts_nothing)
{
    sf_bars *b = walk(N, 4);
    sf_indcache *c = new_cache(b, 2 * ONE); /* room for two one-output indicators */
    sf_ind_spec a = spec_of(SF_IND_SMA, 5), bb = spec_of(SF_IND_SMA, 6);
    sf_indcache_release(c, acquire(c, a));
    sf_indcache_release(c, acquire(c, bb));
    sf_ind_spec big = spec_of(SF_IND_BBANDS, 20); /* three outputs: never fits */
    sf_indref *r = acquire(c, big);
    assert_same_as_compute(r, big, b);
    sf_indcache_release(c, r);
    sf_indcache_stats st = stats(c);
    cr_assert_eq(st.evicted, 0, "a spec that can never fit evicted %zu entries", (size_t)st.evicted);
    sf_indcache_release(c, acquire(c, a)); /* both still cached */
    sf_indcache_release(c, acquire(c, bb));
    cr_assert_eq(stats(c).hits, 2);
    sf_indcache_free(c);
    sf_bars_free(b);
}

/* A scratch series put back is the next one handed out (its pages stay
 * mapped); two at once are distinct; the cache frees those it keeps. */
Test(indcache, a_scratch_series_put_back_is_reused_and_two_at_once_differ)
{
    sf_bars *b = walk(N, 5);
    sf_indcache *c = new_cache(b, SF_INDCACHE_MAX_DEFAULT);
    double *s0 = sf_indcache_scratch_get(c), *s1 = sf_indcache_scratch_get(c);
    cr_assert(s0 != NULL && s1 != NULL && s0 != s1);
    s0[0] = s0[N - 1] = s1[N - 1] = 1.5; /* bars->n doubles each */
    sf_indcache_scratch_put(c, s0);
    cr_assert_eq(sf_indcache_scratch_get(c), s0);
    sf_indcache_scratch_put(c, s0);
    sf_indcache_scratch_put(c, s1);
    sf_indcache_scratch_put(c, NULL);
    sf_indcache_free(c);
    sf_bars_free(b);
}
