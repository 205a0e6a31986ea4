/*
 * threads: the claimer, the completer and the heartbeat (see worker.h).
 *
 * Per job in the steady state: the claimer spends one Lua call and one
 * statement for all the ids it claims at once; the completer one fenced
 * statement (or transaction) and one ZREM for every batch of outcomes; the
 * heartbeat one UPDATE and one script per lease/3 for all live jobs.
 *
 * Members of sweeps whose members run here in less than SF_OPTIMISTIC_US on
 * average (after TINY_MIN_RUNS of them) are read optimistically instead of
 * claimed (sf_job_claim): for a 100-bar member the claim's row write cost
 * more than the run. Nothing is written until the completion, which commits
 * only if the row is still queued at attempt 0 (compare and set); a duplicate
 * run or a cancel in between writes nothing, as a stale fence does. The
 * heartbeat renews such jobs' Redis leases only: PostgreSQL has no lease for
 * them. A worker that dies leaves their Redis leases to expire; the reaper
 * then spends an attempt on each (sf_job_lease_expired) and requeues it, and
 * the next claim of it is a real one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker.h"

#define WAKE_WAIT_MS 1000

/* ---- claimer ------------------------------------------------------------ */

typedef struct claimer {
    wrk *w;
    sf_db *db;
    sf_redis *r;
    sf_queue *q;
    sf_queue_id ids[WRK_THREADS_MAX];
    sf_job jobs[WRK_THREADS_MAX];
    char tiny[WRK_BATCH_STATS][SF_JOB_ID_MAX];
    const char *tiny_ptrs[WRK_BATCH_STATS];
} claimer;

/* Locked. */
static int idle_slots(const wrk *w)
{
    int n = 0;
    for (int i = 0; i < w->n_slots; i++)
        n += w->slots[i].state == SLOT_IDLE;
    return n;
}

/* Block until a slot is idle or stopping; the number of idle slots. */
static int wait_idle(wrk *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->stopping && idle_slots(w) == 0)
        pthread_cond_wait(&w->idle_cv, &w->mu);
    int n = w->stopping ? 0 : idle_slots(w);
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Sweep members shorter than this on average are run several per woken
 * runner: waking a thread costs a few microseconds of the waker's and the
 * kernel's time (an inter-processor interrupt in a VM), as much as a 100-bar
 * member itself. */
#define TINY_JOB_NS 200000
#define TINY_PER_WAKE 8
#define TINY_MIN_RUNS 8

/* Hand claimed jobs to idle slots (one job per slot: claims never exceed the
 * idle slots, so in-flight jobs never exceed the threads) and wake their
 * runners. When members are tiny, only every TINY_PER_WAKE-th member's runner
 * is woken; a runner drains every assigned job nobody has started before it
 * sleeps (run.c: pick), so at least one woken runner sees each of them.
 * Backtests that are not sweep members always get their own runner at once.
 * Once the worker is stopping, runners may already have exited, so nothing is
 * assigned. Returns how many were. */
static size_t assign(wrk *w, sf_job *jobs, size_t n)
{
    pthread_mutex_lock(&w->mu);
    int tiny = w->run_ns_avg < TINY_JOB_NS;
    size_t k = 0, members = 0;
    for (int i = 0; i < w->n_slots && k < n && !w->stopping; i++) {
        if (w->slots[i].state != SLOT_IDLE)
            continue;
        const sf_job *j = &jobs[k++];
        int member = j->batch_id[0] != '\0';
        w->slots[i].job = *j;
        w->slots[i].state = SLOT_ASSIGNED;
        if (!tiny || !member || members++ % TINY_PER_WAKE == 0)
            pthread_cond_signal(&w->slots[i].cv); /* that runner alone: no herd of idle runners */
    }
    pthread_mutex_unlock(&w->mu);
    return k;
}

/* Jobs claimed in PostgreSQL that no runner will take (the worker began to
 * stop during the claim): give them back at once, fenced, without spending
 * the attempt, rather than leave them `running` until their lease expires. */
static void release_unassigned(claimer *c, sf_job *jobs, size_t n)
{
    sf_job_done done[WRK_THREADS_MAX];
    const char *ids[WRK_THREADS_MAX];
    for (size_t i = 0; i < n; i++) {
        memset(&done[i], 0, sizeof done[i]);
        snprintf(done[i].id, sizeof done[i].id, "%s", jobs[i].id);
        done[i].fence = jobs[i].fence;
        done[i].outcome = SF_JOB_RELEASED;
        done[i].optimistic = jobs[i].optimistic;
        done[i].worker = c->w->name;
        ids[i] = done[i].id;
    }
    sf_err err = {0};
    if (sf_job_complete(c->db, done, n, NULL, &err) != SF_OK)
        sf_log_warn(c->w->log, "could not release jobs claimed while stopping; their leases expire",
                    SF_LF_STR("error", err.msg));
    else if (sf_queue_ack(c->q, ids, n, &err) != SF_OK)
        sf_log_warn(c->w->log, "could not drop released leases", SF_LF_STR("error", err.msg));
    for (size_t i = 0; i < n; i++)
        sf_job_destroy(&jobs[i]);
}

/* Drop the Redis leases of ids PostgreSQL did not give us. */
static void drop_unclaimed(claimer *c, size_t n, size_t m)
{
    const char *drop[WRK_THREADS_MAX];
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        int got = 0;
        for (size_t j = 0; j < m && !got; j++)
            got = strcasecmp(c->ids[i].id, c->jobs[j].id) == 0;
        if (!got)
            drop[nd++] = c->ids[i].id;
    }
    sf_err err = {0};
    if (nd > 0 && sf_queue_ack(c->q, drop, nd, &err) != SF_OK)
        sf_log_warn(c->w->log, "could not drop unclaimed leases", SF_LF_STR("error", err.msg));
}

/* The sweeps whose members run here in less than SF_OPTIMISTIC_US on
 * average: copied into c->tiny; how many. */
static size_t tiny_batches(claimer *c)
{
    wrk *w = c->w;
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < WRK_BATCH_STATS; i++) {
        const wrk_batch_stat *b = &w->batch_stats[i];
        if (b->id[0] && b->runs >= TINY_MIN_RUNS && b->run_ns_avg < w->cfg->optimistic_us * 1000) {
            snprintf(c->tiny[n], sizeof c->tiny[n], "%s", b->id);
            c->tiny_ptrs[n] = c->tiny[n];
            n++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* The PostgreSQL claim of ids already leased in Redis; waits out an outage. */
static size_t claim_pg(claimer *c, size_t n)
{
    wrk *w = c->w;
    const char *ptrs[WRK_THREADS_MAX];
    for (size_t i = 0; i < n; i++)
        ptrs[i] = c->ids[i].id;
    size_t n_tiny = tiny_batches(c);
    for (;;) {
        size_t m = 0;
        sf_err err = {0};
        sf_status st = sf_job_claim(c->db, ptrs, n, w->name, w->lease_ms, c->tiny_ptrs, n_tiny,
                                    c->jobs, &m, &err);
        if (st == SF_OK)
            return m;
        if (st != SF_ERR_UNAVAILABLE) {
            sf_log_error(w->log, "could not claim jobs", SF_LF_STR("error", err.msg));
            wrk_sleep_ms(WAKE_WAIT_MS);
            return 0; /* the Redis leases expire and the reaper requeues the ids */
        }
        if (!wrk_db_recover(w, c->db, "claimer", &err, &w->claim_stop))
            return 0;
    }
}

/* One round: claim up to k ids, or wait for a wake token. */
static void claim_round(claimer *c, int k)
{
    wrk *w = c->w;
    size_t n = 0;
    sf_err err = {0};
    sf_status st = sf_queue_claim(c->q, (size_t)k, w->lease_ms, c->ids, &n, &err);
    if (st == SF_OK && n == 0) {
        int woken = 0;
        st = sf_queue_wait(c->q, WAKE_WAIT_MS, &woken, &err);
    }
    if (st == SF_ERR_UNAVAILABLE) {
        wrk_redis_recover(w, c->r, "claimer", &err, &w->claim_stop);
        return;
    }
    if (st != SF_OK) {
        sf_log_error(w->log, "could not claim from redis", SF_LF_STR("error", err.msg));
        wrk_sleep_ms(WAKE_WAIT_MS);
        return;
    }
    if (n == 0)
        return;
    size_t m = claim_pg(c, n);
    drop_unclaimed(c, n, m);
    size_t given = assign(w, c->jobs, m);
    if (given < m)
        release_unassigned(c, c->jobs + given, m - given);
}

void *wrk_claimer_main(void *arg)
{
    claimer *c = calloc(1, sizeof *c);
    wrk *w = arg;
    pthread_setname_np(pthread_self(), "sf-claim");
    if (c == NULL)
        return NULL;
    c->w = w;
    c->db = wrk_db_connect(w, "claimer", &w->claim_stop);
    c->r = c->db ? wrk_redis_connect(w, "claimer", &w->claim_stop) : NULL;
    sf_err err = {0};
    if (c->r && sf_queue_new(w->cfg->queue, c->r, &c->q, &err) != SF_OK)
        sf_log_error(w->log, "bad queue", SF_LF_STR("error", err.msg));
    for (int k; c->q && (k = wait_idle(w)) > 0;)
        claim_round(c, k < WRK_THREADS_MAX ? k : WRK_THREADS_MAX);
    sf_queue_free(c->q);
    sf_redis_close(c->r);
    sf_db_close(c->db);
    free(c);
    return NULL;
}

/* ---- completer ---------------------------------------------------------- */

typedef struct completer {
    wrk *w;
    sf_db *db;
    sf_redis *r;
    sf_queue *q;
    sf_job_done done[SF_JOB_BATCH_MAX];
    wrk_done *items[SF_JOB_BATCH_MAX];
    const char *ids[SF_JOB_BATCH_MAX];
} completer;

/* Take up to SF_JOB_BATCH_MAX outcomes; 0 when finished. */
static size_t take_batch(completer *c)
{
    wrk *w = c->w;
    pthread_mutex_lock(&w->mu);
    while (w->done_count == 0 && !w->background_stop)
        pthread_cond_wait(&w->done_cv, &w->mu);
    size_t n = 0;
    while (w->done_head && n < SF_JOB_BATCH_MAX) {
        wrk_done *d = w->done_head;
        w->done_head = d->next;
        d->next = NULL;
        c->items[n] = d;
        c->done[n] = d->d;
        c->ids[n] = c->items[n]->d.id;
        n++;
    }
    if (w->done_head == NULL)
        w->done_tail = NULL;
    w->done_count -= n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* One at a time, after the batch was rejected: a row the database refuses
 * (say, a result it cannot store) becomes a transient failure of its own. */
static void commit_singly(completer *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sf_err err = {0};
        if (sf_job_complete(c->db, &c->done[i], 1, NULL, &err) == SF_OK)
            continue;
        sf_log_error(c->w->log, "could not record a job outcome", SF_LF_STR("job_id", c->done[i].id),
                     SF_LF_STR("error", err.msg));
        c->done[i].outcome = SF_JOB_TRANSIENT;
        c->done[i].error = "could not record the result";
        c->done[i].result = c->done[i].metrics = c->done[i].trades = c->done[i].equity = NULL;
        c->done[i].equity_t = NULL;
        c->done[i].equity_v = NULL;
        c->done[i].equity_n = 0;
        if (sf_job_complete(c->db, &c->done[i], 1, NULL, &err) != SF_OK)
            c->done[i].error = NULL;
    }
}

static void commit_batch(completer *c, size_t n)
{
    wrk *w = c->w;
    for (;;) {
        sf_err err = {0};
        sf_status st = sf_job_complete(c->db, c->done, n, NULL, &err);
        if (st == SF_OK)
            return;
        if (st != SF_ERR_UNAVAILABLE) {
            sf_log_warn(w->log, "completion batch rejected; recording one by one",
                        SF_LF_STR("error", err.msg));
            commit_singly(c, n);
            return;
        }
        if (!wrk_db_recover(w, c->db, "completer", &err, NULL))
            return; /* shutting down during an outage: the leases expire, the reaper retries */
    }
}

static void ack_batch(completer *c, size_t n)
{
    sf_err err = {0};
    sf_status st = sf_queue_ack(c->q, c->ids, n, &err);
    if (st == SF_ERR_UNAVAILABLE && wrk_redis_recover(c->w, c->r, "completer", &err, NULL))
        st = sf_queue_ack(c->q, c->ids, n, &err);
    if (st != SF_OK) /* harmless: the reaper drops leases of jobs no longer queued */
        sf_log_warn(c->w->log, "could not drop leases", SF_LF_STR("error", err.msg));
}

/* Wake the webhook thread when signals were committed (it finds out which
 * have a webhook due: the signals table is the outbox). */
static void hint_webhooks(completer *c, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++)
        any |= c->done[i].applied && c->done[i].signal && c->done[i].outcome == SF_JOB_SUCCEEDED;
    if (!any)
        return;
    pthread_mutex_lock(&c->w->mu);
    c->w->hook_hint = 1;
    pthread_cond_signal(&c->w->hook_cv);
    pthread_mutex_unlock(&c->w->mu);
}

static void log_signal(completer *c, const sf_job_done *d)
{
    if (!d->applied || d->signal == NULL || d->outcome != SF_JOB_SUCCEEDED)
        return;
    sf_log_info(c->w->log, "signal recorded", SF_LF_STR("job_id", d->id),
                SF_LF_STR("signal", d->signal->signal), SF_LF_INT("side", d->signal->side),
                SF_LF_INT("bar_time", d->signal->bar_time));
}

static void log_batch(completer *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const sf_job_done *d = &c->done[i];
        log_signal(c, d);
        const char *status = d->applied ? d->status : "lease_lost";
        sf_log_info(c->w->log, "job finished", SF_LF_STR("job_id", d->id),
                    SF_LF_INT("attempt", c->items[i]->attempt), SF_LF_STR("worker", c->w->name),
                    SF_LF_INT("duration_ms", c->items[i]->duration_ms), SF_LF_STR("status", status),
                    SF_LF_STR("outcome", sf_job_outcome_name(d->outcome)),
                    SF_LF_STR("error", d->error ? d->error : ""));
    }
}

static void free_batch(completer *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c->items[i]->error);
        free(c->items[i]->result);
        sf_result_free(c->items[i]->engine);
        free(c->items[i]);
    }
}

void *wrk_completer_main(void *arg)
{
    completer *c = calloc(1, sizeof *c);
    wrk *w = arg;
    pthread_setname_np(pthread_self(), "sf-complete");
    if (c == NULL)
        return NULL;
    c->w = w;
    c->db = wrk_db_connect(w, "completer", NULL);
    c->r = wrk_redis_connect(w, "completer", NULL);
    sf_err err = {0};
    if (c->r && sf_queue_new(w->cfg->queue, c->r, &c->q, &err) != SF_OK)
        c->q = NULL;
    for (size_t n; (n = take_batch(c)) > 0;) {
        if (c->db)
            commit_batch(c, n);
        hint_webhooks(c, n);
        if (c->q)
            ack_batch(c, n);
        log_batch(c, n);
        free_batch(c, n);
    }
    sf_queue_free(c->q);
    sf_redis_close(c->r);
    sf_db_close(c->db);
    free(c);
    return NULL;
}

/* ---- heartbeat ---------------------------------------------------------- */

typedef struct heartbeat {
    wrk *w;
    sf_db *db;
    sf_redis *r;
    sf_queue *q;
    sf_job_lease leases[SF_JOB_BATCH_MAX];
    int optimistic[SF_JOB_BATCH_MAX]; /* leases[i] has no PostgreSQL lease: Redis only */
    sf_job_lease pg[SF_JOB_BATCH_MAX]; /* the others, for sf_job_heartbeat */
    const char *ids[SF_JOB_BATCH_MAX];
} heartbeat;

/* Running jobs and outcomes not yet committed; 0 when it is time to stop. */
static size_t collect(heartbeat *h, int *stop)
{
    wrk *w = h->w;
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    if (!w->background_stop)
        wrk_timed_wait(&w->tick_cv, &w->mu, w->lease_ms / 3 > 100 ? w->lease_ms / 3 : 100);
    *stop = w->background_stop;
    for (int i = 0; i < w->n_slots && n < SF_JOB_BATCH_MAX; i++) {
        const wrk_slot *s = &w->slots[i];
        if (s->state == SLOT_IDLE)
            continue;
        snprintf(h->leases[n].id, sizeof h->leases[n].id, "%s", s->job.id);
        h->optimistic[n] = s->job.optimistic;
        h->leases[n++].fence = s->job.fence;
    }
    for (const wrk_done *d = w->done_head; d && n < SF_JOB_BATCH_MAX; d = d->next) {
        snprintf(h->leases[n].id, sizeof h->leases[n].id, "%s", d->d.id);
        h->optimistic[n] = d->d.optimistic;
        h->leases[n++].fence = d->d.fence;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Mark lost leases and cancel requests on the slots still running them
 * (h->pg: the n jobs with a PostgreSQL lease). */
static void apply(heartbeat *h, size_t n)
{
    wrk *w = h->w;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        const sf_job_lease *l = &h->pg[i];
        for (int k = 0; k < w->n_slots; k++) {
            wrk_slot *s = &w->slots[k];
            if (s->state == SLOT_IDLE || s->job.fence != l->fence || strcmp(s->job.id, l->id) != 0)
                continue;
            if (!l->alive)
                s->lost = 1;
            if (!l->alive || l->cancel_requested)
                atomic_store(&s->cancel, 1);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

static void beat(heartbeat *h, size_t n)
{
    wrk *w = h->w;
    sf_err err = {0};
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!h->optimistic[i])
            h->pg[m++] = h->leases[i];
    sf_status st = sf_job_heartbeat(h->db, h->pg, m, w->lease_ms, &err);
    /* An outage does not abandon jobs; renew at once after reconnecting (the
     * leases may be close to expiry after the outage and the reconnect backoff). */
    if (st == SF_ERR_UNAVAILABLE && wrk_db_recover(w, h->db, "heartbeat", &err, NULL))
        st = sf_job_heartbeat(h->db, h->pg, m, w->lease_ms, &err);
    if (st == SF_OK)
        apply(h, m);
    else if (st != SF_ERR_UNAVAILABLE)
        sf_log_error(w->log, "heartbeat failed", SF_LF_STR("error", err.msg));
    for (size_t i = 0; i < n; i++)
        h->ids[i] = h->leases[i].id;
    st = sf_queue_extend(h->q, h->ids, n, w->lease_ms, NULL, &err);
    if (st == SF_ERR_UNAVAILABLE)
        wrk_redis_recover(w, h->r, "heartbeat", &err, NULL);
}

void *wrk_heartbeat_main(void *arg)
{
    heartbeat *h = calloc(1, sizeof *h);
    wrk *w = arg;
    pthread_setname_np(pthread_self(), "sf-heartbeat");
    if (h == NULL)
        return NULL;
    h->w = w;
    h->db = wrk_db_connect(w, "heartbeat", NULL);
    h->r = wrk_redis_connect(w, "heartbeat", NULL);
    sf_err err = {0};
    if (h->r && sf_queue_new(w->cfg->queue, h->r, &h->q, &err) != SF_OK)
        h->q = NULL;
    for (int stop = 0; !stop && h->db && h->q;) {
        size_t n = collect(h, &stop);
        if (n > 0 && !stop)
            beat(h, n);
    }
    sf_queue_free(h->q);
    sf_redis_close(h->r);
    sf_db_close(h->db);
    free(h);
    return NULL;
}
