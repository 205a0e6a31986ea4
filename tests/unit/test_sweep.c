/* Tests for the sweep runner: members equal single runs, ranking, thread-count
 * independence (bit for bit), the shared indicator cache, validation errors,
 * cancellation and progress. Data: tests/data/engine/. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/engine.h"
#include "sf/grid.h"
#include "sf/logic.h"
#include "sf/rank.h"
#include "sf/sweep.h"

#define DATA SF_SOURCE_DIR "/tests/data/engine/"

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

typedef struct fixture {
    sf_bars *bars;
    char *logic;
    size_t logic_len;
    sf_grid *grid;
} fixture;

static void fixture_load(fixture *fx, const char *grid_file)
{
    sf_err err;
    cr_assert_eq(sf_bars_load_csv_file(DATA "bars.csv", SF_BARS_MAX_DEFAULT, &fx->bars, &err), SF_OK, "%s", err.msg);
    fx->logic = slurp(DATA "sma_cross.json", &fx->logic_len);
    size_t glen;
    char *g = slurp(grid_file, &glen);
    cr_assert_eq(sf_grid_parse(g, glen, 0, &fx->grid, &err), SF_OK, "%s", err.msg);
    free(g);
}

static void fixture_free(fixture *fx)
{
    sf_grid_free(fx->grid);
    free(fx->logic);
    sf_bars_free(fx->bars);
}

static sf_sweep_result *sweep(const fixture *fx, sf_sweep_opts *o)
{
    sf_sweep_result *r = NULL;
    sf_err err;
    sf_status st = sf_sweep_run(fx->grid, fx->logic, fx->logic_len, fx->bars, o, &r, NULL, &err);
    cr_assert_eq(st, SF_OK, "sweep failed: %s", err.msg);
    return r;
}

/* The metrics of one member computed with a single run of a logic edited by
 * hand (fast and slow periods substituted into the text). */
static sf_perf single_run(const fixture *fx, int fast, int slow)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"x\", \"indicators\": {"
             "\"fast\": {\"type\": \"sma\", \"source\": \"close\", \"period\": %d},"
             "\"slow\": {\"type\": \"sma\", \"source\": \"close\", \"period\": %d}},"
             "\"entry\": {\"crosses_above\": [\"fast\", \"slow\"]},"
             "\"exit\": {\"crosses_below\": [\"fast\", \"slow\"]},"
             "\"risk\": {\"stop_loss_pct\": 5, \"take_profit_pct\": 10},"
             "\"execution\": {\"fill\": \"next_open\", \"fee_bps\": 10}}",
             fast, slow);
    sf_logic *lg = NULL;
    cr_assert_eq(sf_logic_parse(json, strlen(json), &lg, NULL, NULL), SF_OK);
    sf_result *r = NULL;
    cr_assert_eq(sf_engine_run(lg, fx->bars, NULL, &r, NULL), SF_OK);
    sf_perf p = r->perf;
    sf_result_free(r);
    sf_logic_free(lg);
    return p;
}

Test(sweep, every_member_equals_a_single_run_of_its_logic)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = 2;
    sf_sweep_result *r = sweep(&fx, &o);
    cr_assert_eq(r->n_combos, 50);
    cr_assert_eq(r->n_members, 50);
    for (size_t m = 0; m < r->n_members; m++) {
        size_t idx = r->members[m].index;
        int fast = 3 + (int)(idx / 5), slow = 15 + 5 * (int)(idx % 5); /* last path fastest */
        char want[128];
        snprintf(want, sizeof want, "\"indicators.fast.period\": %d", fast);
        cr_assert(strstr(r->members[m].params_json, want) != NULL, "%s lacks %s", r->members[m].params_json, want);
        sf_perf p = single_run(&fx, fast, slow);
        cr_assert_eq(memcmp(&p, &r->members[m].perf, sizeof p), 0,
                     "member %zu (fast %d, slow %d) differs from its single run", idx, fast, slow);
    }
    sf_sweep_result_free(r);
    fixture_free(&fx);
}

Test(sweep, results_are_bit_identical_with_1_and_8_threads)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = 1;
    sf_sweep_result *a = sweep(&fx, &o);
    o.threads = 8;
    sf_sweep_result *b = sweep(&fx, &o);
    cr_assert_eq(a->n_members, b->n_members);
    for (size_t m = 0; m < a->n_members; m++) {
        cr_assert_eq(a->members[m].index, b->members[m].index, "rank %zu", m + 1);
        cr_assert_eq(memcmp(&a->members[m].perf, &b->members[m].perf, sizeof(sf_perf)), 0);
        cr_assert_str_eq(a->members[m].params_json, b->members[m].params_json);
    }
    sf_sweep_result_free(a);
    sf_sweep_result_free(b);
    fixture_free(&fx);
}

/* The order of sf/rank.h for every rankable metric: better first (fees and
 * max_drawdown lowest first), non-finite values (an infinite profit factor
 * too: null on the farm) after every number, ties by index. */
Test(sweep, ranking_puts_the_best_first_non_finite_last_and_ties_by_index)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    for (size_t q = 0; q < sf_rank_count(); q++) {
        const sf_rank_metric *metric = sf_rank_at(q);
        sf_sweep_opts o;
        sf_sweep_opts_init(&o);
        o.threads = 2;
        o.rank_by = metric->name;
        sf_sweep_result *r = sweep(&fx, &o);
        cr_assert_str_eq(r->rank_by, metric->name);
        cr_assert_eq(r->n_members, r->n_combos);
        for (size_t m = 0; m + 1 < r->n_members; m++) {
            double x = metric->get(&r->members[m].perf), y = metric->get(&r->members[m + 1].perf);
            cr_assert_eq(r->members[m].rank, m + 1);
            if (!isfinite(x)) {
                cr_assert(!isfinite(y), "%s: a number after %g at rank %zu", metric->name, x, m + 2);
                cr_assert_lt(r->members[m].index, r->members[m + 1].index, "non-finite by index");
                continue;
            }
            if (!isfinite(y))
                continue;
            cr_assert(metric->dir * x >= metric->dir * y, "%s: rank %zu (%g) worse than rank %zu (%g)", metric->name,
                      m + 1, x, m + 2, y);
            if (x == y)
                cr_assert_lt(r->members[m].index, r->members[m + 1].index, "tie by index");
        }
        sf_sweep_result_free(r);
    }
    fixture_free(&fx);
}

Test(sweep, top_k_keeps_the_best_k_and_the_cache_computes_each_spec_once)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = 3;
    sf_sweep_result *all = sweep(&fx, &o);
    /* 10 fast periods (3..12) and 5 slow (15..35): 15 distinct sma specs */
    cr_assert_eq(all->cache.computed, 15, "computed %llu", (unsigned long long)all->cache.computed);
    cr_assert_eq(all->cache.hits, 2 * 50 - 15);
    o.top_k = 5;
    sf_sweep_result *top = sweep(&fx, &o);
    cr_assert_eq(top->n_members, 5);
    cr_assert_eq(top->n_combos, 50);
    for (size_t m = 0; m < 5; m++)
        cr_assert_eq(top->members[m].index, all->members[m].index);
    sf_sweep_result_free(all);
    sf_sweep_result_free(top);
    fixture_free(&fx);
}

Test(sweep, an_invalid_combination_is_rejected_before_anything_runs)
{
    fixture fx;
    fixture_load(&fx, DATA "grid_bad.json");
    sf_sweep_result *r = NULL;
    sf_err err;
    sf_logic_errors errs;
    sf_status st = sf_sweep_run(fx.grid, fx.logic, fx.logic_len, fx.bars, NULL, &r, &errs, &err);
    cr_assert_eq(st, SF_ERR_INVALID);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "combination 1") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "indicators.fast.period") != NULL, "%s", err.msg);
    fixture_free(&fx);
}

Test(sweep, bad_options_are_invalid)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.rank_by = "luck";
    sf_sweep_result *r = NULL;
    sf_err err;
    cr_assert_eq(sf_sweep_run(fx.grid, fx.logic, fx.logic_len, fx.bars, &o, &r, NULL, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "luck") != NULL, "%s", err.msg);
    o.rank_by = NULL;
    o.threads = SF_SWEEP_MAX_THREADS + 1;
    cr_assert_eq(sf_sweep_run(fx.grid, fx.logic, fx.logic_len, fx.bars, &o, &r, NULL, &err), SF_ERR_INVALID);
    fixture_free(&fx);
}

typedef struct prog {
    atomic_int flag;
    atomic_int started;
    atomic_ullong max_done;
    atomic_ullong calls;
    atomic_ullong total; /* written by every sweep thread: atomic (a plain field raced, ThreadSanitizer) */
    int block;
} prog;

static void on_progress(void *user, uint64_t done, uint64_t total)
{
    prog *p = user;
    unsigned long long cur = atomic_load(&p->max_done);
    while (done > cur && !atomic_compare_exchange_weak(&p->max_done, &cur, done))
        ;
    atomic_fetch_add(&p->calls, 1);
    atomic_store(&p->total, total);
    atomic_store(&p->started, 1);
    while (p->block && atomic_load(&p->flag) == 0)
        sched_yield();
}

static void *canceller(void *arg)
{
    prog *p = arg;
    while (atomic_load(&p->started) == 0)
        sched_yield();
    atomic_store(&p->flag, 1);
    return NULL;
}

Test(sweep, cancel_from_another_thread_returns_cancelled)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    prog p = {.block = 1};
    atomic_init(&p.flag, 0);
    atomic_init(&p.started, 0);
    atomic_init(&p.max_done, 0);
    atomic_init(&p.calls, 0);
    atomic_init(&p.total, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, canceller, &p), 0);
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = 1;
    o.cancel = &p.flag;
    o.progress = on_progress;
    o.progress_user = &p;
    sf_sweep_result *r = NULL;
    sf_err err;
    sf_status st = sf_sweep_run(fx.grid, fx.logic, fx.logic_len, fx.bars, &o, &r, NULL, &err);
    pthread_join(th, NULL);
    cr_assert_eq(st, SF_ERR_CANCELLED, "%s: %s", sf_status_name(st), err.msg);
    cr_assert_null(r);
    cr_assert_eq(atomic_load(&p.calls), 1);
    fixture_free(&fx);
}

Test(sweep, progress_counts_every_member)
{
    fixture fx;
    fixture_load(&fx, DATA "grid.json");
    prog p = {.block = 0};
    atomic_init(&p.flag, 0);
    atomic_init(&p.started, 0);
    atomic_init(&p.max_done, 0);
    atomic_init(&p.calls, 0);
    atomic_init(&p.total, 0);
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = 4;
    o.progress = on_progress;
    o.progress_user = &p;
    sf_sweep_result *r = sweep(&fx, &o);
    cr_assert_eq(atomic_load(&p.calls), 50);
    cr_assert_eq(atomic_load(&p.max_done), 50);
    cr_assert_eq(atomic_load(&p.total), 50);
    sf_sweep_result_free(r);
    fixture_free(&fx);
}
