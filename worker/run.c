/*
 * run: one attempt of one job on a runner thread, and the runner loop.
 *
 * The outcome is decided here: problems with the job itself (a row that
 * cannot be run, invalid logic, a bad grid index, a missing data set, no bars
 * in the range, a working set above SF_RUN_MAX_MB, out of memory in the
 * engine: the same run would need as much again) fail it permanently; a
 * time budget spent (SF_JOB_TIMEOUT_S) too; a cancel request ends it cancelled, or
 * released when the drain asked; a database outage while loading bars
 * retries the load (no attempt is spent); anything unexpected is transient.
 *
 * A backtest stores its result with the equity curve downsampled to
 * SF_EQUITY_POINTS (metrics come from the full curve), as three parts sent
 * once each: metrics, trades, and the curve in columns ({"t": [...], "v":
 * [...]}, half the text of [{"time", "equity"}]). A sweep member stores a
 * compact result, its metrics and its combination's parameters (migration
 * 0011): the engine keeps neither its trades nor its curve, as in a local
 * sweep, and a member's outcome holds a few hundred bytes until it commits.
 * Its trades and curve come from its detail job (sf/detail.h), a single
 * backtest of its logic, when they are wanted. A logic execution
 * (kind "logic_execution") takes the engine's live decision at the newest bar
 * and hands it to the completer as the job's signal: the signals row is
 * written in the completion's transaction, the webhook is sent after it.
 *
 * Sweep members: each runner keeps a cursor (sf_grid_cursor) for the batch
 * it ran last, so a member of the same batch costs a few changed values and
 * a compile of the tree, not a parse, a write and a parse of the text.
 */
#include <inttypes.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sf/dataset.h"
#include "sf/engine.h"
#include "sf/equity.h"
#include "sf/grid.h"
#include "sf/logic.h"
#include "sf/overfit.h"
#include "sf/result.h"
#include "sf/time.h"

#include "worker.h"

#define RESULT_MAX ((size_t)256 * 1024 * 1024)
#define PARAMS_MAX ((size_t)64 * 1024) /* a member's {"path": value}: 32 paths at most */

static void outcome(wrk_done *out, sf_job_outcome o, const char *error)
{
    out->d.outcome = o;
    free(out->error);
    out->error = error ? strdup(error) : NULL;
    out->d.error = out->error;
}

/* ---- sweep members ------------------------------------------------------ */

/* A runner's cursor over one batch: the base logic parsed once, moved from
 * member to member (sf_grid_cursor). It is used again only for a job whose
 * batch id, logic text and grid text all equal the ones it was built from
 * (copies kept here and compared in full: typically a few hundred bytes). */
struct wrk_sweep {
    char batch_id[SF_JOB_ID_MAX];
    char *logic; /* logic_len bytes, then grid_len bytes of grid text */
    size_t logic_len, grid_len;
    wrk_grid_ref *ref; /* keeps grid alive */
    const sf_grid *grid;
    sf_grid_cursor *cursor; /* NULL until the logic parsed */
};

static void sweep_free(wrk *w, struct wrk_sweep *s)
{
    if (s == NULL)
        return;
    sf_grid_cursor_free(s->cursor);
    wrk_gridcache_release(w->grids, s->ref);
    free(s->logic);
    free(s);
}

static int sweep_is_for(const struct wrk_sweep *s, const sf_job *job)
{
    return s != NULL && strcmp(s->batch_id, job->batch_id) == 0 && s->logic_len == job->logic_len &&
           s->grid_len == job->grid_len && memcmp(s->logic, job->logic, job->logic_len) == 0 &&
           memcmp(s->logic + s->logic_len, job->grid, job->grid_len) == 0;
}

/* The batch's grid (parsed once per worker, through the grid cache) and the
 * texts; the cursor is built by member_logic. */
static sf_status sweep_new(wrk *w, const sf_job *job, struct wrk_sweep **out, sf_err *err)
{
    struct wrk_sweep *s = calloc(1, sizeof *s);
    if (s == NULL || (s->logic = malloc(job->logic_len + job->grid_len + 1)) == NULL) {
        free(s);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    sf_status st = wrk_gridcache_get(w->grids, job->batch_id, job->grid, job->grid_len, &s->grid, &s->ref, err);
    if (st != SF_OK) {
        sweep_free(w, s);
        return st;
    }
    snprintf(s->batch_id, sizeof s->batch_id, "%s", job->batch_id);
    memcpy(s->logic, job->logic, job->logic_len);
    memcpy(s->logic + job->logic_len, job->grid, job->grid_len);
    s->logic_len = job->logic_len;
    s->grid_len = job->grid_len;
    *out = s;
    return SF_OK;
}

/* A sweep member's program through the runner's cursor. Errors, in the order
 * the members' text route gave them: the grid, the index, the logic text,
 * then the member (sf_grid_cursor_logic). */
static sf_status member_logic(wrk *w, struct wrk_sweep **sweep, const sf_job *job, sf_logic **logic,
                              sf_logic_errors *errs, sf_err *err)
{
    if (!sweep_is_for(*sweep, job)) {
        sweep_free(w, *sweep);
        *sweep = NULL;
        sf_status st = sweep_new(w, job, sweep, err);
        if (st != SF_OK)
            return st;
    }
    struct wrk_sweep *s = *sweep;
    if ((size_t)job->combo_index >= sf_grid_size(s->grid))
        return sf_err_set(err, SF_ERR_INVALID, "combination %" PRId64 ": the grid has %zu", job->combo_index,
                          sf_grid_size(s->grid));
    if (s->cursor == NULL) {
        sf_status st = sf_grid_cursor_new(s->grid, job->logic, job->logic_len, &s->cursor, err);
        if (st != SF_OK)
            return st;
    }
    return sf_grid_cursor_logic(s->cursor, (size_t)job->combo_index, logic, errs, err);
}

/* The job's program: its own logic, or its batch's with its combination set. */
static sf_status compile(wrk *w, struct wrk_sweep **sweep, const sf_job *job, sf_logic **logic, sf_err *err)
{
    sf_logic_errors errs; /* 16 KB: runner threads have 8 MB stacks; the parse resets it */
    errs.count = 0;
    sf_status st = job->batch_id[0] == '\0' ? sf_logic_parse(job->logic, job->logic_len, logic, &errs, err)
                                            : member_logic(w, sweep, job, logic, &errs, err);
    if (st != SF_OK && errs.count > 0 && err) {
        sf_err_clear(err);
        err->code = st;
        sf_logic_errors_format(&errs, err->msg, sizeof err->msg);
    }
    return st;
}

static int permanent(sf_status st)
{
    return st == SF_ERR_INVALID || st == SF_ERR_PARSE || st == SF_ERR_LIMIT || st == SF_ERR_NOTFOUND;
}

/* Bars through the cache; a database outage is waited out (no attempt spent). */
static sf_status load_bars(wrk_slot *slot, sf_db *db, const sf_bars **bars, wrk_cache_entry **entry, sf_err *err)
{
    wrk *w = slot->w;
    for (;;) {
        sf_status st = db ? wrk_cache_get(w->cache, db, slot->job.symbol, slot->job.timeframe,
                                          slot->job.dataset_version, bars, entry, err)
                          : sf_err_set(err, SF_ERR_UNAVAILABLE, "no database connection");
        if (st != SF_ERR_UNAVAILABLE || atomic_load(&slot->cancel))
            return st;
        if (db == NULL || !wrk_db_recover(w, db, "runner", err, &slot->cancel))
            return SF_ERR_UNAVAILABLE;
    }
}

/* The stored text parts of a result in one allocation: metrics and trades,
 * each NUL-terminated; *trades_off is where trades start. The equity curve
 * travels as arrays (sf_job_done.equity_t/_v). */
static sf_status result_parts(const sf_result *res, sf_buf *b, size_t *trades_off, sf_err *err)
{
    sf_status st = sf_perf_to_json(&res->perf, b, err);
    if (st == SF_OK)
        st = sf_buf_append(b, "", 1, err);
    *trades_off = b->len;
    if (st == SF_OK)
        st = sf_result_trades_json(res, b, err);
    return st;
}

/* Downsampled in place: give the bars-sized arrays' tail back before the
 * result waits for its completion (a 1M-bar run holds 16 MB otherwise). */
static void shrink_equity(sf_result *res)
{
    if (res->n_equity == 0)
        return;
    int64_t *ts = realloc(res->ts, res->n_equity * sizeof *ts);
    if (ts)
        res->ts = ts;
    double *eq = realloc(res->equity, res->n_equity * sizeof *eq);
    if (eq)
        res->equity = eq;
}

/* A single backtest's result: the curve downsampled to SF_EQUITY_POINTS,
 * metrics and trades as text; *res moves into out (NULL on success). */
static sf_status keep_full(wrk_slot *slot, sf_result **res, wrk_done *out, sf_err *err)
{
    sf_result *r = *res;
    r->n_equity = sf_equity_downsample(r->ts, r->equity, r->n_equity, (size_t)slot->w->cfg->equity_points);
    sf_buf parts;
    size_t max = (size_t)slot->w->cfg->result_max_mb << 20; /* bounds the run's memory too */
    sf_buf_init(&parts, max < RESULT_MAX ? max : RESULT_MAX);
    size_t trades_off = 0;
    sf_status st = result_parts(r, &parts, &trades_off, err);
    if (st == SF_ERR_LIMIT) /* permanent: the engine is deterministic (run_engine) */
        sf_err_set(err, SF_ERR_LIMIT, "result too big to store: more than SF_RESULT_MAX_MB (%lld MiB)",
                   (long long)slot->w->cfg->result_max_mb);
    if (st == SF_OK) {
        shrink_equity(r);
        out->result = sf_buf_steal(&parts, NULL);
        out->d.metrics = out->result;
        out->d.trades = out->result + trades_off;
        out->engine = r;
        out->d.equity_t = r->ts;
        out->d.equity_v = r->equity;
        out->d.equity_n = r->n_equity;
        *res = NULL;
    }
    sf_buf_destroy(&parts);
    return st;
}

/* A sweep member's compact result: metrics and params, each NUL-terminated,
 * then its packed block statistics (sf/overfit.h, migration 0013), in one
 * allocation; no trades, no curve (migration 0011: its detail job
 * recomputes them when they are wanted). */
static sf_status keep_compact(const sf_result *res, const char *params, wrk_done *out, sf_err *err)
{
    uint8_t packed[SF_OVERFIT_PACKED_MAX];
    size_t packed_len = sf_blocks_pack(&res->blocks, packed, sizeof packed);
    sf_buf parts;
    sf_buf_init(&parts, RESULT_MAX);
    sf_status st = sf_perf_to_json(&res->perf, &parts, err);
    size_t params_off = parts.len + 1;
    if (st == SF_OK)
        st = sf_buf_append(&parts, "", 1, err);
    if (st == SF_OK)
        st = sf_buf_append(&parts, params, strlen(params) + 1, err);
    size_t blocks_off = parts.len;
    if (st == SF_OK)
        st = sf_buf_append(&parts, packed, packed_len, err);
    if (st == SF_OK) {
        out->result = sf_buf_steal(&parts, NULL);
        out->d.metrics = out->result;
        out->d.params = out->result + params_off;
        out->d.blocks = packed_len ? (const uint8_t *)out->result + blocks_off : NULL;
        out->d.blocks_len = packed_len;
    }
    sf_buf_destroy(&parts);
    return st;
}

/* Whether the drain asked this slot's job to be released. release is
 * guarded by wrk.mu (worker.h): drain_slots sets it under the lock, so the
 * runner reads it under the lock too (an unlocked read raced that write:
 * ThreadSanitizer, scripts/tsan). */
static int released(wrk_slot *slot)
{
    pthread_mutex_lock(&slot->w->mu);
    int r = slot->release;
    pthread_mutex_unlock(&slot->w->mu);
    return r;
}

/* The outcome of a run that did not succeed: cancelled, or released for a
 * drain; a spent time budget and out of memory fail for good, as the same
 * run would again; the rest as permanent() says. */
static void run_failed(wrk_slot *slot, sf_status st, const sf_err *err, wrk_done *out)
{
    if (st == SF_ERR_CANCELLED) {
        outcome(out, released(slot) ? SF_JOB_RELEASED : SF_JOB_CANCELLED, NULL);
    } else if (st == SF_ERR_TIMEOUT) {
        char msg[160];
        snprintf(msg, sizeof msg, "ran longer than SF_JOB_TIMEOUT_S (%lld s)", (long long)slot->w->cfg->job_timeout_s);
        outcome(out, SF_JOB_FAILED, msg);
    } else {
        outcome(out, permanent(st) || st == SF_ERR_NOMEM ? SF_JOB_FAILED : SF_JOB_TRANSIENT, err->msg);
    }
}

/* The slot's cancel flag and SF_JOB_TIMEOUT_S from now. */
static void run_opts(wrk_slot *slot, sf_run_opts *opts)
{
    sf_run_opts_init(opts);
    opts->cancel = &slot->cancel;
    if (slot->w->cfg->job_timeout_s > 0)
        opts->deadline_ms = sf_time_mono_ms() + slot->w->cfg->job_timeout_s * 1000;
}

static void run_engine(wrk_slot *slot, const sf_logic *logic, const sf_bars *bars, const char *params, wrk_done *out)
{
    sf_run_opts opts;
    run_opts(slot, &opts);
    opts.keep_equity = opts.keep_trades = params == NULL;
    opts.blocks = params ? slot->job.blocks : 0; /* a member's block statistics (sf/overfit.h) */
    sf_result *res = NULL;
    sf_err err = {0};
    sf_status st = sf_engine_run(logic, bars, &opts, &res, &err);
    if (st == SF_OK)
        st = params ? keep_compact(res, params, out, &err) : keep_full(slot, &res, out, &err);
    sf_result_free(res);
    if (st == SF_OK)
        outcome(out, SF_JOB_SUCCEEDED, NULL);
    else
        run_failed(slot, st, &err, out);
}

static void run_decide(wrk_slot *slot, const sf_logic *logic, const sf_bars *bars, wrk_done *out)
{
    sf_run_opts opts;
    run_opts(slot, &opts);
    sf_decision dec;
    sf_err err = {0};
    sf_status st = sf_engine_decide(logic, bars, &opts, &dec, &err);
    if (st == SF_OK) {
        outcome(out, SF_JOB_SUCCEEDED, NULL);
        out->sig.bar_time = dec.bar_time;
        out->sig.signal = sf_signal_name(dec.signal); /* a static string */
        out->sig.side = dec.side;
        out->d.signal = &out->sig;
    } else {
        run_failed(slot, st, &err, out);
    }
}

/* The run's working set within SF_RUN_MAX_MB, known before it starts; a
 * bigger one fails the job for good (the same logic and bars need as much
 * again). */
static int fits(wrk_slot *slot, const sf_logic *logic, const sf_bars *bars, int keep, wrk_done *out)
{
    size_t need = sf_engine_working_set(logic, bars->n, keep);
    int64_t max_mb = slot->w->cfg->run_max_mb;
    if (need <= ((size_t)max_mb << 20))
        return 1;
    char msg[200];
    snprintf(msg, sizeof msg, "run too big: about %zu MiB over %zu bars, more than SF_RUN_MAX_MB (%lld MiB)",
             (need >> 20) + 1, bars->n, (long long)max_mb);
    outcome(out, SF_JOB_FAILED, msg);
    return 0;
}

/* params: a sweep member's combination as JSON text, NULL for a single
 * backtest. A member keeps neither its trades nor its curve in the engine. */
static void run_on_bars(wrk_slot *slot, const sf_logic *logic, const sf_bars *all, const char *params, wrk_done *out)
{
    const sf_job *job = &slot->job;
    sf_bars view;
    sf_dataset_slice(all, job->has_from ? job->from_ts : INT64_MIN, job->has_to ? job->to_ts : INT64_MAX, &view);
    if (view.n == 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "data set %s/%s has no bars in the requested range", job->symbol, job->timeframe);
        outcome(out, SF_JOB_FAILED, msg);
        return;
    }
    if (!fits(slot, logic, &view, params == NULL, out))
        return;
    if (strcmp(job->kind, "logic_execution") == 0)
        run_decide(slot, logic, &view, out);
    else
        run_engine(slot, logic, &view, params, out);
}

void wrk_run_job(wrk *w, wrk_slot *slot, struct wrk_sweep **sweep, sf_db *db, wrk_done *out)
{
    const sf_job *job = &slot->job;
    int64_t t0 = sf_time_mono_ms(), t0_ns = sf_time_mono_ns();
    snprintf(out->d.id, sizeof out->d.id, "%s", job->id);
    snprintf(out->kind, sizeof out->kind, "%s", job->kind);
    out->schedule_id = job->schedule_id;
    out->d.fence = job->fence;
    out->d.optimistic = job->optimistic;
    out->d.started_us = job->started_us;
    out->d.worker = w->name;
    out->attempt = job->attempt;
    sf_logic *logic = NULL;
    sf_err err = {0};
    sf_status st = job->bad ? sf_err_set(&err, SF_ERR_INVALID, "%s", job->bad) : compile(w, sweep, job, &logic, &err);
    sf_buf params;
    sf_buf_init(&params, PARAMS_MAX);
    if (st == SF_OK && job->batch_id[0] != '\0')
        st = sf_grid_params_json((*sweep)->grid, (size_t)job->combo_index, &params, &err);
    const sf_bars *bars = NULL;
    wrk_cache_entry *entry = NULL;
    if (st == SF_OK && atomic_load(&slot->cancel)) /* heard before its data: no load */
        st = sf_err_set(&err, SF_ERR_CANCELLED, "cancelled before its data loaded");
    if (st == SF_OK)
        st = load_bars(slot, db, &bars, &entry, &err);
    if (st == SF_OK)
        run_on_bars(slot, logic, bars, job->batch_id[0] != '\0' ? sf_buf_str(&params) : NULL, out);
    else if (st == SF_ERR_UNAVAILABLE || (st != SF_OK && atomic_load(&slot->cancel) && released(slot)))
        outcome(out, SF_JOB_RELEASED, err.msg);
    else if (st == SF_ERR_CANCELLED)
        outcome(out, SF_JOB_CANCELLED, NULL);
    else if (st == SF_ERR_NOTFOUND)
        outcome(out, SF_JOB_FAILED, err.msg);
    else
        outcome(out, permanent(st) ? SF_JOB_FAILED : SF_JOB_TRANSIENT, err.msg);
    wrk_cache_release(w->cache, entry);
    sf_logic_free(logic);
    sf_buf_destroy(&params);
    out->duration_ms = sf_time_mono_ms() - t0;
    out->run_ns = sf_time_mono_ns() - t0_ns;
}

/* ---- the runner thread -------------------------------------------------- */

/* Locked. The job of this thread's own slot if it was assigned one, else
 * any other assigned job nobody has started: assign() wakes only some
 * runners when jobs are tiny, and each runner drains what is assigned before
 * it sleeps (see threads.c). NULL when there is nothing to start. */
static wrk_slot *pick(wrk *w, wrk_slot *home)
{
    if (home->state == SLOT_ASSIGNED)
        return home;
    for (int k = 1; k < w->n_slots; k++) {
        wrk_slot *s = &w->slots[(home->index + k) % w->n_slots];
        if (s->state == SLOT_ASSIGNED)
            return s;
    }
    return NULL;
}

/* Locked. A sweep member's run time into its batch's moving average; the
 * least recently updated batch makes room for a new one. */
static void batch_stat(wrk *w, const char *batch_id, int64_t run_ns)
{
    if (batch_id[0] == '\0')
        return;
    wrk_batch_stat *b = NULL, *oldest = &w->batch_stats[0];
    for (int i = 0; i < WRK_BATCH_STATS && b == NULL; i++) {
        wrk_batch_stat *s = &w->batch_stats[i];
        if (strcmp(s->id, batch_id) == 0)
            b = s;
        else if (s->used < oldest->used)
            oldest = s;
    }
    if (b == NULL) {
        b = oldest;
        snprintf(b->id, sizeof b->id, "%s", batch_id);
        b->runs = 0;
        b->run_ns_avg = run_ns;
    }
    b->run_ns_avg += (run_ns - b->run_ns_avg) / 8;
    b->runs++;
    b->used = ++w->batch_clock;
}

static void finish(wrk *w, wrk_slot *slot, wrk_done *d, int64_t run_ns)
{
    if (d)
        wrk_outcome_measure(w, d); /* its bytes, against the outcome budget (threads.c) */
    pthread_mutex_lock(&w->mu);
    if (d)
        wrk_outcome_queue(w, d);
    w->run_ns_avg += (run_ns - w->run_ns_avg) / 8;
    batch_stat(w, slot->job.batch_id, run_ns);
    sf_job_destroy(&slot->job);
    memset(&slot->job, 0, sizeof slot->job);
    slot->state = SLOT_IDLE;
    slot->lost = slot->release = 0;
    atomic_store(&slot->cancel, 0);
    pthread_cond_broadcast(&w->done_cv);
    pthread_cond_broadcast(&w->idle_cv);
    pthread_mutex_unlock(&w->mu);
}

void *wrk_runner_main(void *arg)
{
    wrk_slot *home = arg;
    wrk *w = home->w;
    char tname[16];
    snprintf(tname, sizeof tname, "sf-run-%d", home->index % 100000);
    pthread_setname_np(pthread_self(), tname);
    /* Linux niceness is per thread: only the job CPU yields, so the claimer,
     * completer and heartbeat threads, and the scheduler and the databases on
     * the same machine, keep their latency under full load. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)w->cfg->runner_nice) != 0)
        sf_log_warn(w->log, "could not lower the runner thread's priority",
                    SF_LF_STR("error", sf_err_errno_text(errno).text));
    sf_db *db = wrk_db_connect(w, "runner", &w->claim_stop);
    struct wrk_sweep *sweep = NULL; /* this thread's cursor, whichever slot's job it runs */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        wrk_slot *slot = pick(w, home);
        if (slot == NULL) {
            if (w->stopping)
                break;
            pthread_cond_wait(&home->cv, &w->mu);
            continue;
        }
        slot->state = SLOT_RUNNING;
        pthread_mutex_unlock(&w->mu);
        if (db == NULL)
            db = wrk_db_connect(w, "runner", &slot->cancel);
        int64_t t0 = sf_time_mono_ns();
        wrk_done *d = calloc(1, sizeof *d);
        if (d != NULL) /* else the attempt is not recorded: its lease expires, the reaper retries */
            wrk_run_job(w, slot, &sweep, db, d);
        finish(w, slot, d, sf_time_mono_ns() - t0);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    sweep_free(w, sweep);
    sf_db_close(db);
    return NULL;
}
