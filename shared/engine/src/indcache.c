/* indcache: the indicator cache; see sf/indcache.h.
 *
 * DESIGN
 * A linked list of entries (a sweep uses tens of distinct specs, not
 * thousands) under one mutex. A miss inserts a COMPUTING entry and computes
 * it outside the lock; other threads asking for the same spec wait on `done`
 * (in a while loop) until it is READY or gone (failed: they retry and compute
 * themselves). Pinned entries are never evicted. Lock order: cache->mu only.
 *
 * An entry's outputs and a scratch series are big blocks (8 MB for 10^6
 * bars), written once, from scratch, by the thread that computes them: fresh
 * pages, faulted in one 4 KB page at a time when malloc'd (in a sweep of the
 * SMA crossover, the costliest part of computing the indicators: each fault
 * traps to the kernel, and under a hypervisor more). Blocks of at least
 * BIG_BLOCK bytes are mapped on their own instead, aligned for transparent
 * huge pages, asked for them and populated in one call (both are hints:
 * where the kernel declines, the pages fault in as before).
 */
#include "sf/indcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define BIG_BLOCK HUGE_PAGE
#define BIG_HEAD ((size_t)4096) /* room before the block for its mapping's address and length */

typedef enum entry_state { ENTRY_COMPUTING, ENTRY_READY } entry_state;

struct sf_indref {
    struct sf_indref *next; /* cache list; guarded by cache->mu */
    sf_ind_spec key;        /* normalised: unused bytes zero */
    entry_state state;      /* guarded by cache->mu */
    int cached;             /* 0: private to one caller, freed on release */
    int n_outputs;
    double *block; /* n_outputs * n doubles */
    size_t n;      /* bars */
    size_t bytes;
    unsigned pins;     /* guarded by cache->mu */
    uint64_t last_use; /* guarded by cache->mu */
};

struct sf_indcache {
    const sf_bars *bars;
    size_t max_bytes;
    pthread_mutex_t mu;  /* guards head, tick, stats and entry fields marked above */
    pthread_cond_t done; /* broadcast when an entry leaves COMPUTING */
    struct sf_indref *head;
    double *spare[SF_INDCACHE_SPARES]; /* scratch series put back, reused by the next get */
    int n_spare;
    uint64_t tick;
    sf_indcache_stats stats;
};

sf_status sf_indcache_new(const sf_bars *bars, size_t max_bytes, sf_indcache **out, sf_err *err)
{
    *out = NULL;
    if (bars == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "indicator cache: no bars");
    sf_indcache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator cache");
    c->bars = bars;
    c->max_bytes = max_bytes;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return sf_err_set(err, SF_ERR_INTERNAL, "could not create cache mutex");
    }
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return sf_err_set(err, SF_ERR_INTERNAL, "could not create cache condition");
    }
    *out = c;
    return SF_OK;
}

const sf_bars *sf_indcache_bars(const sf_indcache *cache)
{
    return cache->bars;
}

/* ---- big blocks ---- */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* bytes of doubles: malloc'd below BIG_BLOCK, else a mapping of their own
 * (its start and length kept just before the block); NULL when out of memory. */
static double *block_alloc(size_t bytes)
{
    if (bytes < BIG_BLOCK)
        return malloc(bytes ? bytes : 1);
    size_t body = round_up(bytes, HUGE_PAGE), len = BIG_HEAD + HUGE_PAGE + body;
    if (len < bytes)
        return NULL;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    char *p = (char *)round_up((uintptr_t)map + BIG_HEAD, HUGE_PAGE);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, body, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
    (void)madvise(p, body, MADV_POPULATE_WRITE);
#endif
    void *head[2] = {map, (void *)len};
    memcpy(p - sizeof head, head, sizeof head);
    return (double *)(void *)p;
}

/* Frees what block_alloc(bytes) returned (NULL: nothing). */
static void block_free(double *block, size_t bytes)
{
    if (block == NULL || bytes < BIG_BLOCK) {
        free(block);
        return;
    }
    void *head[2];
    memcpy(head, (char *)block - sizeof head, sizeof head);
    munmap(head[0], (size_t)head[1]);
}

static size_t scratch_bytes(const sf_indcache *c)
{
    return (c->bars->n ? c->bars->n : 1) * sizeof(double);
}

static void entry_free(struct sf_indref *e)
{
    if (e == NULL)
        return;
    block_free(e->block, e->bytes);
    free(e);
}

void sf_indcache_free(sf_indcache *cache)
{
    if (cache == NULL)
        return;
    struct sf_indref *e = cache->head;
    while (e != NULL) {
        struct sf_indref *next = e->next;
        entry_free(e);
        e = next;
    }
    for (int i = 0; i < cache->n_spare; i++)
        block_free(cache->spare[i], scratch_bytes(cache));
    pthread_cond_destroy(&cache->done);
    pthread_mutex_destroy(&cache->mu);
    free(cache);
}

/* The spec with only the fields its type uses, every other byte zero. */
static sf_status spec_normalise(const sf_ind_spec *spec, sf_ind_spec *key, sf_err *err)
{
    memset(key, 0, sizeof *key);
    const sf_ind_info *info = sf_ind_info_get(spec->type);
    if ((unsigned)spec->type >= SF_IND__COUNT || info == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "indicator: unknown type %d", (int)spec->type);
    key->type = spec->type;
    if (info->has_source)
        key->source = spec->source;
    for (int j = 0; j < info->n_params && j < SF_IND_MAX_PARAMS; j++) {
        sf_ind_param_id id = info->params[j].id;
        if ((unsigned)id < SF_IP__COUNT)
            key->param[id] = spec->param[id] + 0.0; /* -0.0 becomes 0.0 */
    }
    return SF_OK;
}

static struct sf_indref *cache_find(sf_indcache *c, const sf_ind_spec *key)
{
    for (struct sf_indref *e = c->head; e != NULL; e = e->next)
        if (memcmp(&e->key, key, sizeof *key) == 0)
            return e;
    return NULL;
}

static void cache_unlink(sf_indcache *c, struct sf_indref *e)
{
    for (struct sf_indref **p = &c->head; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            c->stats.bytes -= e->bytes;
            return;
        }
    }
}

/* Evict unpinned ready entries, least recently used first, until `need`
 * more bytes fit. Returns whether they fit. An entry bigger than the whole
 * bound never fits: it evicts nothing. Called with the lock held. */
static int cache_make_room(sf_indcache *c, size_t need)
{
    if (need > c->max_bytes)
        return 0;
    while (c->stats.bytes > c->max_bytes - need) {
        struct sf_indref *victim = NULL;
        for (struct sf_indref *e = c->head; e != NULL; e = e->next)
            if (e->state == ENTRY_READY && e->pins == 0 && (victim == NULL || e->last_use < victim->last_use))
                victim = e;
        if (victim == NULL)
            return 0;
        cache_unlink(c, victim);
        entry_free(victim);
        c->stats.evicted++;
    }
    return 1;
}

/* Allocate and compute an entry's outputs (no lock held). */
static sf_status entry_compute(struct sf_indref *e, const sf_bars *bars, sf_err *err)
{
    size_t n = bars->n;
    e->block = block_alloc(e->bytes);
    if (e->block == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate %zu bytes of indicator output", e->bytes);
    double *outs[SF_IND_MAX_OUTPUTS] = {0};
    for (int k = 0; k < e->n_outputs; k++)
        outs[k] = e->block + (size_t)k * n;
    return sf_ind_compute(&e->key, bars, outs, err);
}

static struct sf_indref *entry_new(const sf_ind_spec *key, size_t n)
{
    const sf_ind_info *info = sf_ind_info_get(key->type);
    struct sf_indref *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->key = *key;
    e->n_outputs = info->n_outputs;
    e->n = n;
    e->bytes = (size_t)info->n_outputs * n * sizeof(double);
    e->pins = 1;
    return e;
}

/* A miss that does not fit: compute for this caller alone. */
static sf_status acquire_private(sf_indcache *c, const sf_ind_spec *key, sf_indref **ref, sf_err *err)
{
    struct sf_indref *e = entry_new(key, c->bars->n);
    if (e == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator entry");
    sf_status st = entry_compute(e, c->bars, err);
    if (st != SF_OK) {
        entry_free(e);
        return st;
    }
    *ref = e;
    return SF_OK;
}

/* A miss that fits: publish a COMPUTING entry, compute it unlocked, publish
 * the outcome. Called with the lock held; returns with it released. */
static sf_status acquire_insert(sf_indcache *c, struct sf_indref *e, sf_indref **ref, sf_err *err)
{
    e->cached = 1;
    e->state = ENTRY_COMPUTING;
    e->last_use = ++c->tick;
    e->next = c->head;
    c->head = e;
    c->stats.bytes += e->bytes;
    c->stats.computed++;
    pthread_mutex_unlock(&c->mu);

    sf_status st = entry_compute(e, c->bars, err);

    pthread_mutex_lock(&c->mu);
    if (st != SF_OK)
        cache_unlink(c, e);
    else
        e->state = ENTRY_READY;
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->mu);
    if (st != SF_OK) {
        entry_free(e);
        return st;
    }
    *ref = e;
    return SF_OK;
}

sf_status sf_indcache_acquire(sf_indcache *c, const sf_ind_spec *spec, sf_indref **ref, sf_err *err)
{
    *ref = NULL;
    sf_ind_spec key;
    sf_status st = spec_normalise(spec, &key, err);
    if (st != SF_OK)
        return st;
    pthread_mutex_lock(&c->mu);
    struct sf_indref *e;
    while ((e = cache_find(c, &key)) != NULL && e->state == ENTRY_COMPUTING)
        pthread_cond_wait(&c->done, &c->mu);
    if (e != NULL) {
        e->pins++;
        e->last_use = ++c->tick;
        c->stats.hits++;
        pthread_mutex_unlock(&c->mu);
        *ref = e;
        return SF_OK;
    }
    struct sf_indref *fresh = entry_new(&key, c->bars->n);
    if (fresh == NULL) {
        pthread_mutex_unlock(&c->mu);
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate indicator entry");
    }
    if (cache_make_room(c, fresh->bytes))
        return acquire_insert(c, fresh, ref, err);
    c->stats.uncached++;
    pthread_mutex_unlock(&c->mu);
    entry_free(fresh);
    return acquire_private(c, &key, ref, err);
}

const double *sf_indref_output(const sf_indref *ref, int k)
{
    if (ref == NULL || k < 0 || k >= ref->n_outputs)
        return NULL;
    return ref->block + (size_t)k * ref->n;
}

void sf_indcache_release(sf_indcache *cache, sf_indref *ref)
{
    if (ref == NULL)
        return;
    if (!ref->cached) {
        entry_free(ref);
        return;
    }
    pthread_mutex_lock(&cache->mu);
    if (ref->pins > 0)
        ref->pins--;
    pthread_mutex_unlock(&cache->mu);
}

void sf_indcache_get_stats(sf_indcache *cache, sf_indcache_stats *out)
{
    pthread_mutex_lock(&cache->mu);
    *out = cache->stats;
    pthread_mutex_unlock(&cache->mu);
}

/* DESIGN: a series of n doubles is above malloc's mmap threshold, so a run
 * that mallocs and frees one gets fresh pages every time (a page fault per
 * 4 KB: in a sweep, more than the member's own simulation). Kept here, the
 * pages stay mapped from member to member. */
double *sf_indcache_scratch_get(sf_indcache *cache)
{
    double *p = NULL;
    pthread_mutex_lock(&cache->mu);
    if (cache->n_spare > 0)
        p = cache->spare[--cache->n_spare];
    pthread_mutex_unlock(&cache->mu);
    return p != NULL ? p : block_alloc(scratch_bytes(cache));
}

void sf_indcache_scratch_put(sf_indcache *cache, double *scratch)
{
    if (scratch == NULL)
        return;
    pthread_mutex_lock(&cache->mu);
    if (cache->n_spare < SF_INDCACHE_SPARES) {
        cache->spare[cache->n_spare++] = scratch;
        scratch = NULL;
    }
    pthread_mutex_unlock(&cache->mu);
    block_free(scratch, scratch_bytes(cache));
}
