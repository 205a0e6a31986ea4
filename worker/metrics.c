/*
 * metrics: what sf-worker counts for Prometheus (served by the METRICS_PORT
 * listener, sf/opsd.h), and its readiness.
 *
 * Counted where the fact is known: a job's queue wait when the claimer hands
 * it to a slot (queued_at to the claim, PostgreSQL's clock); its run time,
 * terminal status and retries when the completer's fenced write took effect
 * (an outcome whose lease was lost, or a release on drain, is not a run of
 * the job that counts). The gauges are read from the slots at each scrape.
 * Every series of a known label value exists from the start at zero, so
 * rate() and increase() work from the first scrape.
 */
#include <stdio.h>
#include <string.h>

#include "worker.h"

/* The platform's dashboards use these bounds (seconds). */
static const double DURATION_BUCKETS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
/* A wait may last as long as a backlog: up to an hour. */
static const double WAIT_BUCKETS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
                                      5,     10,    30,   60,    120,  300, 600,  1800, 3600};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const sf_metric_def DEFS[WRK_METRIC_COUNT] = {
    [WRK_METRIC_DURATION] = {"backtest_duration_seconds",
                             SF_METRIC_HISTOGRAM,
                             "Run time of one attempt of a job on a worker (load, indicators, simulation), by kind.",
                             {"kind", NULL, NULL, NULL},
                             DURATION_BUCKETS,
                             N_OF(DURATION_BUCKETS)},
    [WRK_METRIC_LOGIC] = {"logic_executions_total",
                          SF_METRIC_COUNTER,
                          "Logic executions (cron firings) that ended, by the schedule whose stored logic ran "
                          "and terminal status.",
                          {"logic_id", "status", NULL, NULL},
                          NULL,
                          0},
    [WRK_METRIC_COMPLETED] = {"sf_jobs_completed_total",
                              SF_METRIC_COUNTER,
                              "Jobs this worker brought to a terminal status, by kind and status.",
                              {"kind", "status", NULL, NULL},
                              NULL,
                              0},
    [WRK_METRIC_RETRIES] = {"sf_job_retries_total",
                            SF_METRIC_COUNTER,
                            "Attempts that failed transiently and went back to pending for a retry.",
                            {NULL, NULL, NULL, NULL},
                            NULL,
                            0},
    [WRK_METRIC_WAIT] = {"sf_job_queue_wait_seconds",
                         SF_METRIC_HISTOGRAM,
                         "Time from a job's relay to Redis (queued) to its claim by this worker (started).",
                         {NULL, NULL, NULL, NULL},
                         WAIT_BUCKETS,
                         N_OF(WAIT_BUCKETS)},
    [WRK_METRIC_RUNNING] =
        {"sf_jobs_running", SF_METRIC_GAUGE, "Jobs this worker holds and runs now.", {NULL, NULL, NULL, NULL}, NULL, 0},
    [WRK_METRIC_THREADS] = {"sf_worker_threads",
                            SF_METRIC_GAUGE,
                            "Runner threads by state (idle, running, draining); they sum to WORKER_THREADS.",
                            {"state", NULL, NULL, NULL},
                            NULL,
                            0},
};

static const char *const KINDS[] = {"backtest", "logic_execution"};
static const char *const FINAL[] = {"succeeded", "failed", "dead", "cancelled"};
static const char *const THREAD_STATES[] = {"idle", "running", "draining"};

sf_status wrk_metrics_new(sf_metrics **out, sf_err *err)
{
    sf_status st = sf_metrics_new(DEFS, WRK_METRIC_COUNT, WRK_METRIC_SERIES, out, err);
    for (size_t k = 0; k < N_OF(KINDS) && st == SF_OK; k++) {
        const char *kind[] = {KINDS[k]};
        st = sf_metrics_touch(*out, WRK_METRIC_DURATION, kind, err);
        for (size_t s = 0; s < N_OF(FINAL) && st == SF_OK; s++) {
            const char *ks[] = {KINDS[k], FINAL[s]};
            st = sf_metrics_touch(*out, WRK_METRIC_COMPLETED, ks, err);
        }
    }
    for (size_t s = 0; s < N_OF(THREAD_STATES) && st == SF_OK; s++) {
        const char *state[] = {THREAD_STATES[s]};
        st = sf_metrics_set(*out, WRK_METRIC_THREADS, state, 0, err);
    }
    if (st == SF_OK)
        st = sf_metrics_touch(*out, WRK_METRIC_RETRIES, NULL, err);
    if (st == SF_OK)
        st = sf_metrics_touch(*out, WRK_METRIC_WAIT, NULL, err);
    if (st == SF_OK)
        st = sf_metrics_set(*out, WRK_METRIC_RUNNING, NULL, 0, err);
    if (st != SF_OK) {
        sf_metrics_free(*out);
        *out = NULL;
    }
    return st;
}

void wrk_metrics_started(wrk *w, const sf_job *job)
{
    if (w->metrics != NULL && job->queue_wait_us >= 0)
        sf_metrics_observe(w->metrics, WRK_METRIC_WAIT, NULL, (double)job->queue_wait_us / 1e6, NULL);
}

static int is_final(const char *status)
{
    for (size_t s = 0; s < N_OF(FINAL); s++)
        if (strcmp(status, FINAL[s]) == 0)
            return 1;
    return 0;
}

/* logic_executions_total: the schedule's id (a bounded, stored id, never
 * text from a request); past the registry's room, "other". */
static void count_logic(wrk *w, int64_t schedule_id, const char *status)
{
    char id[32] = "inline";
    if (schedule_id > 0)
        snprintf(id, sizeof id, "%lld", (long long)schedule_id);
    const char *labels[] = {id, status};
    if (sf_metrics_add(w->metrics, WRK_METRIC_LOGIC, labels, 1, NULL) == SF_ERR_LIMIT) {
        const char *other[] = {"other", status};
        sf_metrics_add(w->metrics, WRK_METRIC_LOGIC, other, 1, NULL);
    }
}

void wrk_metrics_finished(wrk *w, const wrk_done *item, const sf_job_done *done)
{
    if (w->metrics == NULL || !done->applied)
        return;
    const char *kind[] = {item->kind};
    if (done->outcome != SF_JOB_RELEASED)
        sf_metrics_observe(w->metrics, WRK_METRIC_DURATION, kind, (double)item->run_ns / 1e9, NULL);
    if (strcmp(done->status, "pending") == 0) {
        if (done->outcome == SF_JOB_TRANSIENT)
            sf_metrics_add(w->metrics, WRK_METRIC_RETRIES, NULL, 1, NULL);
        return;
    }
    if (!is_final(done->status))
        return;
    const char *ks[] = {item->kind, done->status};
    sf_metrics_add(w->metrics, WRK_METRIC_COMPLETED, ks, 1, NULL);
    if (strcmp(item->kind, "logic_execution") == 0)
        count_logic(w, item->schedule_id, done->status);
}

void wrk_metrics_refresh(void *wv)
{
    wrk *w = wv;
    int held = 0, total = 0, stopping = 0;
    pthread_mutex_lock(&w->mu);
    total = w->n_slots;
    for (int i = 0; i < w->n_slots; i++)
        held += w->slots[i].state != SLOT_IDLE;
    stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    const char *idle[] = {"idle"}, *running[] = {"running"}, *draining[] = {"draining"};
    sf_metrics_set(w->metrics, WRK_METRIC_THREADS, idle, total - held, NULL);
    sf_metrics_set(w->metrics, WRK_METRIC_THREADS, running, stopping ? 0 : held, NULL);
    sf_metrics_set(w->metrics, WRK_METRIC_THREADS, draining, stopping ? held : 0, NULL);
    sf_metrics_set(w->metrics, WRK_METRIC_RUNNING, NULL, held, NULL);
}

int wrk_ready(void *wv, char *reason, size_t size)
{
    wrk *w = wv;
    pthread_mutex_lock(&w->mu);
    int stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    if (stopping)
        snprintf(reason, size, "draining: this worker claims no more jobs");
    return !stopping;
}
