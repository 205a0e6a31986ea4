/*
 * gridcache: LRU of parsed grids (see gridcache.h). A doubly linked list,
 * most recently used at the head; lookups scan it (a handful of entries).
 */
#include "gridcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/list.h"

#define BATCH_ID_MAX 40

struct wrk_grid_ref {
    sf_list_node link; /* first member: a node pointer is an entry pointer */
    char batch_id[BATCH_ID_MAX];
    size_t len;
    uint64_t hash;
    sf_grid *grid;
    int refs;
};

struct wrk_gridcache {
    pthread_mutex_t mu;
    /* guarded by mu */
    sf_list lru; /* most recently used first */
    size_t entries;
};

/* FNV-1a, 64 bits. */
static uint64_t text_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

sf_status wrk_gridcache_new(wrk_gridcache **out, sf_err *err)
{
    wrk_gridcache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return SF_OK;
}

static void drop_ref(wrk_gridcache *c, wrk_grid_ref *e)
{
    sf_list_unlink(&c->lru, &e->link);
    c->entries--;
    sf_grid_free(e->grid);
    free(e);
}

void wrk_gridcache_free(wrk_gridcache *c)
{
    if (c == NULL)
        return;
    while (c->lru.head)
        drop_ref(c, (wrk_grid_ref *)c->lru.head);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Drop unreferenced entries, oldest first, while over the bound. Locked. */
static void evict(wrk_gridcache *c)
{
    wrk_grid_ref *e = (wrk_grid_ref *)c->lru.tail;
    while (e && c->entries > WRK_GRIDCACHE_ENTRIES) {
        wrk_grid_ref *prev = (wrk_grid_ref *)e->link.prev;
        if (e->refs == 0)
            drop_ref(c, e);
        e = prev;
    }
}

/* Locked: the entry for the key, taken (refs + 1, moved to the head). */
static wrk_grid_ref *find_take(wrk_gridcache *c, const char *batch_id, size_t len, uint64_t hash)
{
    for (wrk_grid_ref *e = (wrk_grid_ref *)c->lru.head; e; e = (wrk_grid_ref *)e->link.next) {
        if (e->len != len || e->hash != hash || strcmp(e->batch_id, batch_id) != 0)
            continue;
        e->refs++;
        sf_list_move_to_head(&c->lru, &e->link);
        return e;
    }
    return NULL;
}

/* Insert a freshly parsed grid, or use the copy another thread put in first. */
static wrk_grid_ref *insert(wrk_gridcache *c, wrk_grid_ref *fresh)
{
    pthread_mutex_lock(&c->mu);
    wrk_grid_ref *e = find_take(c, fresh->batch_id, fresh->len, fresh->hash);
    if (e == NULL) {
        fresh->refs = 1;
        sf_list_push_head(&c->lru, &fresh->link);
        c->entries++;
        evict(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (e != NULL) {
        sf_grid_free(fresh->grid);
        free(fresh);
        return e;
    }
    return fresh;
}

sf_status wrk_gridcache_get(wrk_gridcache *c, const char *batch_id, const char *text, size_t len, const sf_grid **grid,
                            wrk_grid_ref **ref, sf_err *err)
{
    *grid = NULL;
    *ref = NULL;
    if (strlen(batch_id) >= BATCH_ID_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "batch id \"%.40s\": too long", batch_id);
    uint64_t hash = text_hash(text, len);
    pthread_mutex_lock(&c->mu);
    wrk_grid_ref *e = find_take(c, batch_id, len, hash);
    pthread_mutex_unlock(&c->mu);
    if (e == NULL) {
        wrk_grid_ref *fresh = calloc(1, sizeof *fresh);
        if (fresh == NULL)
            return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        sf_status st = sf_grid_parse(text, len, 0, &fresh->grid, err);
        if (st != SF_OK) {
            free(fresh);
            return st;
        }
        snprintf(fresh->batch_id, sizeof fresh->batch_id, "%s", batch_id);
        fresh->len = len;
        fresh->hash = hash;
        e = insert(c, fresh);
    }
    *grid = e->grid;
    *ref = e;
    return SF_OK;
}

void wrk_gridcache_release(wrk_gridcache *c, wrk_grid_ref *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    e->refs--;
    evict(c);
    pthread_mutex_unlock(&c->mu);
}
