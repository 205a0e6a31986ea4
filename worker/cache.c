/*
 * cache: LRU of data sets (see cache.h). A doubly linked list, most recently
 * used at the head; lookups scan it (at most WRK_CACHE_ENTRIES_MAX entries,
 * normally a handful of data sets).
 */
#include "cache.h"

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

struct wrk_cache {
    pthread_mutex_t mu;
    /* guarded by mu */
    sf_list lru;            /* most recently used first */
    size_t bytes, entries, max_bytes;
    uint64_t hits, misses, evictions;
};

sf_status wrk_cache_new(size_t max_bytes, wrk_cache **out, sf_err *err)
{
    wrk_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
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
    while (c->lru.head)
        drop_entry(c, (wrk_cache_entry *)c->lru.head);
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

/* Locked. */
static wrk_cache_entry *find(wrk_cache *c, const char *symbol, const char *timeframe, int64_t version)
{
    for (wrk_cache_entry *e = (wrk_cache_entry *)c->lru.head; e; e = (wrk_cache_entry *)e->link.next)
        if (e->version == version && strcmp(e->symbol, symbol) == 0 &&
            strcmp(e->timeframe, timeframe) == 0)
            return e;
    return NULL;
}

static wrk_cache_entry *take(wrk_cache *c, wrk_cache_entry *e)
{
    e->refs++;
    sf_list_move_to_head(&c->lru, &e->link);
    return e;
}

/* Insert a freshly loaded data set, or use the copy another thread put in first. */
static wrk_cache_entry *insert(wrk_cache *c, wrk_cache_entry *fresh)
{
    pthread_mutex_lock(&c->mu);
    wrk_cache_entry *e = find(c, fresh->symbol, fresh->timeframe, fresh->version);
    if (e != NULL) {
        take(c, e);
        pthread_mutex_unlock(&c->mu);
        sf_bars_free(fresh->bars);
        free(fresh);
        return e;
    }
    fresh->refs = 1;
    sf_list_push_head(&c->lru, &fresh->link);
    c->bytes += fresh->bytes;
    c->entries++;
    evict(c);
    pthread_mutex_unlock(&c->mu);
    return fresh;
}

static sf_status load(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe,
                      wrk_cache_entry **out, sf_err *err)
{
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
    *out = insert(c, e);
    return SF_OK;
}

sf_status wrk_cache_get(wrk_cache *c, sf_db *db, const char *symbol, const char *timeframe,
                        int64_t version, const sf_bars **bars, wrk_cache_entry **entry,
                        sf_err *err)
{
    *bars = NULL;
    *entry = NULL;
    if (strlen(symbol) >= 64 || strlen(timeframe) >= 32)
        return sf_err_set(err, SF_ERR_NOTFOUND, "data set %.64s/%.32s: name too long", symbol, timeframe);
    sf_status st = SF_OK;
    if (version <= 0 && (st = sf_dataset_version(db, symbol, timeframe, &version, err)) != SF_OK)
        return st;
    pthread_mutex_lock(&c->mu);
    wrk_cache_entry *e = find(c, symbol, timeframe, version);
    if (e) {
        take(c, e);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (e == NULL && (st = load(c, db, symbol, timeframe, &e, err)) != SF_OK)
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
    *out = (wrk_cache_stats){c->hits, c->misses, c->evictions, c->bytes, c->entries};
    pthread_mutex_unlock(&c->mu);
}
