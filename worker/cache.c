/*
 * cache: LRU of data sets (see cache.h). A doubly linked list, most recently
 * used at the head; lookups scan it (at most WRK_CACHE_ENTRIES_MAX entries,
 * normally a handful of data sets).
 *
 * Single-flight loads. A get that finds no entry looks for a flight: a load
 * of the same (symbol, timeframe, version asked) in progress. If there is
 * one it waits on c->loaded until the flight is done; otherwise it starts a
 * flight (pushed on c->flights), loads outside the lock, and on return, under
 * the lock, takes the flight off the list, inserts the entry with one
 * reference for itself and one per waiter (so nothing can evict it before the
 * waiters wake), or records the error, marks the flight done and broadcasts.
 * Flights are not entries: they hold no bars, count no bytes, are never in
 * the LRU and are never evicted, so a failed load leaves nothing behind. A
 * done flight is freed by whoever leaves it last: the loader when nobody
 * waited, else the last waiter.
 *
 * One condition variable serves every flight (a broadcast wakes waiters of
 * other keys too, who see their flight not done and wait again): flights are
 * rare (one per data set and version) and short-lived.
 */
#include "cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/dataset.h"
#include "sf/list.h"

struct wrk_cache_entry {
    sf_list_node link; /* first member: a node pointer is an entry pointer */
    char symbol[64];
    char timeframe[32];
    int64_t version;
    sf_bars *bars;
    size_t bytes;
    int refs;
};

/* A load in progress, and its outcome once done. The key is set before the
 * flight is listed and never changes (the loader reads it unlocked); the
 * rest is guarded by the cache's mu. */
typedef struct flight {
    sf_list_node link; /* first member; in c->flights until done */
    char symbol[64];
    char timeframe[32];
    int64_t version; /* the version asked for (the entry's may be newer) */
    int waiters;     /* threads waiting on this flight */
    int done;
    wrk_cache_entry *entry; /* when done: the entry (one reference per waiter taken), or NULL */
    sf_err err;             /* when done without an entry: the loader's error */
} flight;

struct wrk_cache {
    pthread_mutex_t mu;
    pthread_cond_t loaded; /* with mu: a flight is done */
    /* guarded by mu */
    sf_list lru;     /* most recently used first */
    sf_list flights; /* loads in progress */
    size_t bytes, entries, max_bytes;
    uint64_t hits, misses, loads, waits, evictions;
};

sf_status wrk_cache_new(size_t max_bytes, wrk_cache **out, sf_err *err)
{
    wrk_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->loaded, NULL);
    c->max_bytes = max_bytes;
    *out = c;
    return SF_OK;
}

static void drop_entry(wrk_cache *c, wrk_cache_entry *e)
{
    sf_list_unlink(&c->lru, &e->link);
    c->bytes -= e->bytes;
    c->entries--;
    c->evictions++;
    sf_bars_free(e->bars);
    free(e);
}

void wrk_cache_free(wrk_cache *c)
{
    if (c == NULL)
        return;
    assert(c->flights.head == NULL);
    while (c->lru.head)
        drop_entry(c, (wrk_cache_entry *)c->lru.head);
    pthread_cond_destroy(&c->loaded);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Drop unreferenced entries, oldest first, while over budget. Locked. */
static void evict(wrk_cache *c)
{
    wrk_cache_entry *e = (wrk_cache_entry *)c->lru.tail;
    while (e && (c->bytes > c->max_bytes || c->entries > WRK_CACHE_ENTRIES_MAX)) {
        wrk_cache_entry *prev = (wrk_cache_entry *)e->link.prev;
        if (e->refs == 0)
            drop_entry(c, e);
        e = prev;
    }
}

static int same_key(const char *s1, const char *t1, int64_t v1, const char *s2, const char *t2, int64_t v2)
{
    return v1 == v2 && strcmp(s1, s2) == 0 && strcmp(t1, t2) == 0;
}

/* Locked. */
static wrk_cache_entry *find(wrk_cache *c, const char *symbol, const char *timeframe, int64_t version)
{
    for (wrk_cache_entry *e = (wrk_cache_entry *)c->lru.head; e; e = (wrk_cache_entry *)e->link.next)
        if (same_key(e->symbol, e->timeframe, e->version, symbol, timeframe, version))
            return e;
    return NULL;
}

/* Locked. */
static flight *find_flight(wrk_cache *c, const char *symbol, const char *timeframe, int64_t version)
{
    for (flight *f = (flight *)c->flights.head; f; f = (flight *)f->link.next)
        if (same_key(f->symbol, f->timeframe, f->version, symbol, timeframe, version))
            return f;
    return NULL;
}

static wrk_cache_entry *take(wrk_cache *c, wrk_cache_entry *e, int refs)
{
    e->refs += refs;
    sf_list_move_to_head(&c->lru, &e->link);
    return e;
}

/* Insert a freshly loaded data set with refs references, or take them on the
 * copy already cached under its version (another key's flight loaded the same
 * version): then *dup is fresh, for the caller to free outside the lock.
 * Locked. */
static wrk_cache_entry *insert(wrk_cache *c, wrk_cache_entry *fresh, int refs, wrk_cache_entry **dup)
{
    *dup = NULL;
    wrk_cache_entry *e = find(c, fresh->symbol, fresh->timeframe, fresh->version);
    if (e != NULL) {
        *dup = fresh;
        return take(c, e, refs);
    }
    fresh->refs = refs;
    sf_list_push_head(&c->lru, &fresh->link);
    c->bytes += fresh->bytes;
    c->entries++;
    evict(c);
    return fresh;
}

/* The current version of the data set, from PostgreSQL. Not locked. */
static sf_status load(sf_db *db, const char *symbol, const char *timeframe, wrk_cache_entry **out, sf_err *err)
{
    *out = NULL;
    wrk_cache_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    snprintf(e->symbol, sizeof e->symbol, "%s", symbol);
    snprintf(e->timeframe, sizeof e->timeframe, "%s", timeframe);
    sf_status st = sf_dataset_load(db, symbol, timeframe, 0, &e->bars, &e->version, err);
    if (st != SF_OK) {
        free(e);
        return st;
    }
    e->bytes = sizeof *e + e->bars->n * (sizeof(int64_t) + 5 * sizeof(double));
    *out = e;
    return SF_OK;
}

static void free_entry(wrk_cache_entry *e)
{
    if (e != NULL)
        sf_bars_free(e->bars);
    free(e);
}

/* Wait for f (locked, f not ours); its outcome for this thread. */
static sf_status wait_flight(wrk_cache *c, flight *f, wrk_cache_entry **out, sf_err *err)
{
    c->waits++;
    f->waiters++;
    while (!f->done)
        pthread_cond_wait(&c->loaded, &c->mu);
    *out = f->entry;
    sf_status st = SF_OK;
    if (f->entry == NULL) {
        st = f->err.code;
        if (err != NULL)
            *err = f->err;
    }
    if (--f->waiters == 0)
        free(f);
    return st;
}

/* Lead f (locked on entry and return; f in c->flights): load with the lock
 * released, then publish the outcome to the waiters. *dup: see insert. */
static sf_status fly(wrk_cache *c, flight *f, sf_db *db, wrk_cache_entry **out, wrk_cache_entry **dup, sf_err *err)
{
    c->loads++;
    pthread_mutex_unlock(&c->mu);
    wrk_cache_entry *fresh = NULL;
    sf_err lerr = {0};
    sf_status st = load(db, f->symbol, f->timeframe, &fresh, &lerr); /* the key is immutable */
    pthread_mutex_lock(&c->mu);
    sf_list_unlink(&c->flights, &f->link);
    if (st == SF_OK) {
        f->entry = insert(c, fresh, 1 + f->waiters, dup);
    } else {
        f->err = lerr;
        if (err != NULL)
            *err = lerr;
    }
    *out = f->entry;
    f->done = 1;
    pthread_cond_broadcast(&c->loaded);
    if (f->waiters == 0)
        free(f);
    return st;
}

/* Locked: the entry for the key, one reference taken; may wait or load
 * (releasing the lock meanwhile). *dup: see insert. */
static sf_status get_locked(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe, int64_t version,
                            wrk_cache_entry **out, wrk_cache_entry **dup, sf_err *err)
{
    wrk_cache_entry *e = find(c, symbol, timeframe, version);
    if (e != NULL) {
        c->hits++;
        *out = take(c, e, 1);
        return SF_OK;
    }
    c->misses++;
    flight *f = find_flight(c, symbol, timeframe, version);
    if (f != NULL)
        return wait_flight(c, f, out, err);
    if ((f = calloc(1, sizeof *f)) == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    snprintf(f->symbol, sizeof f->symbol, "%s", symbol);
    snprintf(f->timeframe, sizeof f->timeframe, "%s", timeframe);
    f->version = version;
    sf_list_push_head(&c->flights, &f->link);
    return fly(c, f, db, out, dup, err);
}

sf_status wrk_cache_get(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe, int64_t version,
                        const sf_bars **bars, wrk_cache_entry **entry, sf_err *err)
{
    *bars = NULL;
    *entry = NULL;
    if (strlen(symbol) >= 64 || strlen(timeframe) >= 32)
        return sf_err_set(err, SF_ERR_NOTFOUND, "data set %.64s/%.32s: name too long", symbol, timeframe);
    sf_status st = SF_OK;
    if (version <= 0 && (st = sf_dataset_version(db, symbol, timeframe, &version, err)) != SF_OK)
        return st;
    wrk_cache_entry *e = NULL, *dup = NULL;
    pthread_mutex_lock(&c->mu);
    st = get_locked(c, db, symbol, timeframe, version, &e, &dup, err);
    pthread_mutex_unlock(&c->mu);
    free_entry(dup);
    if (st != SF_OK)
        return st;
    *bars = e->bars;
    *entry = e;
    return SF_OK;
}

void wrk_cache_release(wrk_cache *c, wrk_cache_entry *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    e->refs--;
    evict(c);
    pthread_mutex_unlock(&c->mu);
}

void wrk_cache_get_stats(wrk_cache *c, wrk_cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = (wrk_cache_stats){
        .hits = c->hits,
        .misses = c->misses,
        .loads = c->loads,
        .waits = c->waits,
        .evictions = c->evictions,
        .bytes = c->bytes,
        .entries = c->entries,
    };
    pthread_mutex_unlock(&c->mu);
}
