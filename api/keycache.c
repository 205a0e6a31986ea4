/* sf-api: the cache of API keys and its invalidation subscriber; see keycache.h. */
#include "keycache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/queue.h"
#include "sf/redis.h"
#include "sf/time.h"

#define SETS (API_KEYCACHE_ENTRIES / API_KEYCACHE_WAYS)
#define WAIT_MS 200   /* a read of the subscription waits at most this, so a stop is noticed */
#define RETRY_MS 1000 /* between attempts to reach Redis */

typedef struct entry {
    unsigned char hash[SF_AUTH_HASH_BYTES];
    sf_auth_user user;
    int64_t expires_ms; /* monotonic; 0 = empty */
    uint64_t gen;
    uint64_t used; /* the set's clock when last read or written */
} entry;

struct api_keycache {
    int64_t ttl_ms;
    _Atomic uint64_t gen;
    atomic_int listening; /* the subscriber is subscribed: entries may be served */
    atomic_int stop;
    pthread_mutex_t locks[API_KEYCACHE_LOCKS];
    uint64_t clock[SETS]; /* under the set's lock */
    entry *entries;       /* SETS x WAYS */
    pthread_t thread;
    int started;
    char *redis_url;
    char queue[SF_QUEUE_NAME_MAX];
    sf_log *log;
};

sf_status api_keycache_new(int64_t ttl_s, api_keycache **out, sf_err *err)
{
    api_keycache *c = calloc(1, sizeof *c);
    if (c == NULL || (ttl_s > 0 && (c->entries = calloc(API_KEYCACHE_ENTRIES, sizeof *c->entries)) == NULL)) {
        free(c);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    c->ttl_ms = ttl_s * 1000;
    atomic_init(&c->gen, 1);
    atomic_init(&c->listening, 0);
    atomic_init(&c->stop, 0);
    for (int i = 0; i < API_KEYCACHE_LOCKS; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    *out = c;
    return SF_OK;
}

void api_keycache_free(api_keycache *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    if (c->started)
        pthread_join(c->thread, NULL);
    for (int i = 0; i < API_KEYCACHE_LOCKS; i++)
        pthread_mutex_destroy(&c->locks[i]);
    free(c->entries);
    free(c->redis_url);
    free(c);
}

uint64_t api_keycache_generation(api_keycache *c)
{
    return atomic_load(&c->gen);
}

void api_keycache_clear(api_keycache *c)
{
    atomic_fetch_add(&c->gen, 1);
}

static size_t set_of(const unsigned char *hash)
{
    return ((size_t)hash[0] | (size_t)hash[1] << 8) % SETS;
}

int api_keycache_get(api_keycache *c, const unsigned char hash[SF_AUTH_HASH_BYTES], sf_auth_user *user)
{
    if (c->ttl_ms == 0 || !atomic_load(&c->listening))
        return 0;
    size_t s = set_of(hash);
    uint64_t gen = atomic_load(&c->gen);
    int64_t now = sf_time_mono_ms();
    int hit = 0;
    pthread_mutex_t *mu = &c->locks[s % API_KEYCACHE_LOCKS];
    pthread_mutex_lock(mu);
    for (int w = 0; w < API_KEYCACHE_WAYS && !hit; w++) {
        entry *e = &c->entries[s * API_KEYCACHE_WAYS + w];
        if (e->gen == gen && e->expires_ms > now && sf_auth_hash_equal(e->hash, hash)) {
            *user = e->user;
            e->used = ++c->clock[s];
            hit = 1;
        }
    }
    pthread_mutex_unlock(mu);
    return hit;
}

/* The way of set s to write hash into: its own entry, else an empty,
 * expired or cleared one, else the least recently used. Under the set's lock. */
static entry *victim(api_keycache *c, size_t s, const unsigned char *hash, uint64_t gen, int64_t now)
{
    entry *set = &c->entries[s * API_KEYCACHE_WAYS], *free_way = NULL, *lru = &set[0];
    for (int w = 0; w < API_KEYCACHE_WAYS; w++) {
        entry *e = &set[w];
        if (e->expires_ms > 0 && memcmp(e->hash, hash, SF_AUTH_HASH_BYTES) == 0)
            return e;
        if (free_way == NULL && (e->expires_ms <= now || e->gen != gen))
            free_way = e;
        if (e->used < lru->used)
            lru = e;
    }
    return free_way ? free_way : lru;
}

void api_keycache_put(api_keycache *c, const unsigned char hash[SF_AUTH_HASH_BYTES], const sf_auth_user *user,
                      uint64_t gen)
{
    if (c->ttl_ms == 0 || gen != atomic_load(&c->gen))
        return; /* disabled, or cleared while the database answered: what it said may be old */
    size_t s = set_of(hash);
    int64_t now = sf_time_mono_ms();
    pthread_mutex_t *mu = &c->locks[s % API_KEYCACHE_LOCKS];
    pthread_mutex_lock(mu);
    entry *e = victim(c, s, hash, gen, now);
    memcpy(e->hash, hash, SF_AUTH_HASH_BYTES);
    e->user = *user;
    e->expires_ms = now + c->ttl_ms;
    e->gen = gen; /* a clear after the check above makes this entry stale at once */
    e->used = ++c->clock[s];
    pthread_mutex_unlock(mu);
}

/* ---- the subscriber ------------------------------------------------------------- */

static void pause_ms(api_keycache *c, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&c->stop); waited += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Connect (or reconnect) *r and SUBSCRIBE to the channel. */
static sf_status subscribe(api_keycache *c, sf_redis **r, const char *channel, sf_err *err)
{
    sf_status st = SF_OK;
    if (*r == NULL) {
        sf_redis_opts o = {.connect_timeout_ms = 2000,
                           .command_timeout_ms = 2000,
                           .connect_attempts = 1,
                           .client_name = "sf-api/keycache"};
        st = sf_redis_open(c->redis_url, &o, r, err);
    } else if (!sf_redis_is_ok(*r)) {
        st = sf_redis_reconnect(*r, err);
    }
    if (st != SF_OK)
        return st;
    const char *argv[] = {"SUBSCRIBE", channel};
    sf_redis_reply *rep = NULL;
    st = sf_redis_cmd(*r, 2, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

/* 1 when rep is a pub/sub message ["message", channel, text]. */
static int is_message(const sf_redis_reply *rep)
{
    if (rep == NULL || sf_redis_reply_type(rep) != SF_REDIS_ARRAY || sf_redis_reply_len(rep) != 3)
        return 0;
    const char *kind = sf_redis_reply_str(sf_redis_reply_at(rep, 0), NULL);
    return kind != NULL && strcmp(kind, "message") == 0;
}

/* Clear the cache on each message until the program ends or the connection fails. */
static void hear(api_keycache *c, sf_redis *r)
{
    while (!atomic_load(&c->stop)) {
        sf_redis_reply *rep = NULL;
        sf_err err = {0};
        sf_status st = sf_redis_read_wait(r, WAIT_MS, &rep, &err);
        if (st == SF_OK && is_message(rep)) {
            api_keycache_clear(c);
            const char *what = sf_redis_reply_str(sf_redis_reply_at(rep, 2), NULL);
            sf_log_info(c->log, "API key cache cleared", SF_LF_STR("change", what ? what : ""));
        }
        sf_redis_reply_free(rep);
        if (st != SF_OK) {
            sf_log_warn(c->log, "API key cache: lost the invalidation channel; keys go to the database",
                        SF_LF_STR("error", err.msg));
            return;
        }
    }
}

static void *listen_main(void *arg)
{
    api_keycache *c = arg;
    pthread_setname_np(pthread_self(), "sf-keycache");
    sf_queue *q = NULL;
    sf_redis *r = NULL;
    sf_err err = {0};
    if (sf_queue_new(c->queue, NULL, &q, &err) != SF_OK) {
        sf_log_error(c->log, "API key cache not started", SF_LF_STR("error", err.msg));
        return NULL;
    }
    int warned = 0;
    while (!atomic_load(&c->stop)) {
        if (subscribe(c, &r, sf_queue_auth_channel(q), &err) != SF_OK) {
            if (!warned++)
                sf_log_warn(c->log, "API key cache: could not subscribe; keys go to the database",
                            SF_LF_STR("error", err.msg));
            pause_ms(c, RETRY_MS);
            continue;
        }
        warned = 0;
        api_keycache_clear(c); /* whatever was published while away is lost */
        atomic_store(&c->listening, 1);
        sf_log_info(c->log, "API key cache listening", SF_LF_STR("channel", sf_queue_auth_channel(q)),
                    SF_LF_INT("ttl_seconds", c->ttl_ms / 1000));
        hear(c, r);
        atomic_store(&c->listening, 0);
        api_keycache_clear(c);
    }
    sf_redis_close(r);
    sf_queue_free(q);
    return NULL;
}

sf_status api_keycache_listen(api_keycache *c, const char *redis_url, const char *queue, sf_log *log, sf_err *err)
{
    if (c->ttl_ms == 0)
        return SF_OK;
    if (strlen(queue) >= sizeof c->queue || (c->redis_url = strdup(redis_url)) == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "could not start the API key cache: bad queue name or no memory");
    snprintf(c->queue, sizeof c->queue, "%s", queue);
    c->log = log;
    if (pthread_create(&c->thread, NULL, listen_main, c) != 0)
        return sf_err_set(err, SF_ERR_NOMEM, "could not start the API key cache's thread");
    c->started = 1;
    return SF_OK;
}
