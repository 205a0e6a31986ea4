/*
 * cronfire: fire due schedules (enabled, next_fire <= now()).
 *
 * Each schedule is handled in its own transaction: lock the schedule row
 * (SKIP LOCKED), check that our lease term still holds (FOR SHARE on the
 * leader row, so no other replica can take the lease until we commit), insert
 * (schedule_id, fire_time) into schedule_firings together with its
 * logic_execution job in ONE statement (the primary key turns a second
 * firing of the same time into nothing: ON CONFLICT DO NOTHING inserts no
 * job), advance next_fire, NOTIFY sf_jobs, commit.
 *
 * next_fire is the first firing due; the due firings are next_fire plus the
 * cron times in (next_fire, now]. Catch-up policy:
 *   none    fire the most recent due firing only if it is at most
 *           SCHED_CRON_GRACE_S late (on time); skip the others
 *   latest  fire only the most recent due firing
 *   all     fire every due firing, oldest first, SCHED_CRON_BATCH per tick
 *           (next_fire then points at the next one still due, so a long
 *           backlog drains over several ticks without starving others)
 * A schedule without next_fire gets the first cron time after now(). A cron
 * text that does not parse disables the schedule (logged with the reason).
 * Times come from PostgreSQL's now().
 *
 * Failing executions: before a due schedule fires, its newest
 * SF_SCHEDULE_MAX_FAILURES finished executions (fired at or after
 * failures_since, see migration 0010) are read; when every one of them
 * failed, the schedule is disabled instead of fired. Only status 'failed'
 * counts (an error in the logic or the data): a succeeded execution ends the
 * run of failures, and so do 'dead' and 'cancelled' ones, which say nothing
 * about the logic (an outage must never switch a user's schedule off). Both
 * disables store the reason in schedules.disabled_reason for the user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "sf/cron.h"

static const char due_sql[] = "SELECT id FROM schedules WHERE enabled AND (next_fire IS NULL OR next_fire <= now()) "
                              "ORDER BY next_fire NULLS FIRST, id LIMIT $1::int";

static const char lock_sql[] = "SELECT cron, catch_up, floor(extract(epoch FROM next_fire))::bigint, "
                               "  floor(extract(epoch FROM now()))::bigint "
                               "FROM schedules WHERE id = $1::bigint AND enabled "
                               "  AND (next_fire IS NULL OR next_fire <= now()) FOR UPDATE SKIP LOCKED";

static const char fence_sql[] = "SELECT 1 FROM scheduler_leader WHERE id = 1 AND holder = $1 AND term = $2::bigint "
                                "  AND expires_at > now() FOR SHARE";

static const char fire_sql[] =
    "WITH f AS ("
    "  INSERT INTO schedule_firings (schedule_id, fire_time, job_id) "
    "  SELECT $1::bigint, to_timestamp(t), gen_random_uuid() FROM unnest($2::bigint[]) AS t "
    "  ON CONFLICT DO NOTHING RETURNING job_id) "
    "INSERT INTO jobs (id, user_id, kind, status, logic, symbol, timeframe, schedule_id, logic_hash, logic_id, "
    "  logic_version) "
    "SELECT f.job_id, s.user_id, 'logic_execution', 'pending', s.logic, s.symbol, s.timeframe, "
    "  s.id, encode(sha256(convert_to(s.logic::text, 'UTF8')), 'hex'), s.logic_id, s.logic_version "
    "  FROM f JOIN schedules s ON s.id = $1::bigint "
    "RETURNING id";

static const char advance_sql[] = "UPDATE schedules SET next_fire = to_timestamp($2::bigint) WHERE id = $1::bigint";

static const char disable_sql[] = "UPDATE schedules SET enabled = false, disabled_reason = $2, disabled_at = now() "
                                  "WHERE id = $1::bigint";

/* The newest $2 finished executions counted: how many failed, the newest error. */
static const char streak_sql[] =
    "WITH last AS (SELECT j.status, j.error, f.fire_time FROM schedules s "
    "  JOIN schedule_firings f ON f.schedule_id = s.id AND f.created_at >= s.failures_since "
    "  JOIN jobs j ON j.id = f.job_id "
    "  WHERE s.id = $1::bigint AND j.status IN ('succeeded', 'failed', 'dead', 'cancelled') "
    "  ORDER BY f.fire_time DESC LIMIT $2::int) "
    "SELECT count(*) FILTER (WHERE status = 'failed'), "
    "  coalesce((array_agg(error ORDER BY fire_time DESC))[1], '') FROM last";

#define REASON_MAX (SF_ERR_MSG_MAX + 64)
#define REASON_ERROR_MAX 400 /* characters of the last execution's error kept in the reason */

/* A locked due schedule. */
typedef struct due {
    const char *id;
    sf_cron cron;
    const char *catch_up;
    int has_next;
    int64_t next_fire, now;
    int64_t times[SCHED_CRON_BATCH];
    size_t ntimes;
    int64_t new_next;
    int64_t skipped;
    char reason[REASON_MAX]; /* why it is disabled, when it is */
} due;

static sf_status next_after(const due *s, int64_t t, int64_t *out, sf_err *err)
{
    return sf_cron_next(&s->cron, t, out, err);
}

/* The due firings other than next_fire, per catch-up policy. */
static sf_status plan_firings(due *s, sf_err *err)
{
    s->ntimes = 0;
    if (!s->has_next)
        return next_after(s, s->now, &s->new_next, err);
    if (strcmp(s->catch_up, "all") == 0) {
        size_t n = 0;
        int more = 0;
        s->times[0] = s->next_fire;
        sf_status st =
            sf_cron_between(&s->cron, s->next_fire, s->now, s->times + 1, SCHED_CRON_BATCH - 1, &n, &more, err);
        if (st != SF_OK)
            return st;
        s->ntimes = n + 1;
        return next_after(s, more ? s->times[n] : s->now, &s->new_next, err);
    }
    int64_t last = s->next_fire;
    int found = 0;
    sf_status st = sf_cron_last(&s->cron, s->next_fire, s->now, &last, &found, err);
    if (st != SF_OK)
        return st;
    if (!found)
        last = s->next_fire;
    int on_time = s->now - last <= SCHED_CRON_GRACE_S;
    if (strcmp(s->catch_up, "latest") == 0 || on_time)
        s->times[s->ntimes++] = last;
    s->skipped = s->ntimes == 0 || last != s->next_fire; /* some due firing not fired */
    return next_after(s, s->now, &s->new_next, err);
}

static void format_times(const due *s, char *buf, size_t size)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, size - off, "{");
    for (size_t i = 0; i < s->ntimes && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? "," : "", (long long)s->times[i]);
    if (off < size)
        snprintf(buf + off, size - off, "}");
}

/* Insert the firings and their jobs; *fired gets the jobs inserted. */
static sf_status insert_firings(sched_duties *d, const due *s, int64_t *fired, sf_err *err)
{
    char arr[SCHED_CRON_BATCH * 22 + 4], nextbuf[24];
    format_times(s, arr, sizeof arr);
    const char *params[] = {s->id, arr};
    sf_db_res *res = NULL;
    *fired = 0;
    if (s->ntimes > 0) {
        sf_status st = sf_db_query(d->db, fire_sql, 2, params, &res, err);
        if (st != SF_OK)
            return st;
        *fired = sf_db_nrows(res);
        sf_db_res_free(res);
    }
    snprintf(nextbuf, sizeof nextbuf, "%lld", (long long)s->new_next);
    const char *aparams[] = {s->id, nextbuf};
    sf_status st = sf_db_query(d->db, advance_sql, 2, aparams, NULL, err);
    if (st == SF_OK && *fired > 0)
        st = sf_db_exec(d->db, "NOTIFY sf_jobs", err);
    return st;
}

/* Lock the schedule and check the lease; *ok = 0 when it is not ours to fire. */
static sf_status lock_due(sched_duties *d, due *s, sf_db_res **res, int *ok, sf_err *err)
{
    const char *params[] = {s->id};
    *ok = 0;
    sf_status st = sf_db_query(d->db, lock_sql, 1, params, res, err);
    if (st != SF_OK || sf_db_nrows(*res) != 1)
        return st;
    int64_t term = 0;
    if (!sched_leader_active(d->leader, &term))
        return SF_OK;
    char termbuf[24];
    snprintf(termbuf, sizeof termbuf, "%lld", (long long)term);
    const char *fparams[] = {d->leader->holder, termbuf};
    sf_db_res *fres = NULL;
    st = sf_db_query(d->db, fence_sql, 2, fparams, &fres, err);
    *ok = st == SF_OK && sf_db_nrows(fres) == 1;
    sf_db_res_free(fres);
    return st;
}

static sf_status disable_schedule(sched_duties *d, const char *id, const char *reason, sf_err *err)
{
    const char *params[] = {id, reason};
    return sf_db_query(d->db, disable_sql, 2, params, NULL, err);
}

/* Outside a transaction: the cron text of the schedule does not parse. */
static void disable_bad_cron(sched_duties *d, const char *id, const sf_err *why, sched_cron_stats *stats)
{
    char reason[REASON_MAX];
    sf_err err;
    snprintf(reason, sizeof reason, "invalid cron expression: %s", why->msg);
    if (disable_schedule(d, id, reason, &err) != SF_OK)
        return;
    stats->disabled++;
    sf_log_error(d->log, "schedule disabled: its cron expression is invalid", SF_LF_STR("schedule_id", id),
                 SF_LF_STR("error", why->msg));
}

/* *failing = 1 when the newest SF_SCHEDULE_MAX_FAILURES finished executions
 * of the locked schedule all failed; s->reason then says so. */
static sf_status failing_streak(sched_duties *d, due *s, int *failing, sf_err *err)
{
    int64_t max = d->cfg->schedule_max_failures;
    *failing = 0;
    if (max <= 0)
        return SF_OK;
    char maxbuf[24];
    snprintf(maxbuf, sizeof maxbuf, "%lld", (long long)max);
    const char *params[] = {s->id, maxbuf};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(d->db, streak_sql, 2, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 1 && strtoll(sf_db_get(res, 0, 0), NULL, 10) >= max) {
        *failing = 1;
        snprintf(s->reason, sizeof s->reason, "disabled after %lld consecutive failed executions; the last one: %.*s",
                 (long long)max, REASON_ERROR_MAX, sf_db_get(res, 0, 1));
    }
    sf_db_res_free(res);
    return st;
}

/* Read the locked row into s; *bad = 1 when the cron text is invalid. */
static sf_status read_due(const sf_db_res *res, due *s, int *bad, sf_err *err)
{
    *bad = 0;
    s->catch_up = sf_db_get(res, 0, 1);
    s->has_next = !sf_db_is_null(res, 0, 2);
    s->next_fire = s->has_next ? strtoll(sf_db_get(res, 0, 2), NULL, 10) : 0;
    s->now = strtoll(sf_db_get(res, 0, 3), NULL, 10);
    sf_status st = sf_cron_parse(sf_db_get(res, 0, 0), &s->cron, err);
    if (st != SF_OK)
        *bad = 1;
    else
        st = plan_firings(s, err);
    return st;
}

/* In the transaction, the row locked: disable the schedule when its
 * executions keep failing (*off = 1), else fire what is due. */
static sf_status fire_locked(sched_duties *d, due *s, const sf_db_res *res, int *bad, int *off, int64_t *fired,
                             sf_err *err)
{
    sf_status st = failing_streak(d, s, off, err);
    if (st == SF_OK && *off)
        return disable_schedule(d, s->id, s->reason, err);
    if (st == SF_OK)
        st = read_due(res, s, bad, err);
    if (st == SF_OK)
        st = insert_firings(d, s, fired, err);
    return st;
}

static sf_status fire_one(sched_duties *d, const char *id, sched_cron_stats *stats, sf_err *err)
{
    due s = {.id = id};
    sf_db_res *res = NULL;
    int ok = 0, bad = 0, off = 0;
    int64_t fired = 0;
    sf_status st = sf_db_begin(d->db, err);
    if (st == SF_OK)
        st = lock_due(d, &s, &res, &ok, err);
    if (st == SF_OK && ok)
        st = fire_locked(d, &s, res, &bad, &off, &fired, err);
    if (st == SF_OK && ok)
        st = sf_db_commit(d->db, err);
    sf_db_res_free(res);
    if (st != SF_OK || !ok)
        sf_db_rollback(d->db);
    if (bad) {
        disable_bad_cron(d, id, err, stats);
        return SF_OK;
    }
    if (st == SF_OK && ok && off) {
        stats->disabled++;
        sf_log_warn(d->log, "schedule disabled: its executions keep failing", SF_LF_STR("schedule_id", id),
                    SF_LF_STR("reason", s.reason));
    } else if (st == SF_OK && ok) {
        stats->schedules++;
        stats->fired += fired;
        stats->duplicates += (int64_t)s.ntimes - fired;
        stats->skipped += s.skipped;
    }
    return st;
}

sf_status sched_cron_pass(sched_duties *d, sched_cron_stats *stats, sf_err *err)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", SCHED_CRON_SCHEDULES);
    const char *params[] = {limit};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(d->db, due_sql, 1, params, &res, err);
    for (int i = 0; st == SF_OK && i < sf_db_nrows(res); i++) {
        if (!sched_leader_active(d->leader, NULL))
            break;
        st = fire_one(d, sf_db_get(res, i, 0), stats, err);
    }
    sf_db_res_free(res);
    return st;
}
