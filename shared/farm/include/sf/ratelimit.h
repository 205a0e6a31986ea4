/*
 * ratelimit: a token bucket per API key in Redis, for sf-api's per-key
 * request rate limit.
 *
 * A bucket holds at most burst tokens and gains rate tokens a second; a
 * request takes one. The whole step (refill from the time elapsed, take,
 * store, expire) is one Lua script on one key, sf:{QUEUE}:rate:<key id>
 * (declared in KEYS, in the queue's hash slot), timed by Redis TIME, so
 * concurrent requests of one key on any number of sf-api replicas never take
 * the same token and no caller's clock is involved. The key expires once the
 * bucket would be full again, so idle keys cost no memory.
 *
 * Errors: a Redis failure is returned as sf_redis returns it (the caller
 * decides whether to fail open); SF_ERR_INVALID for rate or burst < 1.
 * Thread safety: none inside; each thread passes its own connection and its
 * own script (which caches the script's SHA).
 */
#ifndef SF_RATELIMIT_H
#define SF_RATELIMIT_H

#include <stdint.h>

#include "sf/err.h"
#include "sf/redis.h"

/* The Lua source; give each thread an sf_redis_script {SF_RATELIMIT_LUA}. */
extern const char SF_RATELIMIT_LUA[];

typedef struct sf_ratelimit_result {
    int allowed;       /* 1: a token was taken */
    int64_t remaining; /* whole tokens left after this request */
    int64_t retry_ms;  /* refused: when the next token is there; else 0 */
    int64_t full_ms;   /* when the bucket is full again */
} sf_ratelimit_result;

/* Take one token from the bucket of key_id in queue's namespace. */
sf_status sf_ratelimit_take(sf_redis *r, sf_redis_script *script, const char *queue, int64_t key_id, int64_t rate,
                            int64_t burst, sf_ratelimit_result *out, sf_err *err);

#endif
