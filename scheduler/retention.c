/*
 * retention: delete what is older than SF_RETENTION_DAYS, in batches so no
 * statement holds many locks or runs long:
 *   jobs in a final state (succeeded, failed, dead, cancelled) whose
 *     finished_at is older (results and signals go with them: ON DELETE
 *     CASCADE; schedule_firings.job_id becomes NULL);
 *   batches created before the cutoff with no job left;
 *   schedule_firings recorded (created_at) before the cutoff: by record
 *     age, not fire_time, so a catch-up firing of an old time is kept.
 * Rows locked by someone else are skipped (SKIP LOCKED) and taken next time.
 */
#include <stdio.h>
#include <stdlib.h>

#include "scheduler.h"

static const char delete_jobs_sql[] = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs "
                                      "  WHERE finished_at < now() - make_interval(days => $1::int) "
                                      "    AND status IN ('succeeded', 'failed', 'dead', 'cancelled') "
                                      "  ORDER BY finished_at LIMIT $2::int FOR UPDATE SKIP LOCKED)";

static const char delete_batches_sql[] = "DELETE FROM batches WHERE id IN (SELECT b.id FROM batches b "
                                         "  WHERE b.created_at < now() - make_interval(days => $1::int) "
                                         "    AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id) "
                                         "  LIMIT $2::int FOR UPDATE SKIP LOCKED)";

static const char delete_firings_sql[] = "DELETE FROM schedule_firings WHERE (schedule_id, fire_time) IN ("
                                         "  SELECT schedule_id, fire_time FROM schedule_firings "
                                         "  WHERE created_at < now() - make_interval(days => $1::int) "
                                         "  LIMIT $2::int FOR UPDATE SKIP LOCKED)";

/* Run one batched DELETE until it deletes less than a batch. */
static sf_status delete_loop(sched_duties *d, const char *sql, int64_t *count, sf_err *err)
{
    char days[24], limit[24];
    snprintf(days, sizeof days, "%lld", (long long)d->cfg->retention_days);
    snprintf(limit, sizeof limit, "%d", SCHED_RETENTION_BATCH);
    const char *params[] = {days, limit};
    for (int b = 0; b < SCHED_RETENTION_BATCHES; b++) {
        if (!sched_leader_active(d->leader, NULL))
            return SF_OK;
        sf_db_res *res = NULL;
        sf_status st = sf_db_query(d->db, sql, 2, params, &res, err);
        int64_t n = st == SF_OK ? sf_db_affected(res) : 0;
        sf_db_res_free(res);
        if (st != SF_OK)
            return st;
        *count += n;
        if (n < SCHED_RETENTION_BATCH)
            return SF_OK;
    }
    return SF_OK;
}

sf_status sched_retention_pass(sched_duties *d, sched_retention_stats *stats, sf_err *err)
{
    sf_status st = delete_loop(d, delete_jobs_sql, &stats->jobs, err);
    if (st == SF_OK)
        st = delete_loop(d, delete_batches_sql, &stats->batches, err);
    if (st == SF_OK)
        st = delete_loop(d, delete_firings_sql, &stats->firings, err);
    return st;
}
