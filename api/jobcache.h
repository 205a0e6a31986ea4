/*
 * sf-api: the in-process cache of jobs' JSON for GET /v1/jobs/{id} (issue
 * 13, item 9).
 *
 * A GET of a job cost one PostgreSQL round trip, and on this 2-core machine
 * that round trip (the backend's wake-up, the query, sf-api's wake-up) was
 * most of the CPU a request took. The cache keeps the answer PostgreSQL
 * built, keyed by (job id, user id): another user never finds a job here and
 * goes to PostgreSQL, which answers 404 as before; a 404 is never cached (a
 * job submitted through another sf-api appears at once).
 *
 * Freshness, bounded: an entry of a job in a final state (succeeded, failed,
 * dead, cancelled) lives final_ms (API_JOB_CACHE_SECONDS): such a row does
 * not change, except when it is deleted (retention, a failed sweep detail
 * asked for again) or edited by hand, which shows within that bound. Any
 * other job (pending, queued, running, or one with a signal whose webhook may
 * still be delivered) lives active_ms (API_JOB_CACHE_ACTIVE_MS): a worker's
 * or the scheduler's change of state publishes nothing sf-api hears, so it
 * shows within that bound. A change made through this sf-api shows at once:
 * POST /v1/jobs/{id}/cancel calls api_jobcache_forget for the job after its
 * transaction, a batch's cancel and a detail asked for again call
 * api_jobcache_clear. A read that began before such a call cannot put back
 * what it read: api_jobcache_ticket is taken before the database read, and
 * api_jobcache_put refuses a ticket older than the last forget or clear.
 * Two reads of one job put in the order they began, never the older last.
 *
 * Size: API_JOBCACHE_ENTRIES entries in sets of API_JOBCACHE_WAYS (the set
 * chosen by the job id's bytes), the least recently used way makes room; a
 * text longer than API_JOBCACHE_TEXT_MAX is not cached. At most about
 * ENTRIES x TEXT_MAX bytes (32 MB); a job's JSON is about 900 bytes (7 MB).
 * Threads: the sets are spread over API_JOBCACHE_LOCKS mutexes.
 *
 * Ownership: api_jobcache_new / api_jobcache_free; texts are copied in and out.
 */
#ifndef API_JOBCACHE_H
#define API_JOBCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define API_JOBCACHE_ENTRIES 8192
#define API_JOBCACHE_WAYS 8
#define API_JOBCACHE_LOCKS 64
#define API_JOBCACHE_TEXT_MAX 4096 /* bytes of a cached text, NUL excluded */

typedef struct api_jobcache api_jobcache;

/* What api_jobcache_ticket hands out, for api_jobcache_put. */
typedef struct api_jobcache_ticket_t {
    uint64_t seq, gen;
} api_jobcache_ticket_t;

/* A cache whose final jobs live final_ms and others active_ms (0 = such
 * jobs are not cached; both 0 = the cache is off: get misses, put does
 * nothing, the object is valid). */
sf_status api_jobcache_new(int64_t final_ms, int64_t active_ms, api_jobcache **out, sf_err *err);
/* Accepts NULL. */
void api_jobcache_free(api_jobcache *c);

/* Take before the database read whose answer is to be put. */
api_jobcache_ticket_t api_jobcache_ticket(api_jobcache *c);

/* 1 with the text copied to out (size >= API_JOBCACHE_TEXT_MAX + 1, NUL
 * terminated) and *len set when (job_id, user_id) is cached and fresh; else
 * 0. Ids are UUID texts (anything else misses). */
int api_jobcache_get(api_jobcache *c, const char *job_id, const char *user_id, char *out, size_t size, size_t *len);

/* Cache text for (job_id, user_id): final (1) or not (0) as described
 * above; nothing when the ticket is older than the last forget or clear, an
 * entry already holds a read that began later, the text is too long or
 * memory is short. */
void api_jobcache_put(api_jobcache *c, const char *job_id, const char *user_id, const char *text, size_t len, int final,
                      api_jobcache_ticket_t ticket);

/* Drop job_id's entry; reads begun before are not put back. */
void api_jobcache_forget(api_jobcache *c, const char *job_id);

/* Drop every entry (O(1)); reads begun before are not put back. */
void api_jobcache_clear(api_jobcache *c);

#endif
