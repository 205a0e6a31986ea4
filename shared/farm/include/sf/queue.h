/*
 * queue: the Redis side of job dispatch (a cache of job ids; PostgreSQL is the
 * record, see sf/job.h). Redis never holds payloads or results.
 *
 * Keys of queue NAME all share the hash tag {NAME} (one Cluster slot), and
 * their set is fixed: every script is given, in KEYS, every key it touches
 * (Redis's scripting contract; Cluster, managed services and proxies that
 * check declared keys accept the scripts). No key name depends on a tenant.
 *   sf:{NAME}:ready        ZSET, every score 0, members <tenant> NUL <score in
 *                          16 digits> <id>: ordered by tenant, then band,
 *                          then age, then id; a tenant's ready ids are one
 *                          lexicographic range (ZRANGEBYLEX)
 *   sf:{NAME}:ids          ZSET job id -> score, one per id in `ready`: makes
 *                          enqueue idempotent per id, counts ids per band
 *   sf:{NAME}:tenants      LIST of tenants with ready work, rotated (round robin)
 *   sf:{NAME}:tset         SET mirroring `tenants`, so a tenant is listed once
 *   sf:{NAME}:wake         LIST of wake tokens (one per id added; trimmed)
 *   sf:{NAME}:leases       ZSET job id -> lease deadline ms (Redis TIME)
 *   sf:{NAME}:incarnation  STRING set by the scheduler leader
 *   sf:{NAME}:cancel       PUB/SUB channel of job ids whose cancel was requested
 *   sf:{NAME}:auth         PUB/SUB channel: an API key was revoked or a user's
 *                          tier changed (sfctl admin); each sf-api drops its
 *                          cache of keys (api/keycache.h)
 *   sf:{NAME}:workers      ZSET worker name -> deadline ms (Redis TIME) by
 *                          which its next heartbeat is due: the live workers
 * A job's score is priority * 1e13 + created_at_ms (sf_queue_score).
 *
 * Every multi-key change is one Lua script (atomic), run by EVALSHA with a
 * NOSCRIPT fallback (sf_redis_eval). Times are Redis TIME, never the caller's
 * clock. Claim takes, for up to max ids, the next tenant from `tenants`, takes
 * the first id of its range of `ready` (its best band, then its oldest),
 * leases it, and puts the tenant back at the tail while it has work: fair
 * across tenants (a tenant waits behind at most one id of each other tenant
 * with ready work), priority then age within one; a tenant's priority never
 * lets it jump another tenant. Each claimed id also consumes one wake token.
 * Why not one score-ordered set (start-time fair queuing): see queue.c.
 *
 * Failure behaviour: SF_ERR_UNAVAILABLE when Redis is unreachable (reconnect
 * the sf_redis with sf_redis_reconnect and retry; nothing was half-done
 * because scripts are atomic), SF_ERR_REDIS for an error reply, SF_ERR_LIMIT
 * for more than SF_QUEUE_BATCH_MAX ids, SF_ERR_INVALID for an id or tenant
 * too long or empty or a score outside [0, SF_QUEUE_SCORE_LIMIT).
 *
 * Thread safety: an sf_queue caches script SHAs and borrows one sf_redis
 * connection; use it from one thread at a time (one per thread, cheap).
 * Ownership: sf_queue_new returns a queue freed by sf_queue_free (accepts
 * NULL); the sf_redis stays the caller's and must outlive the queue.
 */
#ifndef SF_QUEUE_H
#define SF_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"
#include "sf/redis.h"

#define SF_QUEUE_NAME_MAX 64        /* bytes of a queue name, NUL included */
#define SF_QUEUE_ID_MAX 64          /* bytes of a job id, NUL included */
#define SF_QUEUE_TENANT_MAX 64      /* bytes of a tenant (user) id, NUL included */
#define SF_QUEUE_BATCH_MAX 1000     /* ids in one call */
#define SF_QUEUE_WAKE_MAX 10000     /* wake tokens kept at most */
#define SF_QUEUE_PRIORITY_BAND 1e13 /* score = priority * band + created_at_ms */
#define SF_QUEUE_PRIORITIES 3       /* 0 high, 1 normal, 2 low */
#define SF_QUEUE_SCORE_LIMIT 1e15   /* scores are integers (rounded) in [0, this) */

typedef struct sf_queue sf_queue;

/* A job id on its way into (or out of) the ready set, with its tenant. */
typedef struct sf_queue_entry {
    char id[SF_QUEUE_ID_MAX];
    char tenant[SF_QUEUE_TENANT_MAX];
    double score; /* sf_queue_score(priority, created_at_ms), rounded to an integer */
} sf_queue_entry;

typedef struct sf_queue_id {
    char id[SF_QUEUE_ID_MAX];
} sf_queue_id;

typedef struct sf_queue_depth {
    int64_t ready[SF_QUEUE_PRIORITIES]; /* ready ids by priority band */
    int64_t ready_total;
    int64_t leased;  /* ids in the lease set (expired ones included) */
    int64_t tenants; /* tenants in the rotation (a tenant whose ids were all
                       * removed stays until a claim passes it) */
    int64_t wake;    /* wake tokens waiting */
} sf_queue_depth;

/* name: [A-Za-z0-9_.-]{1,63}. r is borrowed. */
sf_status sf_queue_new(const char *name, sf_redis *r, sf_queue **out, sf_err *err);
void sf_queue_free(sf_queue *q);

/* "sf:{NAME}:" (borrowed, lives as long as q). */
const char *sf_queue_prefix(const sf_queue *q);
/* "sf:{NAME}:cancel" (borrowed). */
const char *sf_queue_cancel_channel(const sf_queue *q);
/* "sf:{NAME}:auth" (borrowed). */
const char *sf_queue_auth_channel(const sf_queue *q);

/* priority (0..2) * 1e13 + created_at_ms: band first, then age; exact in a double. */
double sf_queue_score(int priority, int64_t created_at_ms);

/* Add ids to the ready set (idempotent per id, as ZADD NX: adding an id that
 * is already ready is a no-op, whatever its tenant or score), list their
 * tenants at the tail of the rotation when not listed, push one wake token
 * per id actually added (the wake list is trimmed to SF_QUEUE_WAKE_MAX).
 * *added (may be NULL) = ids new to the ready set. */
sf_status sf_queue_enqueue(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *added, sf_err *err);

/* Claim up to max ids fairly across tenants (see above) and lease each for
 * lease_ms from Redis TIME. ids receives *n (0..max) ids; 0 means nothing ready. */
sf_status sf_queue_claim(sf_queue *q, size_t max, int64_t lease_ms, sf_queue_id *ids, size_t *n, sf_err *err);

/* Block up to timeout_ms (>= 1) for a wake token (BLPOP). *woken = 1 when one
 * was taken, 0 on timeout. */
sf_status sf_queue_wait(sf_queue *q, int timeout_ms, int *woken, sf_err *err);

/* Drop the leases of ids (finished, dropped or released jobs). One command. */
sf_status sf_queue_ack(sf_queue *q, const char *const *ids, size_t n, sf_err *err);

/* Renew existing leases (ZADD XX) to TIME + lease_ms; *extended (may be NULL)
 * = leases that still existed. */
sf_status sf_queue_extend(sf_queue *q, const char *const *ids, size_t n, int64_t lease_ms, size_t *extended,
                          sf_err *err);

/* Up to max ids whose lease deadline is before Redis TIME (oldest first);
 * the leases are left in place (see sf_queue_requeue / sf_queue_ack). */
sf_status sf_queue_expired(sf_queue *q, size_t max, sf_queue_id *ids, size_t *n, sf_err *err);

/* Put leased ids back into the ready set (for expired leases of jobs still
 * `queued` in PostgreSQL): drops each lease, then adds as sf_queue_enqueue.
 * *requeued (may be NULL) = ids added to ready. */
sf_status sf_queue_requeue(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *requeued, sf_err *err);

/* Remove ready ids (cancellation; best effort: a claim of a cancelled job
 * finds nothing in PostgreSQL anyway). Only id and tenant of each entry are
 * used; an id given with another tenant than it was enqueued with stays.
 * *removed may be NULL. */
sf_status sf_queue_remove(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *removed, sf_err *err);

/* Ready ids by priority band, leased ids, tenants and wake tokens. One
 * read-only script, O(log n) in the ready ids. */
sf_status sf_queue_get_depth(sf_queue *q, sf_queue_depth *out, sf_err *err);

/* The incarnation string: *found = 0 when the key is missing (a flushed or
 * new Redis). value is truncated to size - 1 bytes. */
sf_status sf_queue_incarnation_get(sf_queue *q, char *value, size_t size, int *found, sf_err *err);
sf_status sf_queue_incarnation_set(sf_queue *q, const char *value, sf_err *err);

/* PUBLISH each id on the cancel channel (one pipeline). */
sf_status sf_queue_publish_cancel(sf_queue *q, const char *const *ids, size_t n, sf_err *err);

/* PUBLISH what (e.g. "key 42", "user <id>"; informative: a subscriber drops
 * every cached key on any message) on the auth channel. At most once: a
 * subscriber that is not connected misses it. */
sf_status sf_queue_publish_auth(sf_queue *q, const char *what, sf_err *err);

/* The worker registry: record that worker is alive until Redis TIME +
 * ttl_ms (its heartbeat calls this every tick); ttl_ms 0 removes it (a
 * clean stop). One script. name: 1..SF_QUEUE_ID_MAX - 1 bytes. */
sf_status sf_queue_worker_beat(sf_queue *q, const char *name, int64_t ttl_ms, sf_err *err);

/* Workers whose deadline has not passed (those past it are removed). One
 * script: ZREMRANGEBYSCORE and ZCARD. */
sf_status sf_queue_workers_live(sf_queue *q, int64_t *n, sf_err *err);

/* Delete every key of this queue (tests, decommissioning). One DEL. */
sf_status sf_queue_purge(sf_queue *q, sf_err *err);

#endif
