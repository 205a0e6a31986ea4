/* sf-api: the cache of jobs' JSON; see jobcache.h. */
#include "jobcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sf/time.h"

#define SETS (API_JOBCACHE_ENTRIES / API_JOBCACHE_WAYS)
#define ID_BYTES 16

typedef struct entry {
    unsigned char job[ID_BYTES], user[ID_BYTES];
    int64_t expires_ms; /* monotonic; 0 = empty */
    uint64_t seq, gen;  /* the ticket of the read it holds */
    uint64_t used;      /* the set's clock when last read or written */
    size_t len;
    char *text; /* len bytes and a NUL; malloc'd */
} entry;

struct api_jobcache {
    int64_t final_ms, active_ms;
    _Atomic uint64_t clock;   /* the last ticket's seq */
    _Atomic uint64_t barrier; /* tickets up to this seq may not put (api_jobcache_forget) */
    _Atomic uint64_t gen;     /* bumped by api_jobcache_clear */
    pthread_mutex_t locks[API_JOBCACHE_LOCKS];
    uint64_t used[SETS]; /* under the set's lock */
    entry *entries;      /* SETS x WAYS */
};

sf_status api_jobcache_new(int64_t final_ms, int64_t active_ms, api_jobcache **out, sf_err *err)
{
    int on = final_ms > 0 || active_ms > 0;
    api_jobcache *c = calloc(1, sizeof *c);
    if (c == NULL || (on && (c->entries = calloc(API_JOBCACHE_ENTRIES, sizeof *c->entries)) == NULL)) {
        free(c);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    c->final_ms = final_ms > 0 ? final_ms : 0;
    c->active_ms = active_ms > 0 ? active_ms : 0;
    atomic_init(&c->clock, 0);
    atomic_init(&c->barrier, 0);
    atomic_init(&c->gen, 1);
    for (int i = 0; i < API_JOBCACHE_LOCKS; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    *out = c;
    return SF_OK;
}

void api_jobcache_free(api_jobcache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; c->entries != NULL && i < API_JOBCACHE_ENTRIES; i++)
        free(c->entries[i].text);
    for (int i = 0; i < API_JOBCACHE_LOCKS; i++)
        pthread_mutex_destroy(&c->locks[i]);
    free(c->entries);
    free(c);
}

api_jobcache_ticket_t api_jobcache_ticket(api_jobcache *c)
{
    api_jobcache_ticket_t t;
    t.gen = atomic_load(&c->gen); /* a clear after this makes the read's put void */
    t.seq = atomic_fetch_add(&c->clock, 1) + 1;
    return t;
}

void api_jobcache_clear(api_jobcache *c)
{
    atomic_fetch_add(&c->gen, 1);
}

static int hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A UUID text's 16 bytes; 0 when it is not one. */
static int uuid_bytes(const char *s, unsigned char *out)
{
    int n = 0;
    for (int i = 0; s != NULL && i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
            continue;
        }
        int hi = hex(s[i]), lo = hi < 0 ? -1 : hex(s[++i]);
        if (lo < 0)
            return 0;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return n == ID_BYTES && s[36] == '\0';
}

/* Every byte counts: a v4 UUID's version and variant bits are fixed, and an
 * id of another kind may vary in any byte. */
static size_t set_of(const unsigned char *job)
{
    uint64_t a, b;
    memcpy(&a, job, sizeof a);
    memcpy(&b, job + 8, sizeof b);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15u)) * 0xBF58476D1CE4E5B9u;
    return (size_t)((h >> 32) % SETS);
}

static pthread_mutex_t *lock_of(api_jobcache *c, size_t s)
{
    return &c->locks[s % API_JOBCACHE_LOCKS];
}

static int holds(const entry *e, const unsigned char *job, const unsigned char *user)
{
    return memcmp(e->job, job, ID_BYTES) == 0 && memcmp(e->user, user, ID_BYTES) == 0;
}

int api_jobcache_get(api_jobcache *c, const char *job_id, const char *user_id, char *out, size_t size, size_t *len)
{
    unsigned char job[ID_BYTES], user[ID_BYTES];
    if (c->entries == NULL || !uuid_bytes(job_id, job) || !uuid_bytes(user_id, user))
        return 0;
    size_t s = set_of(job);
    uint64_t gen = atomic_load(&c->gen);
    int64_t now = sf_time_mono_ms();
    int hit = 0;
    pthread_mutex_lock(lock_of(c, s));
    for (int w = 0; w < API_JOBCACHE_WAYS && !hit; w++) {
        entry *e = &c->entries[s * API_JOBCACHE_WAYS + w];
        if (e->expires_ms > now && e->gen == gen && e->len < size && holds(e, job, user)) {
            memcpy(out, e->text, e->len + 1);
            *len = e->len;
            e->used = ++c->used[s];
            hit = 1;
        }
    }
    pthread_mutex_unlock(lock_of(c, s));
    return hit;
}

/* The way of set s for (job, user): its own entry, else an empty, expired
 * or cleared one, else the least recently used. Under the set's lock. */
static entry *victim(api_jobcache *c, size_t s, const unsigned char *job, const unsigned char *user, uint64_t gen,
                     int64_t now)
{
    entry *set = &c->entries[s * API_JOBCACHE_WAYS], *free_way = NULL, *lru = &set[0];
    for (int w = 0; w < API_JOBCACHE_WAYS; w++) {
        entry *e = &set[w];
        if (e->expires_ms > 0 && holds(e, job, user))
            return e;
        if (free_way == NULL && (e->expires_ms <= now || e->gen != gen))
            free_way = e;
        if (e->used < lru->used)
            lru = e;
    }
    return free_way ? free_way : lru;
}

/* Store a copy of text in e (under its set's lock); returns the text e held, to free. */
static char *fill(entry *e, const unsigned char *job, const unsigned char *user, char *copy, size_t len,
                  int64_t expires, api_jobcache_ticket_t t)
{
    char *old = e->text;
    memcpy(e->job, job, ID_BYTES);
    memcpy(e->user, user, ID_BYTES);
    e->text = copy;
    e->len = len;
    e->expires_ms = expires;
    e->seq = t.seq;
    e->gen = t.gen;
    return old;
}

void api_jobcache_put(api_jobcache *c, const char *job_id, const char *user_id, const char *text, size_t len, int final,
                      api_jobcache_ticket_t ticket)
{
    unsigned char job[ID_BYTES], user[ID_BYTES];
    int64_t ttl = final ? c->final_ms : c->active_ms;
    if (c->entries == NULL || ttl == 0 || len > API_JOBCACHE_TEXT_MAX || !uuid_bytes(job_id, job) ||
        !uuid_bytes(user_id, user) || ticket.gen != atomic_load(&c->gen))
        return;
    char *copy = malloc(len + 1), *old = NULL;
    if (copy == NULL)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    size_t s = set_of(job);
    int64_t now = sf_time_mono_ms();
    pthread_mutex_lock(lock_of(c, s));
    entry *e = victim(c, s, job, user, ticket.gen, now);
    int newer_held = holds(e, job, user) && e->expires_ms > now && e->gen == ticket.gen && e->seq > ticket.seq;
    if (ticket.seq > atomic_load(&c->barrier) && !newer_held) {
        old = fill(e, job, user, copy, len, now + ttl, ticket);
        e->used = ++c->used[s];
        copy = NULL;
    }
    pthread_mutex_unlock(lock_of(c, s));
    free(old);
    free(copy);
}

void api_jobcache_forget(api_jobcache *c, const char *job_id)
{
    unsigned char job[ID_BYTES];
    if (c->entries == NULL || !uuid_bytes(job_id, job))
        return;
    size_t s = set_of(job);
    pthread_mutex_lock(lock_of(c, s));
    uint64_t now = atomic_fetch_add(&c->clock, 1) + 1, b = atomic_load(&c->barrier);
    while (b < now && !atomic_compare_exchange_weak(&c->barrier, &b, now))
        ;
    for (int w = 0; w < API_JOBCACHE_WAYS; w++) {
        entry *e = &c->entries[s * API_JOBCACHE_WAYS + w];
        if (memcmp(e->job, job, ID_BYTES) == 0)
            e->expires_ms = 0;
    }
    pthread_mutex_unlock(lock_of(c, s));
}
