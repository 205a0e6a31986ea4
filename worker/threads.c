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
 *
 * Every job the worker holds keeps its lease until its completion commits
 * or is refused: the heartbeat renews the slots' jobs, the outcomes waiting
 * for the completer and the batch being committed (that one last: its rows
 * may be locked by the completer's statement until it commits), in
 * statements of at most SF_JOB_BATCH_MAX. Their number is bounded by the
 * outcome budget: the claimer stops while the outcomes not yet committed
 * reach SF_OUTCOME_BUDGET_MB or, with the running jobs, SF_OUTCOME_BUDGET_JOBS,
 * so a completer slower than the runners slows the claims instead of
 * piling results up in memory. A completion batch is bounded by count and by
 * SF_COMPLETION_BATCH_MB; a batch the database rejects is split in halves
 * down to the row it refuses, which is recorded failed with the reason.
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

/* Locked. How many jobs may be claimed now: the idle slots, while the
 * outcomes not yet committed hold less than the byte budget and they and the
 * running jobs are fewer than the count budget; 0 otherwise. */
static int claimable(const wrk *w)
{
    int idle = idle_slots(w);
    size_t busy = (size_t)(w->n_slots - idle);
    size_t jobs = (size_t)w->cfg->outcome_budget_jobs;
    if (w->held_bytes >= (size_t)w->cfg->outcome_budget_mb << 20 || w->held_count + busy >= jobs)
        return 0;
    size_t room = jobs - w->held_count - busy;
    return room < (size_t)idle ? (int)room : idle;
}

static void log_pause(wrk *w, size_t count, size_t bytes)
{
    sf_log_info(w->log, "claims paused: uncommitted outcomes at their budget", SF_LF_INT("outcomes", (int64_t)count),
                SF_LF_INT("bytes", (int64_t)bytes), SF_LF_INT("budget_jobs", w->cfg->outcome_budget_jobs),
                SF_LF_INT("budget_mb", w->cfg->outcome_budget_mb));
}

/* Block until jobs may be claimed or the worker stops; how many (0 = stop).
 * A wait on the outcome budget (a slot is idle, yet nothing may be claimed)
 * is counted and logged once. */
static int wait_claimable(wrk *w)
{
    pthread_mutex_lock(&w->mu);
    int k = 0, paused = 0;
    while (!w->stopping && (k = claimable(w)) == 0) {
        if (!paused && idle_slots(w) > 0) {
            paused = 1;
            w->budget_pauses++;
            size_t count = w->held_count, bytes = w->held_bytes;
            pthread_mutex_unlock(&w->mu);
            log_pause(w, count, bytes);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        pthread_cond_wait(&w->idle_cv, &w->mu);
    }
    int n = w->stopping ? 0 : k;
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
        wrk_metrics_started(w, j);
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
        sf_status st = sf_job_claim(c->db, ptrs, n, w->name, w->lease_ms, c->tiny_ptrs, n_tiny, c->jobs, &m, &err);
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
    for (int k; c->q && (k = wait_claimable(w)) > 0;)
        claim_round(c, k < WRK_THREADS_MAX ? k : WRK_THREADS_MAX);
    sf_queue_free(c->q);
    sf_redis_close(c->r);
    sf_db_close(c->db);
    free(c);
    return NULL;
}

/* ---- outcomes ----------------------------------------------------------- */

static size_t engine_bytes(const sf_result *r)
{
    if (r == NULL)
        return 0;
    return sizeof *r + (r->trades ? r->n_trades * sizeof *r->trades : 0);
}

/* The outcome's data freed; it is recorded failed with msg. */
static void fail_outcome(wrk_done *d, const char *msg)
{
    free(d->result);
    d->result = NULL;
    sf_result_free(d->engine);
    d->engine = NULL;
    d->d.metrics = d->d.trades = d->d.equity = d->d.result = d->d.params = NULL;
    d->d.equity_t = NULL;
    d->d.equity_v = NULL;
    d->d.equity_n = 0;
    d->d.signal = NULL;
    d->d.outcome = SF_JOB_FAILED;
    free(d->error);
    d->error = strdup(msg);
    d->d.error = d->error;
}

void wrk_outcome_measure(wrk *w, wrk_done *d)
{
    size_t data = sf_job_done_bytes(&d->d), max = (size_t)w->cfg->result_max_mb << 20;
    if (data > max) {
        char msg[256];
        snprintf(msg, sizeof msg, "result too big to store: %zu bytes, more than SF_RESULT_MAX_MB (%lld MiB)", data,
                 (long long)w->cfg->result_max_mb);
        fail_outcome(d, msg);
    }
    d->bytes = sizeof *d + sf_job_done_bytes(&d->d) + engine_bytes(d->engine);
}

void wrk_outcome_queue(wrk *w, wrk_done *d)
{
    if (w->done_tail)
        w->done_tail->next = d;
    else
        w->done_head = d;
    w->done_tail = d;
    w->done_count++;
    w->held_count++;
    w->held_bytes += d->bytes;
    if (w->held_count > w->held_count_peak)
        w->held_count_peak = w->held_count;
    if (w->held_bytes > w->held_bytes_peak)
        w->held_bytes_peak = w->held_bytes;
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

/* Take the oldest outcomes, up to SF_JOB_BATCH_MAX of them and
 * SF_COMPLETION_BATCH_MB of their bytes (at least one), as the batch being
 * committed (wrk.commit_head: the heartbeat still renews their leases);
 * 0 when finished. */
static size_t take_batch(completer *c)
{
    wrk *w = c->w;
    size_t max = (size_t)w->cfg->completion_batch_mb << 20, bytes = 0, n = 0;
    pthread_mutex_lock(&w->mu);
    while (w->done_count == 0 && !w->background_stop)
        pthread_cond_wait(&w->done_cv, &w->mu);
    while (w->done_head && n < SF_JOB_BATCH_MAX && (n == 0 || bytes + w->done_head->bytes <= max)) {
        wrk_done *d = w->done_head;
        w->done_head = d->next;
        bytes += d->bytes;
        c->items[n] = d;
        c->done[n] = d->d;
        c->ids[n] = d->d.id;
        n++;
    }
    if (n > 0)
        c->items[n - 1]->next = NULL; /* the batch is a list of its own */
    w->commit_head = n > 0 ? c->items[0] : NULL;
    if (w->done_head == NULL)
        w->done_tail = NULL;
    w->done_count -= n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* The batch is committed (or given up): its leases need no renewal, its
 * bytes leave the budget, and the claimer may go on. */
static void release_batch(completer *c, size_t n)
{
    wrk *w = c->w;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += c->items[i]->bytes;
    pthread_mutex_lock(&w->mu);
    w->commit_head = NULL;
    w->held_count -= n;
    w->held_bytes -= bytes;
    pthread_cond_broadcast(&w->idle_cv);
    pthread_mutex_unlock(&w->mu);
}

/* One row alone, through outages; a refusal now is logged and left to the
 * lease's expiry (the reaper retries the job). */
static void commit_one(completer *c, size_t i)
{
    for (;;) {
        sf_err err = {0};
        sf_status st = sf_job_complete(c->db, &c->done[i], 1, NULL, &err);
        if (st == SF_OK)
            return;
        if (st == SF_ERR_UNAVAILABLE && wrk_db_recover(c->w, c->db, "completer", &err, NULL))
            continue;
        sf_log_error(c->w->log, "could not record a job outcome", SF_LF_STR("job_id", c->done[i].id),
                     SF_LF_STR("error", err.msg));
        return;
    }
}

/* A row the database refused alone: recorded failed with the reason, for
 * good when its data were refused (too big: SF_ERR_LIMIT, SQLSTATE class 54;
 * malformed: SF_ERR_INVALID, class 22 or 23), since the same data would be
 * refused again; otherwise (a conflict, resources, a statement the server
 * does not take) as a transient failure. Its data are not sent again. */
static void refuse(completer *c, size_t i, sf_status st, const sf_err *why)
{
    const char *state = st == SF_ERR_DB ? sf_db_sqlstate(c->db) : "";
    int data = st == SF_ERR_LIMIT || st == SF_ERR_INVALID || strncmp(state, "22", 2) == 0 ||
               strncmp(state, "23", 2) == 0 || strncmp(state, "54", 2) == 0;
    char msg[SF_JOB_ERROR_MAX];
    snprintf(msg, sizeof msg, "could not store the result: %s", why->msg);
    sf_log_error(c->w->log, "completion refused", SF_LF_STR("job_id", c->done[i].id), SF_LF_STR("sqlstate", state),
                 SF_LF_STR("error", why->msg));
    wrk_done *item = c->items[i];
    fail_outcome(item, msg);
    if (!data)
        item->d.outcome = SF_JOB_TRANSIENT;
    c->done[i] = item->d;
    commit_one(c, i);
}

/* Commit done[lo, lo + n), waiting out outages. A batch the database
 * rejects is split in halves, so a row it refuses is found in a few
 * statements while the others still commit in batches; that row alone is
 * refused (refuse). Never one by one: every statement keeps leases waiting. */
static void commit_range(completer *c, size_t lo, size_t n)
{
    for (;;) {
        sf_err err = {0};
        sf_status st = sf_job_complete(c->db, c->done + lo, n, NULL, &err);
        if (st == SF_OK)
            return;
        if (st == SF_ERR_UNAVAILABLE) {
            if (!wrk_db_recover(c->w, c->db, "completer", &err, NULL))
                return; /* shutting down during an outage: the leases expire, the reaper retries */
            continue;
        }
        if (n == 1) {
            refuse(c, lo, st, &err);
            return;
        }
        sf_log_warn(c->w->log, "completion batch rejected; splitting it", SF_LF_INT("jobs", (int64_t)n),
                    SF_LF_STR("error", err.msg));
        commit_range(c, lo, n / 2);
        commit_range(c, lo + n / 2, n - n / 2);
        return;
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
    if (!d->applied || d->signal == NULL || d->outcome != SF_JOB_SUCCEEDED ||
        strcmp(d->status, "succeeded") != 0) /* a cancel requested meanwhile wins */
        return;
    sf_log_info(c->w->log, "signal recorded", SF_LF_STR("job_id", d->id), SF_LF_STR("signal", d->signal->signal),
                SF_LF_INT("side", d->signal->side), SF_LF_INT("bar_time", d->signal->bar_time));
}

static void log_batch(completer *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const sf_job_done *d = &c->done[i];
        wrk_metrics_finished(c->w, c->items[i], d);
        log_signal(c, d);
        const char *status = d->applied ? d->status : "lease_lost";
        sf_log_info(c->w->log, "job finished", SF_LF_STR("job_id", d->id), SF_LF_INT("attempt", c->items[i]->attempt),
                    SF_LF_STR("worker", c->w->name), SF_LF_INT("duration_ms", c->items[i]->duration_ms),
                    SF_LF_STR("status", status), SF_LF_STR("outcome", sf_job_outcome_name(d->outcome)),
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
            commit_range(c, 0, n);
        hint_webhooks(c, n);
        if (c->q)
            ack_batch(c, n);
        release_batch(c, n);
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
    sf_job_lease *leases; /* every job held, cap of them */
    int *optimistic;      /* leases[i] has no PostgreSQL lease: Redis only */
    size_t cap;
    sf_job_lease pg[SF_JOB_BATCH_MAX]; /* one statement's share with a PostgreSQL lease */
    const char *ids[SF_JOB_BATCH_MAX];
} heartbeat;

static int grow(heartbeat *h, size_t want)
{
    sf_job_lease *l = realloc(h->leases, want * sizeof *l);
    if (l == NULL)
        return 0;
    h->leases = l;
    int *o = realloc(h->optimistic, want * sizeof *o);
    if (o == NULL)
        return 0;
    h->optimistic = o;
    h->cap = want;
    return 1;
}

/* Locked. Add one held job (if there is room). */
static void add_lease(heartbeat *h, size_t *n, const char *id, int64_t fence, int optimistic)
{
    if (*n >= h->cap)
        return;
    snprintf(h->leases[*n].id, sizeof h->leases[*n].id, "%s", id);
    h->leases[*n].fence = fence;
    h->optimistic[(*n)++] = optimistic;
}

/* Every job held, after a third of the lease: the slots' jobs, the outcomes
 * waiting, then the batch being committed; 0 when it is time to stop. */
static size_t collect(heartbeat *h, int *stop)
{
    wrk *w = h->w;
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    if (!w->background_stop)
        wrk_timed_wait(&w->tick_cv, &w->mu, w->lease_ms / 3 > 100 ? w->lease_ms / 3 : 100);
    *stop = w->background_stop;
    for (size_t want; h->cap < (want = (size_t)w->n_slots + w->held_count);) {
        pthread_mutex_unlock(&w->mu);
        int grown = grow(h, want + want / 2);
        pthread_mutex_lock(&w->mu);
        if (!grown)
            break; /* renew what fits */
    }
    for (int i = 0; i < w->n_slots; i++) {
        const wrk_slot *s = &w->slots[i];
        if (s->state != SLOT_IDLE)
            add_lease(h, &n, s->job.id, s->job.fence, s->job.optimistic);
    }
    for (const wrk_done *d = w->done_head; d; d = d->next)
        add_lease(h, &n, d->d.id, d->d.fence, d->d.optimistic);
    for (const wrk_done *d = w->commit_head; d; d = d->next)
        add_lease(h, &n, d->d.id, d->d.fence, d->d.optimistic);
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

/* Renew n leases (n <= SF_JOB_BATCH_MAX): one statement, one script. */
static void beat_some(heartbeat *h, const sf_job_lease *leases, const int *optimistic, size_t n)
{
    wrk *w = h->w;
    sf_err err = {0};
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!optimistic[i])
            h->pg[m++] = leases[i];
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
        h->ids[i] = leases[i].id;
    st = sf_queue_extend(h->q, h->ids, n, w->lease_ms, NULL, &err);
    /* the same for Redis (a connection the server closed: CLIENT KILL, a restart) */
    if (st == SF_ERR_UNAVAILABLE && wrk_redis_recover(w, h->r, "heartbeat", &err, NULL))
        sf_queue_extend(h->q, h->ids, n, w->lease_ms, NULL, &err);
}

/* The worker registry (sf_workers_live): alive for another lease, or
 * gone (ttl_ms 0) at the stop. Best effort: a miss only shortens the entry. */
static void register_alive(heartbeat *h, int64_t ttl_ms)
{
    char name[SF_QUEUE_ID_MAX];
    snprintf(name, sizeof name, "%.*s", (int)sizeof name - 1, h->w->name);
    sf_err err = {0};
    sf_status st = sf_queue_worker_beat(h->q, name, ttl_ms, &err);
    if (st == SF_ERR_UNAVAILABLE && ttl_ms > 0 && wrk_redis_recover(h->w, h->r, "heartbeat", &err, NULL))
        sf_queue_worker_beat(h->q, name, ttl_ms, &err);
}

static void beat(heartbeat *h, size_t n)
{
    for (size_t at = 0; at < n; at += SF_JOB_BATCH_MAX) {
        size_t k = n - at < SF_JOB_BATCH_MAX ? n - at : SF_JOB_BATCH_MAX;
        beat_some(h, h->leases + at, h->optimistic + at, k);
    }
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
    if (h->db && h->q)
        register_alive(h, w->lease_ms);
    for (int stop = 0; !stop && h->db && h->q;) {
        size_t n = collect(h, &stop);
        if (n > 0 && !stop)
            beat(h, n);
        register_alive(h, stop ? 0 : w->lease_ms);
    }
    sf_queue_free(h->q);
    sf_redis_close(h->r);
    sf_db_close(h->db);
    free(h->leases);
    free(h->optimistic);
    free(h);
    return NULL;
}
