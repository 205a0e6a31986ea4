/*
 * reaper: no job stays stuck behind a dead worker.
 *
 * PostgreSQL pass (independent of Redis): running rows whose lease_until has
 * passed go back to pending with backoff, to dead when their attempts are
 * spent, or to cancelled when a cancel was requested (sf_job_reap: FOR UPDATE
 * SKIP LOCKED, batched). The relay then brings the pending ones back.
 *
 * Redis pass: leases whose deadline is before Redis TIME. An id still
 * `queued` in PostgreSQL was claimed in Redis by a worker that died before
 * its PostgreSQL claim, or read optimistically by one that died before its
 * completion (a sweep member then spends an attempt: sf_job_lease_expired):
 * back to ready. Every other expired lease (the job ran, finished or was
 * reaped above) is just removed.
 */
#include <string.h>

#include "scheduler.h"

sf_status sched_reap_pg(sched_duties *d, sched_reap_stats *stats, sf_err *err)
{
    for (int b = 0; b < SCHED_REAP_BATCHES; b++) {
        if (!sched_leader_active(d->leader, NULL))
            return SF_OK;
        sf_job_reap_stats s = {0};
        sf_status st = sf_job_reap(d->db, SCHED_REAP_BATCH, &d->retry, &s, err);
        if (st != SF_OK)
            return st;
        stats->pg.retried += s.retried;
        stats->pg.dead += s.dead;
        stats->pg.cancelled += s.cancelled;
        if (s.retried + s.dead + s.cancelled < SCHED_REAP_BATCH)
            return SF_OK;
    }
    return SF_OK;
}

static int in_entries(const char *id, const sf_queue_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].id, id) == 0)
            return 1;
    return 0;
}

/* One batch of expired Redis leases; *n gets how many expired ids were seen. */
static sf_status reap_redis_batch(sched_duties *d, sched_reap_stats *stats, size_t *n, sf_err *err)
{
    sf_queue_id ids[SCHED_REAP_BATCH];
    sf_queue_entry entries[SCHED_REAP_BATCH];
    const char *ptrs[SCHED_REAP_BATCH], *drop[SCHED_REAP_BATCH];
    size_t m = 0, requeued = 0, ndrop = 0;
    sf_status st = sf_queue_expired(d->queue, SCHED_REAP_BATCH, ids, n, err);
    if (st != SF_OK || *n == 0)
        return st;
    for (size_t i = 0; i < *n; i++)
        ptrs[i] = ids[i].id;
    if ((st = sf_job_lease_expired(d->db, ptrs, *n, entries, &m, err)) != SF_OK)
        return st;
    if (m > 0 && (st = sf_queue_requeue(d->queue, entries, m, &requeued, err)) != SF_OK)
        return st;
    for (size_t i = 0; i < *n; i++)
        if (!in_entries(ptrs[i], entries, m))
            drop[ndrop++] = ptrs[i];
    if (ndrop > 0 && (st = sf_queue_ack(d->queue, drop, ndrop, err)) != SF_OK)
        return st;
    stats->redis_expired += (int64_t)*n;
    stats->redis_requeued += (int64_t)requeued;
    stats->redis_dropped += (int64_t)ndrop;
    return SF_OK;
}

sf_status sched_reap_redis(sched_duties *d, sched_reap_stats *stats, sf_err *err)
{
    for (int b = 0; b < SCHED_REAP_BATCHES; b++) {
        if (d->queue == NULL || !sched_leader_active(d->leader, NULL))
            return SF_OK;
        size_t n = 0;
        sf_status st = reap_redis_batch(d, stats, &n, err);
        if (st == SF_ERR_UNAVAILABLE && sf_redis_is_ok(d->redis) == 0)
            sched_duties_redis_down(d, err);
        if (st != SF_OK || n < SCHED_REAP_BATCH)
            return st;
    }
    return SF_OK;
}
