/*
 * sf-api: the in-process cache of API keys (issue 13, item 9).
 *
 * Every /v1/ request presents a key; looking it up in PostgreSQL was one of
 * the two round trips of GET /v1/jobs/{id}. The cache maps a key's SHA-256
 * (computed anyway) to its user (id, email, tier, key id) for
 * API_KEY_CACHE_SECONDS (0 disables it: every request asks PostgreSQL, as
 * before). Only keys PostgreSQL accepted are cached: an unknown, malformed or
 * revoked key always goes to the database, so a new key is never shadowed
 * and guessing gains nothing (a miss costs what every request cost before).
 *
 * Size: API_KEYCACHE_ENTRIES entries in sets of API_KEYCACHE_WAYS, the set
 * chosen by the hash's first bytes (uniform: it is SHA-256); within a set the
 * least recently used entry makes room. Threads: the sets are spread over
 * API_KEYCACHE_LOCKS mutexes (a lookup holds one for a few compares), so the
 * httpd pool threads rarely wait on each other.
 *
 * Invalidation: `sfctl admin key revoke|rotate` and `sfctl admin user tier`
 * PUBLISH on sf:{QUEUE}:auth (sf_queue_publish_auth). A thread of sf-api
 * (api_keycache_listen) holds its own Redis connection SUBSCRIBEd to that
 * channel and, on any message, clears the whole cache (a generation counter
 * is bumped: O(1); a lookup that started before the clear cannot put back
 * what it read, since an entry carries the generation read before its
 * database lookup). Pub/sub is at most once, so: while the subscriber is not
 * subscribed (Redis down, reconnecting, not yet connected) the cache
 * answers nothing and every request goes to PostgreSQL, and each
 * (re)subscription clears it; a message lost otherwise (none is, on a live
 * connection) leaves an entry stale for at most API_KEY_CACHE_SECONDS. A
 * revocation done by hand in SQL publishes nothing: it takes effect within
 * API_KEY_CACHE_SECONDS.
 *
 * Ownership: api_keycache_new / api_keycache_free (stops the subscriber).
 */
#ifndef API_KEYCACHE_H
#define API_KEYCACHE_H

#include <stdint.h>

#include "sf/auth.h"
#include "sf/err.h"
#include "sf/log.h"

#define API_KEYCACHE_ENTRIES 4096
#define API_KEYCACHE_WAYS 4
#define API_KEYCACHE_LOCKS 64

typedef struct api_keycache api_keycache;

/* A cache whose entries live ttl_s seconds (0 = disabled: get always misses
 * and put does nothing, but the object is valid). */
sf_status api_keycache_new(int64_t ttl_s, api_keycache **out, sf_err *err);
/* Stops the subscriber (waits for it: at most a read wait of 200 ms and a
 * connection attempt), frees everything. Accepts NULL. */
void api_keycache_free(api_keycache *c);

/* Start the subscriber thread on redis_url's sf:{queue}:auth. Until it has
 * subscribed the cache misses. Nothing to do when the cache is disabled. */
sf_status api_keycache_listen(api_keycache *c, const char *redis_url, const char *queue, sf_log *log, sf_err *err);

/* The generation to hand to api_keycache_put: read it before the database
 * lookup whose answer is to be cached. */
uint64_t api_keycache_generation(api_keycache *c);

/* 1 with *user filled when hash is cached, fresh and of the current
 * generation (and the subscriber is listening); else 0. */
int api_keycache_get(api_keycache *c, const unsigned char hash[SF_AUTH_HASH_BYTES], sf_auth_user *user);

/* Cache user for hash, unless the cache was cleared since gen was read. */
void api_keycache_put(api_keycache *c, const unsigned char hash[SF_AUTH_HASH_BYTES], const sf_auth_user *user,
                      uint64_t gen);

/* Drop every entry (the subscriber does it on each message). */
void api_keycache_clear(api_keycache *c);

#endif
