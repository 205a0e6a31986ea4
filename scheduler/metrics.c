/*
 * metrics: what sf-scheduler exports to Prometheus (the METRICS_PORT
 * listener, sf/opsd.h).
 *
 * sf_leader says whether this replica leads. The fleet gauges (queue depth,
 * jobs by status, live workers) describe the whole farm, so only the leader
 * exports them: Prometheus sums across pods, and two replicas exporting
 * them would count everything twice. The leader's duties thread computes
 * them every FLEET_METRICS_SECONDS at a bounded cost: one read-only Redis
 * script for the depth (O(log n)), one for the worker registry, and one
 * statement counting pending, queued and running jobs through their partial
 * indexes; the finished jobs (a COUNT over every finished row, which
 * retention bounds) are counted every FLEET_FINISHED_EVERY-th time only.
 * A scrape never queries anything. A replica that does not lead (or stops
 * leading) drops the fleet series at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

#define FLEET_FINISHED_EVERY 10

static const sf_metric_def DEFS[SCHED_METRIC_COUNT] = {
    [SCHED_METRIC_LEADER] = {"sf_leader",
                             SF_METRIC_GAUGE,
                             "1 on the scheduler replica that holds the leader lease, else 0.",
                             {NULL, NULL, NULL, NULL},
                             NULL,
                             0},
    [SCHED_METRIC_QUEUE_DEPTH] = {"sf_queue_depth",
                                  SF_METRIC_GAUGE,
                                  "Job ids ready in Redis by priority (leader only).",
                                  {"priority", NULL, NULL, NULL},
                                  NULL,
                                  0},
    [SCHED_METRIC_JOBS] = {"sf_jobs",
                           SF_METRIC_GAUGE,
                           "Jobs in PostgreSQL by status (leader only; finished statuses refreshed less often).",
                           {"status", NULL, NULL, NULL},
                           NULL,
                           0},
    [SCHED_METRIC_WORKERS] = {"sf_workers_live",
                              SF_METRIC_GAUGE,
                              "Workers whose heartbeat is current in the Redis worker registry (leader only).",
                              {NULL, NULL, NULL, NULL},
                              NULL,
                              0},
    [SCHED_METRIC_RETRIES] = {"sf_job_retries_total",
                              SF_METRIC_COUNTER,
                              "Jobs whose lease expired put back to pending for a retry by this replica's reaper.",
                              {NULL, NULL, NULL, NULL},
                              NULL,
                              0},
};

static const char *const PRIORITIES[SF_QUEUE_PRIORITIES] = {"high", "normal", "low"};
static const char *const LIVE[] = {"pending", "queued", "running"};

sf_status sched_metrics_new(sf_metrics **out, sf_err *err)
{
    sf_status st = sf_metrics_new(DEFS, SCHED_METRIC_COUNT, SCHED_METRIC_SERIES, out, err);
    if (st == SF_OK)
        st = sf_metrics_set(*out, SCHED_METRIC_LEADER, NULL, 0, err);
    if (st == SF_OK)
        st = sf_metrics_touch(*out, SCHED_METRIC_RETRIES, NULL, err);
    if (st != SF_OK) {
        sf_metrics_free(*out);
        *out = NULL;
    }
    return st;
}

void sched_metrics_drop_fleet(sf_metrics *m)
{
    if (m == NULL)
        return;
    sf_metrics_clear(m, SCHED_METRIC_QUEUE_DEPTH);
    sf_metrics_clear(m, SCHED_METRIC_JOBS);
    sf_metrics_clear(m, SCHED_METRIC_WORKERS);
}

void sched_metrics_refresh(void *dv)
{
    sched_duties *d = dv;
    int leading = sched_leader_active(d->leader, NULL);
    sf_metrics_set(d->metrics, SCHED_METRIC_LEADER, NULL, leading, NULL);
    if (!leading)
        sched_metrics_drop_fleet(d->metrics);
}

/* sf_jobs for the live statuses, each counted through its partial index. */
static sf_status count_live(sched_duties *d, sf_err *err)
{
    static const char SQL[] = "SELECT (SELECT count(*) FROM jobs WHERE status = 'pending'), "
                              "(SELECT count(*) FROM jobs WHERE status = 'queued'), "
                              "(SELECT count(*) FROM jobs WHERE status = 'running')";
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(d->db, SQL, 0, NULL, &res, err);
    for (int i = 0; st == SF_OK && i < 3 && sf_db_nrows(res) == 1; i++) {
        const char *status[] = {LIVE[i]};
        sf_metrics_set(d->metrics, SCHED_METRIC_JOBS, status, (double)strtoll(sf_db_get(res, 0, i), NULL, 10), NULL);
    }
    sf_db_res_free(res);
    return st;
}

/* sf_jobs for the finished statuses (each of them, 0 when none): one pass
 * over the finished rows (jobs_finished, which retention bounds). */
static sf_status count_finished(sched_duties *d, sf_err *err)
{
    static const char *const FINAL[] = {"succeeded", "failed", "dead", "cancelled"};
    static const char SQL[] = "SELECT status::text, count(*) FROM jobs WHERE finished_at IS NOT NULL GROUP BY 1";
    double n[4] = {0, 0, 0, 0};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(d->db, SQL, 0, NULL, &res, err);
    for (int r = 0; st == SF_OK && r < sf_db_nrows(res); r++)
        for (int k = 0; k < 4; k++)
            if (strcmp(sf_db_get(res, r, 0), FINAL[k]) == 0)
                n[k] = (double)strtoll(sf_db_get(res, r, 1), NULL, 10);
    sf_db_res_free(res);
    for (int k = 0; k < 4 && st == SF_OK; k++) {
        const char *status[] = {FINAL[k]};
        sf_metrics_set(d->metrics, SCHED_METRIC_JOBS, status, n[k], NULL);
    }
    return st;
}

/* Queue depth and live workers from Redis. */
static sf_status redis_fleet(sched_duties *d, sf_err *err)
{
    sf_queue_depth depth;
    int64_t workers = 0;
    sf_status st = sf_queue_get_depth(d->queue, &depth, err);
    if (st == SF_OK)
        st = sf_queue_workers_live(d->queue, &workers, err);
    if (st == SF_ERR_UNAVAILABLE)
        sched_duties_redis_down(d, err);
    if (st != SF_OK)
        return st;
    for (int p = 0; p < SF_QUEUE_PRIORITIES; p++) {
        const char *prio[] = {PRIORITIES[p]};
        sf_metrics_set(d->metrics, SCHED_METRIC_QUEUE_DEPTH, prio, (double)depth.ready[p], NULL);
    }
    sf_metrics_set(d->metrics, SCHED_METRIC_WORKERS, NULL, (double)workers, NULL);
    return SF_OK;
}

sf_status sched_metrics_fleet(sched_duties *d, sf_err *err)
{
    if (d->metrics == NULL)
        return SF_OK;
    sf_status st = count_live(d, err);
    if (st == SF_OK && d->fleet_passes++ % FLEET_FINISHED_EVERY == 0)
        st = count_finished(d, err);
    if (st == SF_OK && d->queue != NULL)
        st = redis_fleet(d, err);
    return st;
}

void sched_metrics_reaped(sched_duties *d, int64_t retried)
{
    if (d->metrics != NULL && retried > 0)
        sf_metrics_add(d->metrics, SCHED_METRIC_RETRIES, NULL, (double)retried, NULL);
}
