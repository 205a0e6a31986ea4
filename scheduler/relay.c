/*
 * relay: PostgreSQL -> Redis.
 *
 * Relay: in one transaction select pending rows whose run_at has come, fairly
 * across tenants (sf_job_relay_pending: round robin, a per-tenant share),
 * mark them queued, commit; THEN add their ids to Redis (ZADD NX: idempotent). The
 * commit comes first because a worker woken by the enqueue claims at once:
 * its claim (status = 'queued') does not see a row whose change to queued is
 * not committed yet, finds nothing, drops the id, and the job would stay
 * queued in PostgreSQL with no id in Redis. If the enqueue fails after the
 * commit, the rows are queued but not in Redis: rebuild_needed makes the
 * next tick add every queued job again (as after a flush).
 * Redis holds at most RELAY_MAX_READY ready ids; the rest waits in
 * PostgreSQL. Delayed retries need nothing else: they are pending rows whose
 * run_at is in the future until it is not.
 *
 * Rebuild: the incarnation key tells whether Redis still holds what this
 * leader put there. When it is missing (FLUSHALL, a restart without
 * persistence) or different (a failover, another leader), a new incarnation
 * is set FIRST and then every queued job is added again from PostgreSQL, in
 * pages by id. Setting it first means a flush during the rebuild is noticed
 * on the next tick; a rebuild cut short by an error is redone
 * (rebuild_needed stays set).
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "scheduler.h"
#include "sf/time.h"

/* Ids per relay transaction. One transaction selects fairly (every tenant's
 * first job comes before any tenant's second, so a newcomer is in the next
 * transaction whatever the backlog) and marks the rows queued; batches of
 * hundreds amortise its round trips and its commit. */
#define RELAY_BATCH 1000

/* Redis call failed: a broken connection marks Redis down. */
static sf_status redis_failed(sched_duties *d, sf_status st, const sf_err *err)
{
    if (st == SF_ERR_UNAVAILABLE)
        sched_duties_redis_down(d, err);
    return st;
}

/* One relay transaction of up to limit jobs (select fairly + mark queued +
 * commit), then their ids into Redis; *n gets how many. */
static sf_status relay_batch(sched_duties *d, sf_queue_entry *entries, size_t limit, size_t *n, sf_err *err)
{
    size_t added = 0;
    *n = 0;
    sf_status st = sf_job_relay_pending(d->db, SCHED_RELAY_PER_TENANT, limit, d->relay_turn++, entries, n, err);
    if (st != SF_OK || *n == 0)
        return st;
    st = sf_queue_enqueue(d->queue, entries, *n, &added, err);
    if (st != SF_OK) {
        d->rebuild_needed = 1; /* queued in PostgreSQL, maybe not in Redis */
        return redis_failed(d, st, err);
    }
    return SF_OK;
}

sf_status sched_relay_pass(sched_duties *d, int64_t *relayed, sf_err *err)
{
    sf_queue_entry entries[SF_JOB_BATCH_MAX]; /* 136 KB: threads have 8 MB stacks */
    *relayed = 0;
    d->relay_more = 0;
    for (int b = 0; b < SCHED_RELAY_BATCHES; b++) {
        if (d->queue == NULL || !sched_leader_active(d->leader, NULL))
            return SF_OK;
        sf_queue_depth depth;
        sf_status st = sf_queue_get_depth(d->queue, &depth, err);
        if (st != SF_OK)
            return redis_failed(d, st, err);
        int64_t room = d->cfg->relay_max_ready - depth.ready_total;
        d->relay_more = 1; /* Redis full, or the pass ends at its batch cap: come back soon */
        if (room <= 0)
            return SF_OK;
        size_t limit = room > RELAY_BATCH ? RELAY_BATCH : (size_t)room, n = 0;
        if ((st = relay_batch(d, entries, limit, &n, err)) != SF_OK)
            return st;
        *relayed += (int64_t)n;
        d->relay_more = n == limit;
        if (n < limit)
            return SF_OK;
    }
    return SF_OK;
}

static void new_incarnation(sched_duties *d)
{
    unsigned char r[8] = {0};
    int64_t term = 0;
    sched_leader_active(d->leader, &term);
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        int64_t t = sf_time_now_ms();
        memcpy(r, &t, sizeof r);
    }
    snprintf(d->incarnation, sizeof d->incarnation, "%.190s/%lld/%02x%02x%02x%02x%02x%02x%02x%02x", d->leader->holder,
             (long long)term, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* Re-enqueue every queued job, by pages of ids. */
static sf_status requeue_all(sched_duties *d, int64_t *jobs, int64_t *requeued, sf_err *err)
{
    sf_queue_entry entries[SF_JOB_BATCH_MAX]; /* 136 KB: threads have 8 MB stacks */
    char after[SF_QUEUE_ID_MAX] = "";
    for (;;) {
        if (!sched_leader_active(d->leader, NULL))
            return sf_err_set(err, SF_ERR_CANCELLED, "rebuild stopped: no longer leader");
        size_t n = 0, added = 0;
        sf_status st = sf_job_list_queued(d->db, after, SF_JOB_BATCH_MAX, entries, &n, err);
        if (st != SF_OK || n == 0)
            return st;
        if ((st = sf_queue_enqueue(d->queue, entries, n, &added, err)) != SF_OK)
            return redis_failed(d, st, err);
        *requeued += (int64_t)added;
        *jobs += (int64_t)n;
        snprintf(after, sizeof after, "%s", entries[n - 1].id);
        if (n < SF_JOB_BATCH_MAX)
            return SF_OK;
    }
}

sf_status sched_rebuild_check(sched_duties *d, int64_t *jobs, int64_t *requeued, int *rebuilt, sf_err *err)
{
    char current[SCHED_INCARNATION_MAX];
    int found = 0;
    *jobs = *requeued = 0;
    *rebuilt = 0;
    if (d->queue == NULL)
        return SF_OK;
    sf_status st = sf_queue_incarnation_get(d->queue, current, sizeof current, &found, err);
    if (st != SF_OK)
        return redis_failed(d, st, err);
    if (found && !d->rebuild_needed && strcmp(current, d->incarnation) == 0)
        return SF_OK;
    new_incarnation(d);
    if ((st = sf_queue_incarnation_set(d->queue, d->incarnation, err)) != SF_OK)
        return redis_failed(d, st, err);
    d->rebuild_needed = 1;
    if ((st = requeue_all(d, jobs, requeued, err)) != SF_OK)
        return st;
    d->rebuild_needed = 0;
    *rebuilt = 1;
    return SF_OK;
}
