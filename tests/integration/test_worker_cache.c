/*
 * Integration tests for the worker's data-set cache (worker/cache.c) against
 * a scratch database: single-flight loads when many runner threads miss the
 * same key at once, shared failures, versions, byte accounting.
 *
 * The tests link libsf only (CMakeLists.txt builds each test from its one
 * file), so the module under test is compiled in here; only its public API
 * (cache.h) is used, plus sizeof its entry for the byte accounting.
 *
 * To hold a load in flight deterministically a second connection takes an
 * ACCESS EXCLUSIVE lock on the datasets table: sf_dataset_load's first
 * statement reads it, so the loading thread blocks in PostgreSQL (visible in
 * pg_stat_activity as a Lock wait) until the test rolls the lock back.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../worker/cache.c"
#include "../support/testenv.h"
#include "sf/dataset.h"

#define CROWD_MAX 16

static char g_base_url[1024];
static char g_name[64];
static char g_url[1024];
static sf_db *g_db;

static void setup(void)
{
    g_db = sf_testenv_scratch_migrated(g_base_url, sizeof g_base_url, g_name, sizeof g_name, g_url, sizeof g_url);
}

static void teardown(void)
{
    sf_db_close(g_db);
    g_db = NULL;
    sf_testenv_scratch_drop(g_base_url, g_name);
}

TestSuite(worker_cache, .init = setup, .fini = teardown, .timeout = 180);

/* n daily bars; close of bar i is seed + i * 0.25. */
static void import(const char *symbol, size_t n, double seed)
{
    sf_bars *b = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_bars_new(n, &b, &err), SF_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        double p = seed + (double)i * 0.25;
        b->ts[i] = 86400 * (int64_t)(i + 1);
        b->open[i] = p;
        b->high[i] = p + 1.0;
        b->low[i] = p - 1.0;
        b->close[i] = p;
        b->volume[i] = 1000.0;
    }
    cr_assert_eq(sf_dataset_import(g_db, symbol, "1d", b, NULL, &err), SF_OK, "%s", err.msg);
    sf_bars_free(b);
}

static double close_sum(size_t n, double seed)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += seed + (double)i * 0.25;
    return sum;
}

/* One runner thread: its own connection, one get at the barrier, a full
 * read of the bars while holding the entry, one release. */
typedef struct getter {
    wrk_cache *c;
    sf_db *db;
    const char *symbol;
    int64_t version;
    pthread_barrier_t *start;
    pthread_barrier_t *hold; /* if set: every getter has its result before any reads or releases */
    sf_status st;
    sf_err err;
    wrk_cache_entry *entry; /* compared only: released before the thread ends */
    const sf_bars *bars;
    size_t n;
    double sum; /* of close */
} getter;

static void *getter_main(void *arg)
{
    getter *g = arg;
    pthread_barrier_wait(g->start);
    g->st = wrk_cache_get(g->c, g->db, g->symbol, "1d", g->version, &g->bars, &g->entry, &g->err);
    if (g->hold)
        pthread_barrier_wait(g->hold);
    if (g->st != SF_OK)
        return NULL;
    g->n = g->bars->n;
    for (size_t i = 0; i < g->n; i++)
        g->sum += g->bars->close[i];
    wrk_cache_release(g->c, g->entry);
    return NULL;
}

typedef struct crowd {
    size_t n;
    pthread_barrier_t start, hold;
    int holding;
    pthread_t th[CROWD_MAX];
    getter g[CROWD_MAX];
} crowd;

/* n threads; thread i asks for symbols[i % nsym] at version; holding: all
 * get before any reads or releases. */
static void crowd_start(crowd *cr, wrk_cache *c, size_t n, const char *const *symbols, size_t nsym, int64_t version,
                        int holding)
{
    cr->n = n;
    cr->holding = holding;
    pthread_barrier_init(&cr->start, NULL, (unsigned)n);
    if (holding)
        pthread_barrier_init(&cr->hold, NULL, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        cr->g[i] = (getter){.c = c,
                            .db = sf_testenv_db_open(g_url),
                            .symbol = symbols[i % nsym],
                            .version = version,
                            .start = &cr->start,
                            .hold = holding ? &cr->hold : NULL};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&cr->th[i], NULL, getter_main, &cr->g[i]), 0);
}

static void crowd_join(crowd *cr)
{
    for (size_t i = 0; i < cr->n; i++) {
        pthread_join(cr->th[i], NULL);
        sf_db_close(cr->g[i].db);
    }
    pthread_barrier_destroy(&cr->start);
    if (cr->holding)
        pthread_barrier_destroy(&cr->hold);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long lock_waiters(void)
{
    return sf_testenv_query_int(g_db, "SELECT count(*) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND wait_event_type = 'Lock'");
}

typedef struct in_flight {
    wrk_cache_stats stats;
    long long blocked; /* sessions waiting on a lock in postgresql */
} in_flight;

/* Wait (up to 20 s, less once more loads than `loads` started) until the
 * cache has started `loads` loads and `waits` threads wait for them and
 * PostgreSQL shows `loads` sessions blocked on the lock; then watch a while
 * longer for a further load. What was seen, for the test to assert once the
 * threads are joined (a failed assertion must not leave them blocked). */
static in_flight watch_in_flight(wrk_cache *c, uint64_t loads, uint64_t waits)
{
    in_flight f = {0};
    for (int i = 0; i < 2000; i++) {
        wrk_cache_get_stats(c, &f.stats);
        f.blocked = lock_waiters();
        int all_there = f.stats.loads == loads && f.stats.waits == waits && f.blocked == (long long)loads;
        if (all_there || f.stats.loads > loads)
            break;
        sleep_ms(10);
    }
    sleep_ms(300);
    wrk_cache_get_stats(c, &f.stats);
    f.blocked = lock_waiters();
    return f;
}

static void expect_in_flight(const in_flight *f, uint64_t loads, uint64_t waits)
{
    cr_assert_eq(f->stats.loads, loads, "%llu loads in flight, want %llu", (unsigned long long)f->stats.loads,
                 (unsigned long long)loads);
    cr_assert_eq(f->stats.waits, waits, "%llu threads waiting, want %llu", (unsigned long long)f->stats.waits,
                 (unsigned long long)waits);
    cr_assert_eq(f->blocked, (long long)loads, "%lld loads blocked in postgresql, want %llu", f->blocked,
                 (unsigned long long)loads);
}

static sf_db *lock_datasets(void)
{
    sf_db *locker = sf_testenv_db_open(g_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE");
    return locker;
}

static void unlock_datasets(sf_db *locker)
{
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);
}

static wrk_cache *cache_new(size_t max_bytes)
{
    wrk_cache *c = NULL;
    sf_err err = {0};
    cr_assert_eq(wrk_cache_new(max_bytes, &c, &err), SF_OK, "%s", err.msg);
    return c;
}

/* Every getter succeeded with the same entry and bars of n bars from seed. */
static void expect_all_shared(const crowd *cr, size_t n, double seed)
{
    double want = close_sum(n, seed);
    for (size_t i = 0; i < cr->n; i++) {
        const getter *g = &cr->g[i];
        cr_assert_eq(g->st, SF_OK, "thread %zu: %s", i, g->err.msg);
        cr_assert_eq(g->entry, cr->g[0].entry, "thread %zu got another entry", i);
        cr_assert_eq(g->bars, cr->g[0].bars, "thread %zu got other bars", i);
        cr_assert_eq(g->n, n, "thread %zu: %zu bars, want %zu", i, g->n, n);
        cr_assert_eq(g->sum, want, "thread %zu: close sum %.17g, want %.17g", i, g->sum, want);
    }
}

static size_t entry_bytes(size_t n)
{
    return sizeof(wrk_cache_entry) + n * (sizeof(int64_t) + 5 * sizeof(double));
}

Test(worker_cache, sixteen_threads_missing_the_same_key_at_once_make_one_load_and_share_it)
{
    const size_t n = 100000;
    import("BIG", n, 100.0);
    wrk_cache *c = cache_new((size_t)256 << 20);
    const char *sym[] = {"BIG"};
    sf_db *locker = lock_datasets();
    crowd cr;
    crowd_start(&cr, c, CROWD_MAX, sym, 1, 1, 0);
    in_flight seen = watch_in_flight(c, 1, CROWD_MAX - 1);
    unlock_datasets(locker);
    crowd_join(&cr);
    expect_in_flight(&seen, 1, CROWD_MAX - 1);

    expect_all_shared(&cr, n, 100.0);
    wrk_cache_stats s;
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.loads, 1);
    cr_assert_eq(s.misses, CROWD_MAX);
    cr_assert_eq(s.waits, CROWD_MAX - 1);
    cr_assert_eq(s.hits, 0);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.bytes, entry_bytes(n), "%zu bytes, want %zu", s.bytes, entry_bytes(n));
    cr_assert_eq(s.evictions, 0);

    /* The next get is a plain hit on the same entry. */
    const sf_bars *bars = NULL;
    wrk_cache_entry *e = NULL;
    sf_err err = {0};
    cr_assert_eq(wrk_cache_get(c, g_db, "BIG", "1d", 1, &bars, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(e, cr.g[0].entry);
    wrk_cache_release(c, e);
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.loads, 1);
    wrk_cache_free(c);
}

Test(worker_cache, a_barrier_start_without_a_held_lock_still_loads_once)
{
    /* The race as a fresh sweep sees it: nothing holds the load back. The
     * budget is one byte, so the entry must survive exactly until its last
     * sharer releases it; every thread holds it until all have it, then reads
     * it and releases (a missing reference would free the bars under a
     * reader: AddressSanitizer catches it). */
    const size_t n = 50000;
    import("RACE", n, 7.0);
    wrk_cache *c = cache_new(1);
    const char *sym[] = {"RACE"};
    crowd cr;
    crowd_start(&cr, c, CROWD_MAX, sym, 1, 1, 1);
    crowd_join(&cr);

    wrk_cache_stats s;
    wrk_cache_get_stats(c, &s);
    cr_log_info("race: %llu waits, %llu hits", (unsigned long long)s.waits, (unsigned long long)s.hits);
    cr_assert_eq(s.loads, 1, "%llu loads, want 1", (unsigned long long)s.loads);
    cr_assert_eq(s.waits + s.hits, CROWD_MAX - 1);
    expect_all_shared(&cr, n, 7.0);
    cr_assert_eq(s.entries, 0, "%zu entries left over budget", s.entries);
    cr_assert_eq(s.bytes, 0, "%zu bytes left over budget", s.bytes);
    cr_assert_eq(s.evictions, 1);
    wrk_cache_free(c);
}

Test(worker_cache, a_failed_load_gives_every_waiter_its_error_and_leaves_nothing)
{
    wrk_cache *c = cache_new((size_t)64 << 20);
    const char *sym[] = {"NOPE"};
    sf_db *locker = lock_datasets();
    crowd cr;
    crowd_start(&cr, c, CROWD_MAX, sym, 1, 1, 0);
    in_flight seen = watch_in_flight(c, 1, CROWD_MAX - 1);
    unlock_datasets(locker);
    crowd_join(&cr);
    expect_in_flight(&seen, 1, CROWD_MAX - 1);

    for (size_t i = 0; i < cr.n; i++) {
        cr_assert_eq(cr.g[i].st, SF_ERR_NOTFOUND, "thread %zu: %s (%s)", i, sf_status_name(cr.g[i].st),
                     cr.g[i].err.msg);
        cr_assert_eq(cr.g[i].err.code, SF_ERR_NOTFOUND);
        cr_assert_str_eq(cr.g[i].err.msg, "no data set NOPE 1d");
        cr_assert_null(cr.g[i].entry);
        cr_assert_null(cr.g[i].bars);
    }
    wrk_cache_stats s;
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.loads, 1);
    cr_assert_eq(s.waits, CROWD_MAX - 1);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.bytes, 0);

    /* No placeholder stayed behind: the next get loads again (and does not
     * wait for a flight that will never land), then finds the data set once
     * it exists. */
    const sf_bars *bars = NULL;
    wrk_cache_entry *e = NULL;
    sf_err err = {0};
    cr_assert_eq(wrk_cache_get(c, g_db, "NOPE", "1d", 1, &bars, &e, &err), SF_ERR_NOTFOUND);
    import("NOPE", 10, 1.0);
    cr_assert_eq(wrk_cache_get(c, g_db, "NOPE", "1d", 1, &bars, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(bars->n, 10);
    wrk_cache_release(c, e);
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.loads, 3);
    cr_assert_eq(s.waits, CROWD_MAX - 1);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.bytes, entry_bytes(10));
    wrk_cache_free(c);
}

Test(worker_cache, waiters_for_an_old_version_share_the_newer_version_loaded)
{
    import("VER", 1000, 1.0);
    import("VER", 2000, 2.0); /* version 2 */
    wrk_cache *c = cache_new((size_t)64 << 20);
    const char *sym[] = {"VER"};
    sf_db *locker = lock_datasets();
    crowd cr;
    crowd_start(&cr, c, CROWD_MAX, sym, 1, 1, 0); /* the claims saw version 1 */
    in_flight seen = watch_in_flight(c, 1, CROWD_MAX - 1);
    unlock_datasets(locker);
    crowd_join(&cr);
    expect_in_flight(&seen, 1, CROWD_MAX - 1);
    expect_all_shared(&cr, 2000, 2.0);

    /* Cached under the version loaded: a claim that saw version 2 hits. */
    const sf_bars *bars = NULL;
    wrk_cache_entry *e = NULL;
    sf_err err = {0};
    cr_assert_eq(wrk_cache_get(c, g_db, "VER", "1d", 2, &bars, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(e, cr.g[0].entry);
    wrk_cache_release(c, e);
    /* Version 0 asks PostgreSQL for the current version (2): a hit too. */
    cr_assert_eq(wrk_cache_get(c, g_db, "VER", "1d", 0, &bars, &e, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(e, cr.g[0].entry);
    wrk_cache_release(c, e);
    wrk_cache_stats s;
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.loads, 1);
    cr_assert_eq(s.hits, 2);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.bytes, entry_bytes(2000));
    wrk_cache_free(c);
}

Test(worker_cache, different_keys_load_side_by_side_once_each)
{
    import("AAA", 3000, 10.0);
    import("BBB", 4000, 20.0);
    wrk_cache *c = cache_new((size_t)64 << 20);
    const char *sym[] = {"AAA", "BBB"};
    sf_db *locker = lock_datasets();
    crowd cr;
    crowd_start(&cr, c, CROWD_MAX, sym, 2, 1, 0);
    in_flight seen = watch_in_flight(c, 2, CROWD_MAX - 2);
    unlock_datasets(locker);
    crowd_join(&cr);
    expect_in_flight(&seen, 2, CROWD_MAX - 2);

    for (size_t i = 0; i < cr.n; i++) {
        const getter *g = &cr.g[i];
        size_t want_n = i % 2 ? 4000 : 3000;
        cr_assert_eq(g->st, SF_OK, "thread %zu: %s", i, g->err.msg);
        cr_assert_eq(g->entry, cr.g[i % 2].entry, "thread %zu got another entry", i);
        cr_assert_eq(g->n, want_n);
        cr_assert_eq(g->sum, close_sum(want_n, i % 2 ? 20.0 : 10.0));
    }
    cr_assert_neq(cr.g[0].entry, cr.g[1].entry);
    wrk_cache_stats s;
    wrk_cache_get_stats(c, &s);
    cr_assert_eq(s.loads, 2);
    cr_assert_eq(s.entries, 2);
    cr_assert_eq(s.bytes, entry_bytes(3000) + entry_bytes(4000));
    wrk_cache_free(c);
}
