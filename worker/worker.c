/*
 * worker: thread start and drain, and the connection helpers every thread
 * uses (an outage of PostgreSQL or Redis is waited out with backoff, never
 * turned into a failed job).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "sf/time.h"

#include "worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

void wrk_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int wrk_is_stopping(wrk *w, const atomic_int *give_up)
{
    if (give_up)
        return atomic_load(give_up) != 0;
    pthread_mutex_lock(&w->mu);
    int s = w->background_stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

static int64_t next_backoff(int64_t ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

sf_db *wrk_db_connect(wrk *w, const char *who, const atomic_int *give_up)
{
    /* "sf-worker/claimer": pg_stat_activity tells the threads apart */
    char app[64];
    snprintf(app, sizeof app, "sf-worker/%s", who);
    /* index plans: jobs and results grow from empty (see job.c) */
    sf_db_opts o = {.connect_timeout_s = 5, .connect_attempts = 1, .application_name = app, .index_plans = 1};
    int64_t backoff = BACKOFF_MIN_MS;
    for (int logged = 0;; logged = 1) {
        sf_db *db = NULL;
        sf_err err = {0};
        if (sf_db_open(w->cfg->database_url, &o, &db, &err) == SF_OK)
            return db;
        if (!logged)
            sf_log_warn(w->log, "database unavailable; retrying", SF_LF_STR("thread", who),
                        SF_LF_STR("error", err.msg));
        if (wrk_is_stopping(w, give_up))
            return NULL;
        wrk_sleep_ms(backoff);
        backoff = next_backoff(backoff);
    }
}

sf_redis *wrk_redis_connect(wrk *w, const char *who, const atomic_int *give_up)
{
    char name[64]; /* "sf-worker/claimer" in CLIENT LIST */
    snprintf(name, sizeof name, "sf-worker/%s", who);
    sf_redis_opts o = {
        .connect_timeout_ms = 2000, .command_timeout_ms = 5000, .connect_attempts = 1, .client_name = name};
    int64_t backoff = BACKOFF_MIN_MS;
    for (int logged = 0;; logged = 1) {
        sf_redis *r = NULL;
        sf_err err = {0};
        if (sf_redis_open(w->cfg->redis_url, &o, &r, &err) == SF_OK)
            return r;
        if (!logged)
            sf_log_warn(w->log, "redis unavailable; retrying", SF_LF_STR("thread", who), SF_LF_STR("error", err.msg));
        if (wrk_is_stopping(w, give_up))
            return NULL;
        wrk_sleep_ms(backoff);
        backoff = next_backoff(backoff);
    }
}

int wrk_db_recover(wrk *w, sf_db *db, const char *who, const sf_err *why, const atomic_int *give_up)
{
    sf_log_warn(w->log, "database connection lost; reconnecting", SF_LF_STR("thread", who),
                SF_LF_STR("error", why ? why->msg : ""));
    int64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        sf_err err = {0};
        if (sf_db_reset(db, &err) == SF_OK) {
            sf_log_info(w->log, "database reconnected", SF_LF_STR("thread", who));
            return 1;
        }
        if (wrk_is_stopping(w, give_up))
            return 0;
        wrk_sleep_ms(backoff);
        backoff = next_backoff(backoff);
    }
}

int wrk_redis_recover(wrk *w, sf_redis *r, const char *who, const sf_err *why, const atomic_int *give_up)
{
    sf_log_warn(w->log, "redis connection lost; reconnecting", SF_LF_STR("thread", who),
                SF_LF_STR("error", why ? why->msg : ""));
    int64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        sf_err err = {0};
        if (sf_redis_reconnect(r, &err) == SF_OK) {
            sf_log_info(w->log, "redis reconnected", SF_LF_STR("thread", who));
            return 1;
        }
        if (wrk_is_stopping(w, give_up))
            return 0;
        wrk_sleep_ms(backoff);
        backoff = next_backoff(backoff);
    }
}

/* ---- start and drain ---------------------------------------------------- */

int wrk_start(wrk *w, sf_err *err)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    pthread_cond_init(&w->tick_cv, NULL);
    pthread_cond_init(&w->hook_cv, NULL);
    w->n_slots = (int)w->cfg->threads;
    w->slots = calloc((size_t)w->n_slots, sizeof *w->slots);
    if (w->slots == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory"), -1;
    for (int i = 0; i < w->n_slots; i++) {
        w->slots[i].w = w;
        w->slots[i].index = i;
        pthread_cond_init(&w->slots[i].cv, NULL);
        atomic_init(&w->slots[i].cancel, 0);
        if (pthread_create(&w->slots[i].thread, NULL, wrk_runner_main, &w->slots[i]) != 0)
            return sf_err_sys(err, SF_ERR_INTERNAL, errno, "could not start a runner thread"), -1;
    }
    if (pthread_create(&w->completer, NULL, wrk_completer_main, w) != 0 ||
        pthread_create(&w->heartbeat, NULL, wrk_heartbeat_main, w) != 0 ||
        pthread_create(&w->webhook, NULL, wrk_webhook_main, w) != 0 ||
        pthread_create(&w->cancels, NULL, wrk_cancels_main, w) != 0 ||
        pthread_create(&w->claimer, NULL, wrk_claimer_main, w) != 0)
        return sf_err_sys(err, SF_ERR_INTERNAL, errno, "could not start a thread"), -1;
    return 0;
}

/* Locked. */
static int busy_slots(const wrk *w)
{
    int n = 0;
    for (int i = 0; i < w->n_slots; i++)
        n += w->slots[i].state != SLOT_IDLE;
    return n;
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* Wait up to drain_seconds for the busy slots, then release the rest. */
static void drain_slots(wrk *w)
{
    int64_t deadline = sf_time_mono_ms() + w->cfg->drain_seconds * 1000;
    pthread_mutex_lock(&w->mu);
    while (busy_slots(w) > 0 && sf_time_mono_ms() < deadline)
        timed_wait(&w->idle_cv, &w->mu, 100);
    int released = 0;
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].state == SLOT_IDLE)
            continue;
        w->slots[i].release = 1;
        atomic_store(&w->slots[i].cancel, 1);
        released++;
    }
    pthread_mutex_unlock(&w->mu);
    if (released)
        sf_log_info(w->log, "drain time is up; releasing running jobs", SF_LF_INT("jobs", released));
}

/* The outcome budget's use and the process's peak memory, at the end. */
static void log_memory(wrk *w)
{
    struct rusage ru;
    int64_t peak_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss : -1; /* Linux: KiB */
    sf_log_info(
        w->log, "memory", SF_LF_INT("peak_rss_kb", peak_kb), SF_LF_INT("outcomes_peak", (int64_t)w->held_count_peak),
        SF_LF_INT("outcome_bytes_peak", (int64_t)w->held_bytes_peak), SF_LF_INT("budget_pauses", w->budget_pauses));
}

void wrk_drain_and_stop(wrk *w)
{
    atomic_store(&w->claim_stop, 1);
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    for (int i = 0; i < w->n_slots; i++)
        pthread_cond_signal(&w->slots[i].cv);
    pthread_cond_broadcast(&w->idle_cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->claimer, NULL);
    drain_slots(w);
    for (int i = 0; i < w->n_slots; i++)
        pthread_join(w->slots[i].thread, NULL);
    pthread_mutex_lock(&w->mu);
    w->runners_done = 1;
    w->background_stop = 1;
    pthread_cond_broadcast(&w->done_cv);
    pthread_cond_broadcast(&w->tick_cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->completer, NULL);
    pthread_join(w->heartbeat, NULL);
    pthread_join(w->cancels, NULL);
    pthread_mutex_lock(&w->mu); /* every signal is committed: one last webhook pass */
    w->hook_stop = 1;
    pthread_cond_broadcast(&w->hook_cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->webhook, NULL);
    log_memory(w);
    pthread_mutex_lock(&w->mu); /* the metrics listener may read the slots until it stops */
    for (int i = 0; i < w->n_slots; i++)
        pthread_cond_destroy(&w->slots[i].cv);
    free(w->slots);
    w->slots = NULL;
    w->n_slots = 0;
    pthread_mutex_unlock(&w->mu);
}

void wrk_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    timed_wait(cv, mu, ms);
}
