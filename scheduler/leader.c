/*
 * leader: the scheduler_leader row (id 1) as a lease judged by PostgreSQL's
 * now(). Advisory locks are not used: they break behind PgBouncer
 * transaction pooling.
 *
 * Acquire and renew are one upsert that succeeds only when the lease has
 * expired or is already ours; the term goes up on every change of hands (or
 * a re-acquire after our own lease lapsed) and stays while we renew. Renewal
 * runs every ttl/3; a failed renewal is retried every ttl/10.
 *
 * Self-fencing: before each attempt we read the monotonic clock (t0); the
 * database's now() for the statement is later than t0, so the lease ends
 * after t0 + ttl. We act only until t0 + ttl - margin (margin = ttl/5): a
 * leader that cannot renew (database gone, process stalled) stops before any
 * other replica can acquire the row.
 *
 * Followers read how long the lease has left and sleep until just after it
 * ends (at most ttl/3), and wake at once on NOTIFY sf_leader, which a
 * leader sends when it gives the lease up on shutdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"
#include "sf/time.h"

#define LEADER_CHANNEL "sf_leader"

static const char acquire_sql[] =
    "INSERT INTO scheduler_leader (id, holder, term, expires_at) "
    "VALUES (1, $1, 1, now() + make_interval(secs => $2::double precision)) "
    "ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, "
    "  term = scheduler_leader.term + CASE WHEN scheduler_leader.holder = EXCLUDED.holder "
    "    AND scheduler_leader.expires_at >= now() THEN 0 ELSE 1 END, "
    "  expires_at = EXCLUDED.expires_at "
    "WHERE scheduler_leader.expires_at < now() OR scheduler_leader.holder = EXCLUDED.holder "
    "RETURNING term";

static const char remaining_sql[] = "SELECT GREATEST(0, (extract(epoch FROM expires_at - now()) * 1000)::bigint) "
                                    "FROM scheduler_leader WHERE id = 1";

static const char release_sql[] =
    "WITH r AS (UPDATE scheduler_leader SET expires_at = now() - interval '1 millisecond' "
    "  WHERE id = 1 AND holder = $1 RETURNING 1) "
    "SELECT count(*), pg_notify('" LEADER_CHANNEL "', $1) FROM r";

static int64_t ttl_ms(const sched_leader *l)
{
    return l->cfg->leader_ttl_s * 1000;
}

static int64_t active_margin_ms(const sched_leader *l)
{
    return ttl_ms(l) / 5;
}

static int should_quit(sched_leader *l)
{
    return atomic_load(&l->quit);
}

int sched_leader_active(sched_leader *l, int64_t *term)
{
    int64_t until = atomic_load(&l->active_until_ms);
    if (term != NULL)
        *term = atomic_load(&l->term);
    return until != 0 && sf_time_mono_ms() < until;
}

/* *got = 1 and *term set when the lease is ours now. */
static sf_status try_acquire(sched_leader *l, sf_db *db, int *got, int64_t *term, sf_err *err)
{
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)l->cfg->leader_ttl_s);
    const char *params[] = {l->holder, ttl};
    sf_db_res *res = NULL;
    *got = 0;
    sf_status st = sf_db_query(db, acquire_sql, 2, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 1) {
        *got = 1;
        *term = strtoll(sf_db_get(res, 0, 0), NULL, 10);
    }
    sf_db_res_free(res);
    return st;
}

static int64_t lease_remaining_ms(sf_db *db)
{
    sf_db_res *res = NULL;
    sf_err err;
    int64_t ms = 0;
    if (sf_db_query(db, remaining_sql, 0, NULL, &res, &err) == SF_OK && sf_db_nrows(res) == 1)
        ms = strtoll(sf_db_get(res, 0, 0), NULL, 10);
    sf_db_res_free(res);
    return ms;
}

/* Wait up to ms, in slices, for quit or a NOTIFY on the leader channel. */
static void wait_for(sched_leader *l, sf_db *db, int64_t ms)
{
    int64_t end = sf_time_mono_ms() + ms;
    for (;;) {
        int64_t left = end - sf_time_mono_ms();
        if (left <= 0 || should_quit(l))
            return;
        int slice = left > 200 ? 200 : (int)left;
        int got = 0;
        char ch[32], payload[SCHED_HOLDER_MAX];
        sf_err err;
        if (db == NULL || !sf_db_is_ok(db) ||
            sf_db_wait_notify(db, slice, &got, ch, sizeof ch, payload, sizeof payload, &err) != SF_OK) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (got && strcmp(payload, l->holder) != 0)
            return; /* another replica gave the lease up: try now */
    }
}

static void became_leader(sched_leader *l, int64_t term)
{
    atomic_store(&l->term, term);
    sf_log_info(l->log, "became leader", SF_LF_STR("holder", l->holder), SF_LF_INT("term", term),
                SF_LF_INT("ttl_seconds", l->cfg->leader_ttl_s));
}

static void lost_leadership(sched_leader *l, const char *reason)
{
    atomic_store(&l->active_until_ms, 0);
    sf_log_warn(l->log, "lost leadership", SF_LF_STR("holder", l->holder), SF_LF_INT("term", atomic_load(&l->term)),
                SF_LF_STR("reason", reason));
}

/* One acquire/renew round; returns how long to wait before the next one. */
static int64_t lease_round(sched_leader *l, sf_db *db)
{
    int64_t t0 = sf_time_mono_ms(), term = 0;
    int got = 0, was = atomic_load(&l->active_until_ms) != 0;
    sf_err err;
    sf_err_clear(&err);
    sf_status st = try_acquire(l, db, &got, &term, &err);
    if (got) {
        if (!was || term != atomic_load(&l->term))
            became_leader(l, term);
        atomic_store(&l->active_until_ms, t0 + ttl_ms(l) - active_margin_ms(l));
        return ttl_ms(l) / 3;
    }
    if (st != SF_OK)
        sf_log_warn(l->log, "could not renew the leader lease", SF_LF_STR("error", err.msg), SF_LF_BOOL("leader", was));
    if (was && !sched_leader_active(l, NULL))
        lost_leadership(l, st != SF_OK ? "renewal failed before the lease ended" : "lease taken");
    else if (was && st == SF_OK)
        lost_leadership(l, "lease taken by another holder");
    if (atomic_load(&l->active_until_ms) != 0 || st != SF_OK)
        return ttl_ms(l) / 10 > 100 ? ttl_ms(l) / 10 : 100; /* still ours for a while: retry soon */
    int64_t left = lease_remaining_ms(db) + 20;
    return left < ttl_ms(l) / 3 ? left : ttl_ms(l) / 3;
}

static sf_status open_db(sched_leader *l, sf_db **out, sf_err *err)
{
    sf_db_opts opts = {.connect_timeout_s = 2,
                       .connect_attempts = 1,
                       .statement_timeout_ms = (int)(ttl_ms(l) / 3),
                       .application_name = "sf-scheduler-leader"};
    sf_status st = sf_db_open(l->cfg->database_url, &opts, out, err);
    if (st == SF_OK && (st = sf_db_exec(*out, "LISTEN " LEADER_CHANNEL, err)) != SF_OK) {
        sf_db_close(*out);
        *out = NULL;
    }
    return st;
}

static void release(sched_leader *l, sf_db *db)
{
    int was = atomic_load(&l->active_until_ms) != 0;
    atomic_store(&l->active_until_ms, 0);
    if (!was || db == NULL)
        return;
    const char *params[] = {l->holder};
    sf_err err;
    sf_db_res *res = NULL;
    if (sf_db_query(db, release_sql, 1, params, &res, &err) == SF_OK)
        sf_log_info(l->log, "released leadership", SF_LF_STR("holder", l->holder),
                    SF_LF_INT("term", atomic_load(&l->term)));
    else
        sf_log_warn(l->log, "could not release the leader lease", SF_LF_STR("error", err.msg));
    sf_db_res_free(res);
}

static void *leader_main(void *arg)
{
    sched_leader *l = arg;
    sf_db *db = NULL;
    int64_t backoff = 100;
    while (!should_quit(l)) {
        sf_err err;
        sf_err_clear(&err);
        if (db == NULL && open_db(l, &db, &err) != SF_OK) {
            sf_log_warn(l->log, "leader: could not connect to the database", SF_LF_STR("error", err.msg));
            if (atomic_load(&l->active_until_ms) != 0 && !sched_leader_active(l, NULL))
                lost_leadership(l, "database unreachable");
            wait_for(l, NULL, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        backoff = 100;
        int64_t wait = lease_round(l, db);
        if (!sf_db_is_ok(db)) {
            sf_db_close(db);
            db = NULL;
        }
        wait_for(l, db, wait);
    }
    release(l, db);
    sf_db_close(db);
    return NULL;
}

sf_status sched_leader_start(sched_leader *l, const sched_config *cfg, sf_log *log, const char *holder, sf_err *err)
{
    l->cfg = cfg;
    l->log = log;
    atomic_store(&l->quit, 0);
    atomic_store(&l->active_until_ms, 0);
    atomic_store(&l->term, 0);
    snprintf(l->holder, sizeof l->holder, "%s", holder);
    int rc = pthread_create(&l->thread, NULL, leader_main, l);
    if (rc != 0)
        return sf_err_sys(err, SF_ERR_INTERNAL, rc, "could not start the leader thread");
    pthread_setname_np(l->thread, "sched-leader");
    l->started = 1;
    return SF_OK;
}

void sched_leader_stop(sched_leader *l)
{
    if (!l->started)
        return;
    atomic_store(&l->quit, 1);
    pthread_join(l->thread, NULL);
    l->started = 0;
}
