/*
 * job: every change of jobs.status (see sf/job.h).
 *
 * DESIGN. One table, TRANSITIONS, lists each event with the states it may
 * start from, the states it may end in, the SET clause that performs it, and
 * whether it is fenced (a worker's write: j.fence must equal the caller's
 * fence). One builder, build_update(), turns an entry plus a source of rows
 * (a query exposing at least `id`, and `fence` when fenced) into
 *
 *   WITH v AS (<source>),
 *        u AS (UPDATE jobs j SET <set>, updated_at = now() FROM v
 *              WHERE j.id = v.id [AND j.fence = v.fence]
 *                AND CASE WHEN j.status::text IN (<from>) <where> THEN true ELSE false END
 *              RETURNING j.id::text AS id, j.status::text AS status <returning>)
 *   <tail>
 *
 * The state guard compares status as text on purpose: written as a plain
 * status IN (...), it matches the predicates of the partial indexes
 * (jobs_running, jobs_queued), and with statistics taken while few jobs were
 * running, the planner read all running jobs by that index and rescanned the
 * batch's ids for each. The guard (with the transition's extra conditions)
 * is a CASE so that the planner estimates it at one row in two: as a bare
 * expression it got the default 1 in 200, so a whole scan of jobs looked like
 * it would yield a row or two, and the planner made that scan the outer side
 * of a nested loop that rescanned the batch's ids for every row of jobs.
 * Every transition is driven by ids: the primary key is the only access path.
 * The worker's and the scheduler's sessions keep the planner to it
 * (sf_db_opts.index_plans: no sequential scans, hash or merge joins). Left to
 * its costs, the planner joined a completion's or a relay's ids to a
 * sequential scan of jobs while the table was small, and a generic plan made
 * while jobs was nearly empty scanned it for each id once it had grown. With
 * the index path the only one, generic plans are safe to keep, so the claim
 * is not planned again for each batch. What each of these cost when
 * bench-farm found it is in the README ("Farm performance").
 *
 * One builder makes every such statement, so the guard on the current state
 * is never forgotten and no other code in the project writes jobs.status.
 * Batches of ids travel as PostgreSQL array literals in one parameter each
 * (values are never spliced into SQL). Times are PostgreSQL's now(); the
 * backoff's jitter is PostgreSQL's random().
 */
#include "sf/job.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sf/buf.h"
#include "sf/overfit.h"

#define SQL_MAX ((size_t)64 * 1024)
#define PARAM_MAX ((size_t)512 * 1024 * 1024) /* one array parameter (results JSON) */
#define NIL_UUID "00000000-0000-0000-0000-000000000000"

/* d = min(cap, base * 2^(attempt-1)) ms, of the attempt that just ended. */
#define BACKOFF_D "least(v.cap_ms, v.base_ms * power(2::float8, greatest(j.attempt - 1, 0)))"
#define GIVE_UP "(j.cancel_requested OR j.attempt >= j.max_attempts)"

typedef enum event {
    EV_CLAIM,
    EV_HEARTBEAT,
    EV_SUCCEED,
    EV_FAIL,
    EV_RETRY,
    EV_CANCELLED,
    EV_RELEASE,
    EV_SUCCEED_OPT,
    EV_FAIL_OPT,
    EV_RETRY_OPT,
    EV_RELEASE_OPT,
    EV_LEASE_LOST,
    EV_CANCEL,
    EV_REQUEST_CANCEL,
    EV_RELAY,
    EV_REAP,
    EV_COUNT
} event;

/* An optimistic attempt (sf_job_claim's tiny sweep members) commits only
 * while nothing happened to its row since the read: still queued, at attempt
 * 0, no cancel. It then writes what the claim would have: attempt 1, a fresh
 * fence, the worker and the start time of the read. */
#define OPT_WHERE " AND j.attempt = 0 AND NOT j.cancel_requested"
#define OPT_RAN                                                                                                        \
    "attempt = 1, fence = (SELECT nextval('job_fence_seq')), worker = v.worker, "                                      \
    "started_at = coalesce(to_timestamp(v.started_us / 1e6::float8), now()), lease_until = NULL, "
#define SUCCEED_RETURNING                                                                                              \
    ", j.id AS uid, j.schedule_id AS schedule_id, j.symbol AS symbol, v.metrics AS metrics, "                          \
    "v.trades AS trades, v.equity AS equity, v.doc AS doc, v.sig AS sig, v.eq_off AS eq_off, "                         \
    "v.eq_len AS eq_len, v.params AS params, v.blocks AS blocks"

typedef struct transition {
    const char *name;
    const char *from;      /* comma-separated states the row must be in */
    const char *to;        /* comma-separated states it may end in */
    int fenced;            /* v.fence must equal j.fence */
    const char *where;     /* extra condition, or "" */
    const char *set;       /* the SET list (updated_at is added) */
    const char *returning; /* extra RETURNING columns, each with a leading comma */
} transition;

static const transition TRANSITIONS[EV_COUNT] = {
    [EV_CLAIM] = {"claim", "queued", "running", 0,
                  " AND NOT j.cancel_requested AND NOT coalesce(j.attempt = 0 AND j.batch_id = ANY(v.tiny), false)",
                  "status = 'running', attempt = j.attempt + 1, fence = (SELECT nextval('job_fence_seq')), "
                  "lease_until = now() + v.lease_ms * interval '1 millisecond', worker = v.worker, "
                  "started_at = now(), finished_at = NULL",
                  ", j.user_id::text AS user_id, j.kind::text AS kind, j.attempt AS attempt, "
                  "j.max_attempts AS max_attempts, j.fence AS fence, j.symbol AS symbol, "
                  "j.timeframe AS timeframe, j.batch_id AS batch_id, j.combo_index AS combo_index, "
                  "j.schedule_id AS schedule_id, floor(extract(epoch FROM j.from_ts))::bigint AS from_s, "
                  "floor(extract(epoch FROM j.to_ts))::bigint AS to_s, j.logic::text AS logic, "
                  "false AS optimistic, NULL::bigint AS started_us, "
                  "floor(extract(epoch FROM (now() - j.queued_at)) * 1000000)::bigint AS wait_us"},
    [EV_HEARTBEAT] = {"heartbeat", "running", "running", 1, "",
                      "lease_until = now() + v.lease_ms * interval '1 millisecond'",
                      ", j.cancel_requested AS cancel_requested"},
    /* A cancel always wins: a job whose cancel was requested ends cancelled
     * whatever the attempt's outcome, and the results and signals inserts
     * take only the rows that became succeeded (the UPDATE sees a request
     * committed before it, as it waits on the row lock of one in flight). */
    [EV_SUCCEED] = {"succeeded", "running", "succeeded,cancelled", 1, "",
                    "status = (CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'succeeded' END)::job_status, "
                    "finished_at = now(), lease_until = NULL, "
                    "error = CASE WHEN j.cancel_requested THEN 'cancelled on request' END, "
                    "error_class = CASE WHEN j.cancel_requested THEN 'cancelled' END",
                    /* what the results and signals inserts need, so that they read u alone */
                    SUCCEED_RETURNING},
    [EV_FAIL] = {"failed", "running", "failed,cancelled", 1, "",
                 "status = (CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'failed' END)::job_status, "
                 "finished_at = now(), lease_until = NULL, error = v.error, "
                 "error_class = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'permanent' END",
                 ""},
    [EV_RETRY] = {"transient", "running", "pending,dead,cancelled", 1, "",
                  "status = (CASE WHEN j.cancel_requested THEN 'cancelled' WHEN j.attempt >= j.max_attempts "
                  "THEN 'dead' ELSE 'pending' END)::job_status, "
                  "run_at = now() + (" BACKOFF_D " / 2 + random() * " BACKOFF_D " / 2) * interval '1 millisecond', "
                  "finished_at = CASE WHEN " GIVE_UP " THEN now() END, lease_until = NULL, error = v.error, "
                  "error_class = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE v.error_class END",
                  ""},
    [EV_CANCELLED] = {"cancelled", "running", "cancelled", 1, "",
                      "status = 'cancelled', finished_at = now(), lease_until = NULL, "
                      "error = coalesce(v.error, 'cancelled on request'), error_class = 'cancelled'",
                      ""},
    [EV_RELEASE] = {"released", "running", "pending,cancelled", 1, "",
                    "status = (CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'pending' END)::job_status, "
                    "attempt = CASE WHEN j.cancel_requested THEN j.attempt ELSE greatest(j.attempt - 1, 0) END, "
                    "run_at = now(), lease_until = NULL, "
                    "finished_at = CASE WHEN j.cancel_requested THEN now() END, "
                    "error_class = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE j.error_class END",
                    ""},
    [EV_SUCCEED_OPT] = {"succeeded", "queued", "succeeded", 0, OPT_WHERE,
                        "status = 'succeeded', " OPT_RAN "finished_at = now(), error = NULL, error_class = NULL",
                        SUCCEED_RETURNING},
    [EV_FAIL_OPT] = {"failed", "queued", "failed", 0, OPT_WHERE,
                     "status = 'failed', " OPT_RAN "finished_at = now(), error = v.error, error_class = 'permanent'",
                     ""},
    /* attempt 1 ended: d = min(cap, base) */
    [EV_RETRY_OPT] = {"transient", "queued", "pending,dead", 0, OPT_WHERE,
                      "status = (CASE WHEN j.max_attempts <= 1 THEN 'dead' ELSE 'pending' END)::job_status, " OPT_RAN
                      "run_at = now() + (least(v.cap_ms, v.base_ms) / 2 + random() * least(v.cap_ms, v.base_ms) / 2) "
                      "* interval '1 millisecond', finished_at = CASE WHEN j.max_attempts <= 1 THEN now() END, "
                      "error = v.error, error_class = v.error_class",
                      ""},
    [EV_RELEASE_OPT] = {"released", "queued", "pending", 0, OPT_WHERE, "status = 'pending', run_at = now()", ""},
    /* sf_job_lease_expired: an expired Redis lease of a member never claimed */
    [EV_LEASE_LOST] =
        {"lease_lost", "queued", "queued,dead", 0, " AND j.attempt = 0 AND j.batch_id IS NOT NULL",
         "attempt = 1, status = (CASE WHEN j.max_attempts <= 1 THEN 'dead' ELSE 'queued' END)::job_status, "
         "finished_at = CASE WHEN j.max_attempts <= 1 THEN now() END, "
         "error = 'lease expired before the job finished (worker stopped or lost)', error_class = 'lease'",
         ""},
    [EV_CANCEL] = {"cancel", "pending,queued", "cancelled", 0, "",
                   "status = 'cancelled', cancel_requested = true, finished_at = now(), "
                   "error = 'cancelled on request', error_class = 'cancelled'",
                   ", j.user_id::text AS user_id, j.priority AS priority, "
                   "floor(extract(epoch FROM j.created_at) * 1000)::bigint AS created_ms"},
    [EV_REQUEST_CANCEL] = {"request_cancel", "running", "running", 0, "", "cancel_requested = true", ""},
    [EV_RELAY] = {"relay", "pending", "queued", 0, "", "status = 'queued', queued_at = now()",
                  ", j.user_id::text AS user_id, j.priority AS priority, "
                  "floor(extract(epoch FROM j.created_at) * 1000)::bigint AS created_ms"},
    [EV_REAP] = {"reap", "running", "pending,dead,cancelled", 0, " AND j.lease_until < now()",
                 "status = (CASE WHEN j.cancel_requested THEN 'cancelled' WHEN j.attempt >= j.max_attempts "
                 "THEN 'dead' ELSE 'pending' END)::job_status, "
                 "run_at = now() + (" BACKOFF_D " / 2 + random() * " BACKOFF_D " / 2) * interval '1 millisecond', "
                 "finished_at = CASE WHEN " GIVE_UP " THEN now() END, lease_until = NULL, "
                 "error = 'lease expired (worker ' || coalesce(j.worker, '?') || ')', "
                 "error_class = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'lease' END",
                 ""},
};

static const char *const OUTCOME_NAMES[SF_JOB_OUTCOMES] = {
    [SF_JOB_SUCCEEDED] = "succeeded", [SF_JOB_FAILED] = "failed",     [SF_JOB_TRANSIENT] = "transient",
    [SF_JOB_CANCELLED] = "cancelled", [SF_JOB_RELEASED] = "released",
};

static const event OUTCOME_EVENTS[2][SF_JOB_OUTCOMES] = {
    {[SF_JOB_SUCCEEDED] = EV_SUCCEED,
     [SF_JOB_FAILED] = EV_FAIL,
     [SF_JOB_TRANSIENT] = EV_RETRY,
     [SF_JOB_CANCELLED] = EV_CANCELLED,
     [SF_JOB_RELEASED] = EV_RELEASE},
    /* optimistic: a stop on request or a release gives the row back unspent */
    {[SF_JOB_SUCCEEDED] = EV_SUCCEED_OPT,
     [SF_JOB_FAILED] = EV_FAIL_OPT,
     [SF_JOB_TRANSIENT] = EV_RETRY_OPT,
     [SF_JOB_CANCELLED] = EV_RELEASE_OPT,
     [SF_JOB_RELEASED] = EV_RELEASE_OPT},
};

const char *sf_job_outcome_name(sf_job_outcome outcome)
{
    if ((int)outcome < 0 || outcome >= SF_JOB_OUTCOMES)
        return "unknown";
    return OUTCOME_NAMES[outcome];
}

/* 1 when word is one of the comma-separated items of list. */
static int in_list(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == wl && strncmp(p, word, wl) == 0)
            return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}

int sf_job_transition_allowed(const char *from, const char *to)
{
    for (int i = 0; i < EV_COUNT; i++)
        if (in_list(TRANSITIONS[i].from, from) && in_list(TRANSITIONS[i].to, to))
            return 1;
    return 0;
}

/* "'a','b'" from "a,b". */
static sf_status quote_list(sf_buf *sql, const char *list, sf_err *err)
{
    sf_status st = SF_OK;
    for (const char *p = list; *p && st == SF_OK;) {
        const char *end = strchr(p, ',');
        int len = end ? (int)(end - p) : (int)strlen(p);
        st = sf_buf_printf(sql, err, "%s'%.*s'", p == list ? "" : ",", len, p);
        p += len + (end ? 1 : 0);
    }
    return st;
}

/* The one SQL builder for state changes. */
static sf_status build_update(sf_buf *sql, event ev, const char *source, const char *tail, sf_err *err)
{
    const transition *t = &TRANSITIONS[ev];
    sf_buf_init(sql, SQL_MAX);
    sf_status st = sf_buf_printf(sql, err,
                                 "WITH v AS (%s), u AS (UPDATE jobs j SET %s, updated_at = now() "
                                 "FROM v WHERE j.id = v.id%s AND CASE WHEN j.status::text IN (",
                                 source, t->set, t->fenced ? " AND j.fence = v.fence" : "");
    if (st == SF_OK)
        st = quote_list(sql, t->from, err);
    if (st == SF_OK)
        st = sf_buf_printf(sql, err,
                           ")%s THEN true ELSE false END "
                           "RETURNING j.id::text AS id, j.status::text AS status%s) %s",
                           t->where, t->returning, tail ? tail : "SELECT id, status FROM u");
    if (st != SF_OK)
        sf_buf_destroy(sql);
    return st;
}

/* Build and run one transition; lengths and formats as sf_db_query_prepared_bin
 * (NULL: all parameters text). */
static sf_status run_update_bin(sf_db *db, event ev, const char *source, const char *tail, int nparams,
                                const char *const *params, const int *lengths, const int *formats, sf_db_res **res,
                                sf_err *err)
{
    sf_buf sql;
    sf_status st = build_update(&sql, ev, source, tail, err);
    if (st != SF_OK)
        return st;
    /* Named statement: the texts are fixed per transition, and parsing and
     * planning these CTEs cost more than running them for a few rows. */
    st = sf_db_query_prepared_bin(db, sf_buf_str(&sql), nparams, params, lengths, formats, res, err);
    sf_buf_destroy(&sql);
    return st;
}

static sf_status run_update(sf_db *db, event ev, const char *source, const char *tail, int nparams,
                            const char *const *params, sf_db_res **res, sf_err *err)
{
    return run_update_bin(db, ev, source, tail, nparams, params, NULL, NULL, res, err);
}

/* ---- array literals ----------------------------------------------------- */

static int uuid_ok(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return 0;
    }
    return 1;
}

static sf_status check_batch(size_t n, sf_err *err)
{
    if (n > SF_JOB_BATCH_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "job call has %zu ids; the limit is %d", n, SF_JOB_BATCH_MAX);
    return SF_OK;
}

/* Append one element (NULL = SQL NULL) to an array literal being built. */
static sf_status arr_add(sf_buf *b, const char *s, size_t max_len, sf_err *err)
{
    sf_status st = sf_buf_puts(b, b->len > 1 ? "," : "", err);
    if (st != SF_OK || s == NULL)
        return st == SF_OK ? sf_buf_puts(b, "NULL", err) : st;
    st = sf_buf_puts(b, "\"", err);
    size_t len = strlen(s);
    if (len > max_len)
        len = max_len;
    for (size_t i = 0; i < len && st == SF_OK;) {
        size_t run = strcspn(s + i, "\"\\");
        if (run > len - i)
            run = len - i;
        st = sf_buf_append(b, s + i, run, err);
        i += run;
        if (st == SF_OK && i < len) {
            char esc[2] = {'\\', s[i]};
            st = sf_buf_append(b, esc, 2, err);
            i++;
        }
    }
    return st == SF_OK ? sf_buf_puts(b, "\"", err) : st;
}

static sf_status arr_begin(sf_buf *b, sf_err *err)
{
    sf_buf_init(b, PARAM_MAX);
    return sf_buf_puts(b, "{", err);
}

/* An array literal of uuids, each validated. */
static sf_status uuid_array(sf_buf *b, const char *const *ids, size_t n, sf_err *err)
{
    sf_status st = arr_begin(b, err);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        if (!uuid_ok(ids[i]))
            st = sf_err_set(err, SF_ERR_INVALID, "job id \"%.40s\": not a uuid", ids[i]);
        else
            st = arr_add(b, ids[i], SIZE_MAX, err);
    }
    if (st == SF_OK)
        st = sf_buf_puts(b, "}", err);
    return st;
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static int64_t get_i64(const sf_db_res *res, int row, int col, int64_t dflt)
{
    const char *s = sf_db_get(res, row, col);
    return s ? strtoll(s, NULL, 10) : dflt;
}

/* ---- claim -------------------------------------------------------------- */

/* Claims and heartbeats commit with synchronous_commit off (this transaction
 * only, set inside the statement: one round trip, safe behind transaction
 * pooling). Losing one in a crash is harmless: a lost claim leaves the row
 * queued (the Redis lease expires and the reaper returns the id to ready; the
 * worker's completion, fenced on the lost fence, writes nothing), a lost
 * renewal only shortens a lease. A later durable commit (a completion)
 * flushes the WAL before it, so no completion outlives its claim. */
#define ASYNC_COMMIT "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"

static const char CLAIM_SOURCE[] = "SELECT unnest($1::uuid[]) AS id, $2::bigint AS lease_ms, $3::text AS worker, "
                                   "$4::uuid[] AS tiny FROM " ASYNC_COMMIT;

/* u: the claimed rows; o: the optimistic reads (tiny batches' members on
 * their first attempt), which the UPDATE leaves alone. Both see the
 * statement's snapshot: a row is in one or the other, never both. o reads
 * each id by the primary key (OFFSET 0 keeps the subquery a probe per id):
 * joined plainly, the planner scanned jobs_batch for the tiny batches' every
 * member, 20,000 rows a claim. */
static const char CLAIM_TAIL[] =
    ", o AS (SELECT j.id::text AS id, j.status::text AS status, j.user_id::text AS user_id, "
    "j.kind::text AS kind, 1 AS attempt, j.max_attempts AS max_attempts, NULL::bigint AS fence, "
    "j.symbol AS symbol, j.timeframe AS timeframe, j.batch_id AS batch_id, "
    "j.combo_index AS combo_index, j.schedule_id AS schedule_id, "
    "floor(extract(epoch FROM j.from_ts))::bigint AS from_s, "
    "floor(extract(epoch FROM j.to_ts))::bigint AS to_s, j.logic::text AS logic, "
    "true AS optimistic, floor(extract(epoch FROM now()) * 1000000)::bigint AS started_us, "
    "floor(extract(epoch FROM (now() - j.queued_at)) * 1000000)::bigint AS wait_us "
    "FROM v CROSS JOIN LATERAL (SELECT * FROM jobs j WHERE j.id = v.id OFFSET 0) j "
    "WHERE j.status::text = 'queued' AND NOT j.cancel_requested "
    "AND j.attempt = 0 AND j.batch_id = ANY(v.tiny)) "
    "SELECT u.id, u.user_id, u.kind, u.attempt, u.max_attempts, u.fence, u.symbol, u.timeframe, "
    "u.batch_id::text, u.combo_index, u.schedule_id, u.from_s, u.to_s, "
    "CASE WHEN u.first THEN coalesce(u.logic, b.logic::text) END, "
    "CASE WHEN u.first THEN b.grid::text END, d.version, u.optimistic, u.started_us, u.wait_us, b.blocks "
    "FROM (SELECT u.*, u.batch_id IS NULL OR row_number() OVER (PARTITION BY u.batch_id) = 1 "
    "AS first FROM (SELECT * FROM u UNION ALL SELECT * FROM o) u) u "
    "LEFT JOIN batches b ON b.id = u.batch_id AND u.first "
    "LEFT JOIN datasets d ON d.symbol = u.symbol AND d.timeframe = u.timeframe";

enum {
    C_ID,
    C_USER,
    C_KIND,
    C_ATTEMPT,
    C_MAX,
    C_FENCE,
    C_SYMBOL,
    C_TF,
    C_BATCH,
    C_COMBO,
    C_SCHED,
    C_FROM,
    C_TO,
    C_LOGIC,
    C_GRID,
    C_DSVER,
    C_OPT,
    C_STARTED,
    C_WAIT,
    C_BLOCKS
};

static char *dup_col(const sf_db_res *res, int row, int col, size_t *len)
{
    const char *s = sf_db_get(res, row, col);
    *len = 0;
    if (s == NULL)
        return NULL;
    *len = strlen(s);
    char *d = malloc(*len + 1);
    if (d)
        memcpy(d, s, *len + 1);
    return d;
}

/* Why a row can't be run, or NULL. */
static const char *row_problem(const sf_db_res *res, int row, const sf_job *job)
{
    if (strlen(sf_db_get(res, row, C_SYMBOL)) >= SF_JOB_SYMBOL_MAX)
        return "symbol: too long";
    if (strlen(sf_db_get(res, row, C_TF)) >= SF_JOB_TIMEFRAME_MAX)
        return "timeframe: too long";
    if (job->logic == NULL)
        return "job has no logic";
    if (job->batch_id[0] && (job->grid == NULL || job->combo_index < 0))
        return "sweep member without a grid or combination index";
    return NULL;
}

static sf_status fill_job(const sf_db_res *res, int row, sf_job *job, sf_err *err)
{
    memset(job, 0, sizeof *job);
    copy_text(job->id, sizeof job->id, sf_db_get(res, row, C_ID));
    copy_text(job->user_id, sizeof job->user_id, sf_db_get(res, row, C_USER));
    copy_text(job->kind, sizeof job->kind, sf_db_get(res, row, C_KIND));
    copy_text(job->symbol, sizeof job->symbol, sf_db_get(res, row, C_SYMBOL));
    copy_text(job->timeframe, sizeof job->timeframe, sf_db_get(res, row, C_TF));
    copy_text(job->batch_id, sizeof job->batch_id, sf_db_get(res, row, C_BATCH));
    job->attempt = (int)get_i64(res, row, C_ATTEMPT, 0);
    job->max_attempts = (int)get_i64(res, row, C_MAX, 1);
    job->fence = get_i64(res, row, C_FENCE, 0);
    job->combo_index = get_i64(res, row, C_COMBO, -1);
    job->schedule_id = get_i64(res, row, C_SCHED, 0);
    job->has_from = !sf_db_is_null(res, row, C_FROM);
    job->has_to = !sf_db_is_null(res, row, C_TO);
    job->from_ts = get_i64(res, row, C_FROM, INT64_MIN);
    job->to_ts = get_i64(res, row, C_TO, INT64_MAX);
    job->dataset_version = get_i64(res, row, C_DSVER, 0);
    const char *opt = sf_db_get(res, row, C_OPT);
    job->optimistic = opt != NULL && opt[0] == 't';
    job->started_us = get_i64(res, row, C_STARTED, 0);
    job->queue_wait_us = get_i64(res, row, C_WAIT, -1);
    job->blocks = (int)get_i64(res, row, C_BLOCKS, 0);
    job->logic = dup_col(res, row, C_LOGIC, &job->logic_len);
    job->grid = dup_col(res, row, C_GRID, &job->grid_len);
    if ((job->logic == NULL && !sf_db_is_null(res, row, C_LOGIC)) ||
        (job->grid == NULL && !sf_db_is_null(res, row, C_GRID))) {
        sf_job_destroy(job);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    return SF_OK;
}

/* The claim sends a batch's logic and grid with its first member only; the
 * other members of that batch in the same claim get copies. */
static sf_status share_batch_texts(sf_job *jobs, size_t n, sf_err *err)
{
    for (size_t i = 0; i < n; i++) {
        sf_job *j = &jobs[i];
        if (j->batch_id[0] == '\0' || j->logic != NULL)
            continue;
        const sf_job *from = NULL;
        for (size_t k = 0; k < n && from == NULL; k++)
            if (jobs[k].logic != NULL && strcmp(jobs[k].batch_id, j->batch_id) == 0)
                from = &jobs[k];
        if (from == NULL)
            continue; /* row_problem reports it */
        j->logic = malloc(from->logic_len + 1);
        j->grid = from->grid ? malloc(from->grid_len + 1) : NULL;
        if (j->logic == NULL || (from->grid && j->grid == NULL))
            return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        memcpy(j->logic, from->logic, from->logic_len + 1);
        j->logic_len = from->logic_len;
        j->blocks = from->blocks;
        if (from->grid) {
            memcpy(j->grid, from->grid, from->grid_len + 1);
            j->grid_len = from->grid_len;
        }
    }
    return SF_OK;
}

void sf_job_destroy(sf_job *job)
{
    if (job == NULL)
        return;
    free(job->logic);
    free(job->grid);
    job->logic = NULL;
    job->grid = NULL;
}

sf_status sf_job_claim(sf_db *db, const char *const *ids, size_t n, const char *worker, int64_t lease_ms,
                       const char *const *tiny_batches, size_t n_tiny, sf_job *out, size_t *n_out, sf_err *err)
{
    *n_out = 0;
    sf_status st = check_batch(n, err);
    if (st == SF_OK)
        st = check_batch(n_tiny, err);
    if (st != SF_OK || n == 0)
        return st;
    sf_buf arr, tiny;
    st = uuid_array(&arr, ids, n, err);
    sf_status st2 = uuid_array(&tiny, tiny_batches, n_tiny, err);
    st = st == SF_OK ? st2 : st;
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, lease_ms);
    const char *params[] = {sf_buf_str(&arr), lease, worker, sf_buf_str(&tiny)};
    sf_db_res *res = NULL;
    if (st == SF_OK)
        st = run_update(db, EV_CLAIM, CLAIM_SOURCE, CLAIM_TAIL, 4, params, &res, err);
    sf_buf_destroy(&arr);
    sf_buf_destroy(&tiny);
    int rows = st == SF_OK ? sf_db_nrows(res) : 0;
    for (int i = 0; i < rows && (size_t)i < n && st == SF_OK; i++) {
        st = fill_job(res, i, &out[*n_out], err);
        if (st == SF_OK)
            (*n_out)++;
    }
    if (st == SF_OK)
        st = share_batch_texts(out, *n_out, err);
    for (size_t i = 0; i < *n_out && st == SF_OK; i++)
        out[i].bad = row_problem(res, (int)i, &out[i]);
    sf_db_res_free(res);
    /* On a failure here the rows stay running under this worker: the heartbeat
     * never renews them, so the reaper puts them back after the lease. */
    if (st != SF_OK) {
        for (size_t i = 0; i < *n_out; i++)
            sf_job_destroy(&out[i]);
        *n_out = 0;
    }
    return st;
}

/* ---- heartbeat ---------------------------------------------------------- */

static const char HEARTBEAT_SOURCE[] = "SELECT s.id, s.fence, $3::bigint AS lease_ms "
                                       "FROM unnest($1::uuid[], $2::bigint[]) AS s(id, fence), " ASYNC_COMMIT;

static sf_status fence_array(sf_buf *b, const int64_t *fences, size_t stride, size_t n, sf_err *err)
{
    sf_status st = arr_begin(b, err);
    const char *base = (const char *)fences;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        int64_t f;
        memcpy(&f, base + i * stride, sizeof f);
        st = sf_buf_printf(b, err, "%s%" PRId64, i ? "," : "", f);
    }
    if (st == SF_OK)
        st = sf_buf_puts(b, "}", err);
    return st;
}

static sf_status lease_arrays(sf_buf *ids, sf_buf *fences, const sf_job_lease *l, size_t n, sf_err *err)
{
    sf_status st = arr_begin(ids, err);
    for (size_t i = 0; i < n && st == SF_OK; i++)
        st = uuid_ok(l[i].id) ? arr_add(ids, l[i].id, SIZE_MAX, err)
                              : sf_err_set(err, SF_ERR_INVALID, "job id \"%.40s\": not a uuid", l[i].id);
    if (st == SF_OK)
        st = sf_buf_puts(ids, "}", err);
    sf_buf_init(fences, PARAM_MAX);
    if (st == SF_OK)
        st = fence_array(fences, n ? &l[0].fence : NULL, sizeof *l, n, err);
    return st;
}

static void mark_leases(sf_job_lease *l, size_t n, const sf_db_res *res)
{
    for (size_t i = 0; i < n; i++)
        l[i].alive = l[i].cancel_requested = 0;
    for (int r = 0; r < sf_db_nrows(res); r++) {
        const char *id = sf_db_get(res, r, 0);
        const char *cr = sf_db_get(res, r, 1);
        for (size_t i = 0; i < n; i++) {
            if (strcasecmp(l[i].id, id) != 0)
                continue;
            l[i].alive = 1;
            l[i].cancel_requested = cr && cr[0] == 't';
        }
    }
}

sf_status sf_job_heartbeat(sf_db *db, sf_job_lease *leases, size_t n, int64_t lease_ms, sf_err *err)
{
    sf_status st = check_batch(n, err);
    if (st != SF_OK || n == 0)
        return st;
    sf_buf ids, fences;
    st = lease_arrays(&ids, &fences, leases, n, err);
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, lease_ms);
    const char *params[] = {sf_buf_str(&ids), sf_buf_str(&fences), lease};
    sf_db_res *res = NULL;
    if (st == SF_OK)
        st = run_update(db, EV_HEARTBEAT, HEARTBEAT_SOURCE, "SELECT id, cancel_requested FROM u", 3, params, &res, err);
    sf_buf_destroy(&ids);
    sf_buf_destroy(&fences);
    if (st == SF_OK)
        mark_leases(leases, n, res);
    sf_db_res_free(res);
    return st;
}

/* ---- completion --------------------------------------------------------- */

/* $11/$12: each row's slice (offset, length; NULL = none) of the equity
 * curves of the whole batch, $17 (times, bigint[]) and $18 (values, float8[]),
 * both sent in binary. $13/$14: an optimistic row's worker and start time
 * (NULL for the others). $15: a sweep member's parameters, $16 its block
 * statistics in hex (sf/overfit.h; NULL for the others). */
static const char COMPLETE_SOURCE[] =
    "SELECT s.id, s.fence, s.error, s.metrics, s.trades, s.equity, s.doc, $7::float8 AS base_ms, "
    "$8::float8 AS cap_ms, 'transient'::text AS error_class, s.sig, s.eq_off, s.eq_len, "
    "s.worker, s.started_us, s.params, s.blocks "
    "FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$9::text[], $10::text[], $11::int[], $12::int[], $13::text[], $14::bigint[], $15::text[], $16::text[]) "
    "AS s(id, fence, error, metrics, trades, equity, doc, sig, eq_off, eq_len, worker, started_us, "
    "params, blocks)";

/* The results row of each updated succeeded job. metrics is jsonb (the
 * leaderboard orders by metrics->>'sharpe'); trades are json (validated
 * text: no jsonb tree to build, see migration 0004); the equity curve is two
 * arrays, times and values (migration 0006: no number is printed or parsed),
 * or, from a caller that sends JSON text, the json column. A sweep member's
 * row is compact (migration 0011): params, and trades and equity NULL when
 * it sends none (else they default to []). Only rows the UPDATE made
 * succeeded get one (a cancelled job stores no result). The
 * whole-document parameter is parsed only for rows that send it. The inserts
 * read u alone (the UPDATE returns the parameters' columns it needs): a join
 * of u to v was planned, in a generic plan made while batches were single
 * rows, as a nested loop over both, quadratic in the batch. */
#define RESULTS_INSERT                                                                                                 \
    "r AS (INSERT INTO results (job_id, metrics, trades, equity, equity_t, equity_v, params, blocks) "                 \
    "SELECT u.uid, coalesce(u.metrics::jsonb, d.doc->'metrics', '{}'), "                                               \
    "coalesce(u.trades::json, (d.doc->'trades')::json, CASE WHEN u.params IS NULL THEN '[]'::json END), "              \
    "CASE WHEN u.eq_len IS NULL THEN coalesce(u.equity::json, (d.doc->'equity')::json, "                               \
    "CASE WHEN u.params IS NULL THEN '[]'::json END) END, "                                                            \
    "CASE WHEN u.eq_len IS NOT NULL THEN ($17::bigint[])[u.eq_off + 1 : u.eq_off + u.eq_len] END, "                    \
    "CASE WHEN u.eq_len IS NOT NULL THEN ($18::float8[])[u.eq_off + 1 : u.eq_off + u.eq_len] END, "                    \
    "u.params::jsonb, decode(u.blocks, 'hex') "                                                                        \
    "FROM u CROSS JOIN LATERAL (SELECT u.doc::jsonb AS doc) d WHERE u.status = 'succeeded' "
#define RESULTS_UPSERT                                                                                                 \
    "ON CONFLICT (job_id) DO UPDATE SET metrics = EXCLUDED.metrics, trades = EXCLUDED.trades, "                        \
    "equity = EXCLUDED.equity, equity_t = EXCLUDED.equity_t, equity_v = EXCLUDED.equity_v, "                           \
    "params = EXCLUDED.params, blocks = EXCLUDED.blocks, created_at = now())"

static const char SUCCEED_TAIL[] = ", " RESULTS_INSERT RESULTS_UPSERT " SELECT id, status FROM u";

/* Succeeded rows when some carry a signal: a results row for the others, a
 * signals row (the webhook outbox entry when the schedule has a URL) for them. */
static const char SIGNAL_TAIL[] =
    ", " RESULTS_INSERT "AND u.sig IS NULL " RESULTS_UPSERT ", "
    "g AS (INSERT INTO signals (job_id, schedule_id, symbol, bar_time, signal, side, webhook_status, "
    "webhook_due_at) SELECT u.uid, u.schedule_id, u.symbol, to_timestamp((x.s->>'bar_time')::bigint), "
    "x.s->>'signal', x.s->>'side', CASE WHEN sc.webhook_url IS NOT NULL THEN 'pending' END, "
    "CASE WHEN sc.webhook_url IS NOT NULL THEN now() END "
    "FROM u CROSS JOIN LATERAL (SELECT u.sig::jsonb AS s) x LEFT JOIN schedules sc ON sc.id = u.schedule_id "
    "WHERE u.sig IS NOT NULL AND u.status = 'succeeded' ON CONFLICT (job_id) DO NOTHING) "
    "SELECT id, status FROM u";

/* Completion parameters: small ones as text array literals, then the big
 * ones (JSON documents, equity curves) as binary arrays: nothing escaped,
 * unescaped, printed or parsed on the way. */
enum {
    A_IDS,
    A_FENCES,
    A_ERRORS,
    A_WORKER,
    A_STARTED,
    A_SIG,
    A_EQ_OFF,
    A_EQ_LEN,
    A_TEXT_COUNT,
    A_METRICS = A_TEXT_COUNT,
    A_TRADES,
    A_EQUITY,
    A_DOC,
    A_EQ_T,
    A_EQ_V,
    A_PARAMS,
    A_BLOCKS,
    A_COUNT
};

static const char *const SIGNAL_NAMES[] = {"enter", "exit", "hold", "flat"};

/* The signal as the JSON text SIGNAL_TAIL reads; NULL = none. */
static sf_status signal_json(const sf_job_signal *sig, char *buf, size_t size, const char **out, sf_err *err)
{
    *out = NULL;
    if (sig == NULL)
        return SF_OK;
    int known = 0;
    for (size_t i = 0; i < sizeof SIGNAL_NAMES / sizeof SIGNAL_NAMES[0]; i++)
        known |= sig->signal != NULL && strcmp(sig->signal, SIGNAL_NAMES[i]) == 0;
    if (!known)
        return sf_err_set(err, SF_ERR_INVALID, "signal \"%.16s\": not enter, exit, hold or flat",
                          sig->signal ? sig->signal : "");
    snprintf(buf, size, "{\"bar_time\":%" PRId64 ",\"signal\":\"%s\",\"side\":%s}", sig->bar_time, sig->signal,
             sig->side > 0   ? "\"long\""
             : sig->side < 0 ? "\"short\""
                             : "null");
    *out = buf;
    return SF_OK;
}

/* A JSON document as a binary text[] element (NULL stays NULL). */
static sf_status doc_add(sf_buf *b, const char *s, sf_err *err)
{
    return sf_db_bin_array_add_text(b, s, s ? strlen(s) : 0, err);
}

/* A member's packed block statistics as hex text (NULL stays NULL). */
static sf_status blocks_add(sf_buf *b, const uint8_t *p, size_t len, sf_err *err)
{
    static const char HEX[] = "0123456789abcdef";
    char hex[2 * SF_OVERFIT_PACKED_MAX];
    if (p == NULL || len == 0)
        return sf_db_bin_array_add_text(b, NULL, 0, err);
    if (len > SF_OVERFIT_PACKED_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "block statistics: %zu bytes, more than %d", len, SF_OVERFIT_PACKED_MAX);
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = HEX[p[i] >> 4];
        hex[2 * i + 1] = HEX[p[i] & 15];
    }
    return sf_db_bin_array_add_text(b, hex, 2 * len, err);
}

/* One row's equity slice: its offset and length into the batch's arrays, or
 * NULL and NULL (the row sends JSON text or nothing). */
static sf_status equity_slice(sf_buf a[A_COUNT], const sf_job_done *d, sf_err *err)
{
    if (d->equity_v == NULL || d->equity_t == NULL) {
        sf_status st = arr_add(&a[A_EQ_OFF], NULL, SIZE_MAX, err);
        return st == SF_OK ? arr_add(&a[A_EQ_LEN], NULL, SIZE_MAX, err) : st;
    }
    size_t off = sf_db_bin_array_count(&a[A_EQ_V]);
    if (off + d->equity_n > INT32_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "completion batch: more than %d equity points", INT32_MAX);
    char o[24], l[24];
    snprintf(o, sizeof o, "%zu", off);
    snprintf(l, sizeof l, "%zu", d->equity_n);
    sf_status st = arr_add(&a[A_EQ_OFF], o, SIZE_MAX, err);
    if (st == SF_OK)
        st = arr_add(&a[A_EQ_LEN], l, SIZE_MAX, err);
    if (st == SF_OK)
        st = sf_db_bin_array_add_i8(&a[A_EQ_T], d->equity_t, d->equity_n, err);
    if (st == SF_OK)
        st = sf_db_bin_array_add_f8(&a[A_EQ_V], d->equity_v, d->equity_n, err);
    return st;
}

/* One row of done[] into the arrays. */
static sf_status completion_row(sf_buf a[A_COUNT], const sf_job_done *d, int ok_row, sf_err *err)
{
    if (!uuid_ok(d->id))
        return sf_err_set(err, SF_ERR_INVALID, "job id \"%.40s\": not a uuid", d->id);
    char fence[24];
    snprintf(fence, sizeof fence, "%" PRId64, d->fence);
    sf_status st = arr_add(&a[A_IDS], d->id, SIZE_MAX, err);
    if (st == SF_OK)
        st = arr_add(&a[A_FENCES], fence, SIZE_MAX, err);
    if (st == SF_OK)
        st = arr_add(&a[A_ERRORS], d->error, SF_JOB_ERROR_MAX, err);
    char started[24] = "";
    if (d->optimistic && d->started_us > 0)
        snprintf(started, sizeof started, "%" PRId64, d->started_us);
    if (st == SF_OK)
        st = arr_add(&a[A_WORKER], d->optimistic ? (d->worker ? d->worker : "") : NULL, SIZE_MAX, err);
    if (st == SF_OK)
        st = arr_add(&a[A_STARTED], started[0] ? started : NULL, SIZE_MAX, err);
    if (st != SF_OK || !ok_row)
        return st;
    char sig_buf[128];
    const char *sig = NULL;
    if ((st = signal_json(d->signal, sig_buf, sizeof sig_buf, &sig, err)) == SF_OK)
        st = arr_add(&a[A_SIG], sig, SIZE_MAX, err);
    if (st == SF_OK)
        st = doc_add(&a[A_METRICS], d->metrics, err);
    if (st == SF_OK)
        st = doc_add(&a[A_TRADES], d->trades, err);
    if (st == SF_OK)
        st = doc_add(&a[A_EQUITY], d->equity, err);
    if (st == SF_OK)
        st = doc_add(&a[A_DOC], d->result, err);
    if (st == SF_OK)
        st = doc_add(&a[A_PARAMS], d->params, err);
    if (st == SF_OK)
        st = blocks_add(&a[A_BLOCKS], d->blocks, d->blocks_len, err);
    if (st == SF_OK)
        st = equity_slice(a, d, err);
    return st;
}

/* 1 when done's row belongs to the group of outcome o and kind opt. */
static int in_group(const sf_job_done *d, sf_job_outcome o, int opt)
{
    return d->outcome == o && (d->optimistic != 0) == opt;
}

/* The array parameters of the rows of done[] in group (o, opt). */
static sf_status completion_arrays(sf_buf a[A_COUNT], const sf_job_done *done, size_t n, sf_job_outcome o, int opt,
                                   sf_err *err)
{
    static const sf_db_elem bin_type[A_COUNT - A_TEXT_COUNT] = {SF_DB_TEXT, SF_DB_TEXT,   SF_DB_TEXT, SF_DB_TEXT,
                                                                SF_DB_INT8, SF_DB_FLOAT8, SF_DB_TEXT, SF_DB_TEXT};
    sf_status st = SF_OK;
    for (int k = 0; k < A_TEXT_COUNT; k++)
        sf_buf_init(&a[k], PARAM_MAX);
    for (int k = A_TEXT_COUNT; k < A_COUNT; k++) {
        sf_status s2 = sf_db_bin_array_init(&a[k], bin_type[k - A_TEXT_COUNT], PARAM_MAX, err);
        st = st == SF_OK ? s2 : st;
    }
    for (int k = 0; k < A_TEXT_COUNT && st == SF_OK; k++)
        st = sf_buf_puts(&a[k], "{", err);
    for (size_t i = 0; i < n && st == SF_OK; i++)
        if (in_group(&done[i], o, opt))
            st = completion_row(a, &done[i], o == SF_JOB_SUCCEEDED, err);
    for (int k = 0; k < A_TEXT_COUNT && st == SF_OK; k++)
        st = sf_buf_puts(&a[k], "}", err);
    for (int k = A_TEXT_COUNT; k < A_COUNT && st == SF_OK; k++)
        st = sf_db_bin_array_finish(&a[k], err);
    return st;
}

static int cmp_done_id(const void *a, const void *b)
{
    return strcasecmp((*(sf_job_done *const *)a)->id, (*(sf_job_done *const *)b)->id);
}

static void mark_one(sf_job_done *d, const char *status)
{
    d->applied = 1;
    copy_text(d->status, sizeof d->status, status);
}

/* Mark the rows the statement changed: done[] sorted by id once, then one
 * binary search per returned row (n <= SF_JOB_BATCH_MAX: checked by the
 * caller). A batch that names one id twice gets both marked. */
static void mark_done(sf_job_done *done, size_t n, sf_job_outcome o, int opt, const sf_db_res *res)
{
    sf_job_done *by_id[SF_JOB_BATCH_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n && m < SF_JOB_BATCH_MAX; i++)
        if (in_group(&done[i], o, opt))
            by_id[m++] = &done[i];
    qsort(by_id, m, sizeof *by_id, cmp_done_id);
    for (int r = 0; r < sf_db_nrows(res); r++) {
        sf_job_done key;
        copy_text(key.id, sizeof key.id, sf_db_get(res, r, 0));
        const sf_job_done *kp = &key;
        sf_job_done **hit = bsearch(&kp, by_id, m, sizeof *by_id, cmp_done_id);
        if (hit == NULL)
            continue;
        size_t lo = (size_t)(hit - by_id), hi = lo;
        while (lo > 0 && strcasecmp(by_id[lo - 1]->id, key.id) == 0)
            lo--;
        while (hi + 1 < m && strcasecmp(by_id[hi + 1]->id, key.id) == 0)
            hi++;
        for (size_t k = lo; k <= hi; k++)
            mark_one(by_id[k], sf_db_get(res, r, 1));
    }
}

/* One statement for the rows of done[] in group (o, opt). */
static sf_status complete_statement(sf_db *db, sf_job_done *done, size_t n, sf_job_outcome o, int opt,
                                    const sf_job_retry *retry, sf_err *err)
{
    sf_buf a[A_COUNT];
    sf_status st = completion_arrays(a, done, n, o, opt, err);
    char base[32], cap[32];
    snprintf(base, sizeof base, "%" PRId64, retry->base_ms);
    snprintf(cap, sizeof cap, "%" PRId64, retry->cap_ms);
    /* $1..$18 as COMPLETE_SOURCE numbers them */
    const int order[18] = {A_IDS, A_FENCES, A_ERRORS, A_METRICS, A_TRADES,  A_EQUITY, -1,       -1,     A_DOC,
                           A_SIG, A_EQ_OFF, A_EQ_LEN, A_WORKER,  A_STARTED, A_PARAMS, A_BLOCKS, A_EQ_T, A_EQ_V};
    const char *params[18];
    int lengths[18], formats[18];
    for (int k = 0; k < 18; k++) {
        int i = order[k];
        params[k] = i < 0 ? (k == 6 ? base : cap) : i < A_TEXT_COUNT ? sf_buf_str(&a[i]) : a[i].data;
        lengths[k] = i < A_TEXT_COUNT ? 0 : (int)a[i].len;
        formats[k] = i >= A_TEXT_COUNT;
    }
    const char *tail = NULL;
    for (size_t i = 0; o == SF_JOB_SUCCEEDED && i < n; i++)
        tail = in_group(&done[i], o, opt) && done[i].signal ? SIGNAL_TAIL : tail;
    if (o == SF_JOB_SUCCEEDED && tail == NULL)
        tail = SUCCEED_TAIL;
    sf_db_res *res = NULL;
    if (st == SF_OK)
        st = run_update_bin(db, OUTCOME_EVENTS[opt][o], COMPLETE_SOURCE, tail,
                            o == SF_JOB_SUCCEEDED ? 18 : 16, /* only results use $17, $18 */
                            params, lengths, formats, &res, err);
    for (int k = 0; k < A_COUNT; k++)
        sf_buf_destroy(&a[k]);
    if (st == SF_OK)
        mark_done(done, n, o, opt, res);
    sf_db_res_free(res);
    return st;
}

static size_t text_bytes(const char *s)
{
    return s ? strlen(s) : 0;
}

size_t sf_job_done_bytes(const sf_job_done *d)
{
    size_t eq = d->equity_t && d->equity_v ? d->equity_n * (sizeof(int64_t) + sizeof(double)) : 0;
    return text_bytes(d->error) + text_bytes(d->metrics) + text_bytes(d->trades) + text_bytes(d->equity) +
           text_bytes(d->result) + text_bytes(d->params) + 2 * d->blocks_len + eq;
}

/* The end of the statement that starts at done[start]: the group's rows from
 * there while their bytes stay within SF_JOB_STATEMENT_BYTES (at least one;
 * check_done refused any row above it alone). */
static size_t statement_end(const sf_job_done *done, size_t n, size_t start, sf_job_outcome o, int opt)
{
    size_t bytes = 0, rows = 0, i = start;
    for (; i < n; i++) {
        if (!in_group(&done[i], o, opt))
            continue;
        size_t b = sf_job_done_bytes(&done[i]);
        if (rows > 0 && bytes + b > SF_JOB_STATEMENT_BYTES)
            break;
        bytes += b;
        rows++;
    }
    return i;
}

/* The group's rows in as many statements as their bytes need (usually one). */
static sf_status complete_group(sf_db *db, sf_job_done *done, size_t n, sf_job_outcome o, int opt,
                                const sf_job_retry *retry, sf_err *err)
{
    sf_status st = SF_OK;
    for (size_t start = 0; start < n && st == SF_OK;) {
        size_t end = statement_end(done, n, start, o, opt);
        int any = 0;
        for (size_t i = start; i < end && !any; i++)
            any = in_group(&done[i], o, opt);
        if (any)
            st = complete_statement(db, done + start, end - start, o, opt, retry, err);
        start = end;
    }
    return st;
}

/* present[o][opt]: rows of outcome o, optimistic or claimed; *groups: how many
 * (outcome, kind) groups, one statement each unless *big (the rows' bytes
 * exceed one statement's). A row too big for any statement is SF_ERR_LIMIT. */
static sf_status check_done(const sf_job_done *done, size_t n, int present[][2], int *groups, int *big, sf_err *err)
{
    *groups = 0;
    size_t total = 0;
    for (int o = 0; o < SF_JOB_OUTCOMES; o++)
        present[o][0] = present[o][1] = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)done[i].outcome < 0 || done[i].outcome >= SF_JOB_OUTCOMES)
            return sf_err_set(err, SF_ERR_INVALID, "job %.40s: unknown outcome %d", done[i].id, (int)done[i].outcome);
        size_t b = sf_job_done_bytes(&done[i]);
        if (b > SF_JOB_STATEMENT_BYTES)
            return sf_err_set(err, SF_ERR_LIMIT,
                              "job %.40s: its result is %zu bytes, more than the %zu one "
                              "completion statement carries",
                              done[i].id, b, SF_JOB_STATEMENT_BYTES);
        total += b;
        if (!present[done[i].outcome][done[i].optimistic != 0]++)
            (*groups)++;
    }
    *big = total > SF_JOB_STATEMENT_BYTES;
    return SF_OK;
}

sf_status sf_job_complete(sf_db *db, sf_job_done *done, size_t n, const sf_job_retry *retry, sf_err *err)
{
    static const sf_job_retry dflt = {SF_JOB_RETRY_BASE_MS_DEFAULT, SF_JOB_RETRY_CAP_MS_DEFAULT};
    int present[SF_JOB_OUTCOMES][2], groups, big = 0;
    sf_status st = check_batch(n, err);
    if (st == SF_OK)
        st = check_done(done, n, present, &groups, &big, err);
    if (st != SF_OK || n == 0)
        return st;
    for (size_t i = 0; i < n; i++) {
        done[i].applied = 0;
        done[i].status[0] = '\0';
    }
    int txn = groups > 1 || big;
    if (txn && (st = sf_db_begin(db, err)) != SF_OK)
        return st;
    for (int o = 0; o < SF_JOB_OUTCOMES && st == SF_OK; o++)
        for (int opt = 0; opt < 2 && st == SF_OK; opt++)
            if (present[o][opt])
                st = complete_group(db, done, n, (sf_job_outcome)o, opt, retry ? retry : &dflt, err);
    if (txn && st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        if (txn)
            sf_db_rollback(db);
        for (size_t i = 0; i < n; i++)
            done[i].applied = 0;
    }
    return st;
}

/* ---- cancellation ------------------------------------------------------- */

static const char CANCEL_SOURCE[] =
    "SELECT id FROM jobs WHERE id = $1::uuid AND ($2::uuid IS NULL OR user_id = $2::uuid)";

static void fill_entry(sf_queue_entry *e, const sf_db_res *res, int row, int c_id, int c_user, int c_prio,
                       int c_created)
{
    copy_text(e->id, sizeof e->id, sf_db_get(res, row, c_id));
    copy_text(e->tenant, sizeof e->tenant, sf_db_get(res, row, c_user));
    e->score = sf_queue_score((int)get_i64(res, row, c_prio, 1), get_i64(res, row, c_created, 0));
}

static sf_status check_uuid_arg(const char *what, const char *s, sf_err *err)
{
    if (s != NULL && !uuid_ok(s))
        return sf_err_set(err, SF_ERR_INVALID, "%s \"%.40s\": not a uuid", what, s);
    return SF_OK;
}

/* After neither transition applied: finished, or not there at all. */
static sf_status cancel_lookup(sf_db *db, const char *const *params, sf_job_cancel_result *result, sf_err *err)
{
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "SELECT status::text FROM jobs WHERE id = $1::uuid AND "
                               "($2::uuid IS NULL OR user_id = $2::uuid)",
                               2, params, &res, err);
    if (st == SF_OK)
        *result = sf_db_nrows(res) > 0 ? SF_JOB_CANCEL_FINAL : SF_JOB_CANCEL_NOT_FOUND;
    sf_db_res_free(res);
    return st;
}

sf_status sf_job_cancel(sf_db *db, const char *job_id, const char *user_id, sf_job_cancel_result *result,
                        sf_queue_entry *entry, sf_err *err)
{
    *result = SF_JOB_CANCEL_NOT_FOUND;
    if (entry)
        memset(entry, 0, sizeof *entry);
    sf_status st = check_uuid_arg("job id", job_id, err);
    if (st == SF_OK)
        st = check_uuid_arg("user id", user_id, err);
    if (st != SF_OK)
        return st;
    const char *params[] = {job_id, user_id};
    sf_db_res *res = NULL;
    st = run_update(db, EV_CANCEL, CANCEL_SOURCE, "SELECT id, status, user_id, priority, created_ms FROM u", 2, params,
                    &res, err);
    if (st == SF_OK && sf_db_nrows(res) > 0) {
        *result = SF_JOB_CANCEL_DONE;
        if (entry)
            fill_entry(entry, res, 0, 0, 2, 3, 4);
    }
    sf_db_res_free(res);
    res = NULL;
    if (st != SF_OK || *result == SF_JOB_CANCEL_DONE)
        return st;
    st = run_update(db, EV_REQUEST_CANCEL, CANCEL_SOURCE, NULL, 2, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) > 0)
        *result = SF_JOB_CANCEL_REQUESTED;
    sf_db_res_free(res);
    if (st != SF_OK || *result == SF_JOB_CANCEL_REQUESTED)
        return st;
    return cancel_lookup(db, params, result, err);
}

static sf_status count_update(sf_db *db, event ev, const char *source, const char *param, int64_t *count, sf_err *err)
{
    const char *params[] = {param};
    sf_db_res *res = NULL;
    sf_status st = run_update(db, ev, source, "SELECT count(*) FROM u", 1, params, &res, err);
    if (st == SF_OK && count)
        *count = get_i64(res, 0, 0, 0);
    sf_db_res_free(res);
    return st;
}

static sf_status cancel_batch_members(sf_db *db, const char *batch_id, int64_t *cancelled, int64_t *requested,
                                      sf_err *err)
{
    sf_status st = count_update(db, EV_CANCEL,
                                "SELECT id FROM jobs WHERE batch_id = $1::uuid "
                                "AND status IN ('pending', 'queued')",
                                batch_id, cancelled, err);
    if (st == SF_OK)
        st = count_update(db, EV_REQUEST_CANCEL, "SELECT id FROM jobs WHERE batch_id = $1::uuid AND status = 'running'",
                          batch_id, requested, err);
    return st;
}

sf_status sf_job_cancel_batch(sf_db *db, const char *batch_id, const char *user_id, int *found, int64_t *cancelled,
                              int64_t *requested, sf_err *err)
{
    *found = 0;
    if (cancelled)
        *cancelled = 0;
    if (requested)
        *requested = 0;
    sf_status st = check_uuid_arg("batch id", batch_id, err);
    if (st == SF_OK)
        st = check_uuid_arg("user id", user_id, err);
    if (st != SF_OK || (st = sf_db_begin(db, err)) != SF_OK)
        return st;
    const char *params[] = {batch_id, user_id};
    sf_db_res *res = NULL;
    st = sf_db_query(db,
                     "UPDATE batches SET cancel_requested = true WHERE id = $1::uuid AND "
                     "($2::uuid IS NULL OR user_id = $2::uuid) RETURNING id",
                     2, params, &res, err);
    *found = st == SF_OK && sf_db_nrows(res) > 0;
    sf_db_res_free(res);
    if (st == SF_OK && *found)
        st = cancel_batch_members(db, batch_id, cancelled, requested, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK)
        sf_db_rollback(db);
    return st;
}

/* ---- relay and rebuild -------------------------------------------------- */

#define ENTRY_COLS                                                                                                     \
    "j.id::text, j.user_id::text, j.priority, "                                                                        \
    "floor(extract(epoch FROM j.created_at) * 1000)::bigint"

static sf_status entries_query(sf_db *db, const char *sql, int nparams, const char *const *params, size_t max,
                               sf_queue_entry *out, size_t *n, sf_err *err)
{
    *n = 0;
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, sql, nparams, params, &res, err);
    for (int r = 0; st == SF_OK && r < sf_db_nrows(res) && *n < max; r++)
        fill_entry(&out[(*n)++], res, r, 0, 1, 2, 3);
    sf_db_res_free(res);
    return st;
}

/* The relay's fair selection of ids. Tenants with pending work by a loose
 * index scan of jobs_pending (one index descent per tenant instead of
 * reading every pending row); each tenant's oldest due rows in priority
 * order, at most max($1, $2 / tenants) each (one tenant alone fills the
 * batch); round robin across tenants (every tenant's
 * first row, then every tenant's second, ...), the tenants' order within a
 * round rotated by $3, so that when the room in Redis is smaller than the
 * number of tenants (one free slot at a time) successive batches start with
 * successive tenants instead of always the same one; at most $2 rows.
 *
 * The selection is its own statement, in the transaction of the UPDATE that
 * takes its ids as an array: as one statement (the selection as the UPDATE's
 * source), the planner saw a thousand rows coming and, with statistics from
 * before a sweep ran, joined them to jobs by a hash over a sequential scan,
 * even for a single job's relay, where the primary key is far cheaper.
 *
 * The selection does not lock its rows (FOR UPDATE SKIP LOCKED wrote a lock,
 * a WAL record, into every selected row before the UPDATE wrote it again).
 * The UPDATE's state guard is the lock: a row another relay (a leader's
 * overlap) or a cancel changed first is re-checked after that transaction
 * and skipped, and only the rows this UPDATE returns are added to Redis.
 *
 * Committed with synchronous_commit off (ASYNC_COMMIT): it is on the path of
 * every job's start, and a relay lost in a crash is harmless: the rows are
 * pending again with their ids in Redis; a claim finds them not queued and
 * drops the ids, and the next relay adds them again. */
static const char RELAY_SELECT[] =
    "WITH RECURSIVE t(user_id) AS ("
    "(SELECT user_id FROM jobs WHERE status = 'pending' ORDER BY user_id LIMIT 1) UNION ALL "
    "SELECT (SELECT user_id FROM jobs WHERE status = 'pending' AND user_id > t.user_id "
    "ORDER BY user_id LIMIT 1) FROM t WHERE t.user_id IS NOT NULL), "
    "tt AS (SELECT user_id, row_number() OVER (ORDER BY user_id) AS ord, count(*) OVER () AS nt "
    "FROM t WHERE user_id IS NOT NULL), "
    "s AS (SELECT j.id, row_number() OVER w AS rn, (tt.ord + $3::bigint) % tt.nt AS turn "
    "FROM tt CROSS JOIN LATERAL (SELECT id, user_id, priority, created_at "
    "FROM jobs WHERE user_id = tt.user_id AND status = 'pending' AND run_at <= now() "
    "ORDER BY priority, created_at LIMIT (SELECT greatest($1::bigint, $2::bigint / greatest(count(*), 1)) "
    "FROM tt)) j "
    "WINDOW w AS (PARTITION BY j.user_id ORDER BY j.priority, j.created_at "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) "
    "SELECT id::text FROM s ORDER BY rn, turn LIMIT $2::bigint";

static const char RELAY_SOURCE[] = "SELECT unnest($1::uuid[]) AS id FROM " ASYNC_COMMIT;

sf_status sf_job_relay_pending(sf_db *db, size_t per_tenant, size_t limit, uint64_t rotation, sf_queue_entry *out,
                               size_t *n, sf_err *err)
{
    *n = 0;
    if (limit == 0 || per_tenant == 0)
        return SF_OK;
    if (limit > SF_JOB_BATCH_MAX)
        limit = SF_JOB_BATCH_MAX;
    char per[24], lim[24], rot[24];
    snprintf(per, sizeof per, "%zu", per_tenant);
    snprintf(lim, sizeof lim, "%zu", limit);
    snprintf(rot, sizeof rot, "%" PRIu64, rotation % (UINT64_C(1) << 62));
    const char *params[] = {per, lim, rot};
    sf_db_res *sel = NULL, *res = NULL;
    sf_status st = sf_db_begin(db, err);
    if (st == SF_OK)
        st = sf_db_query_prepared(db, RELAY_SELECT, 3, params, &sel, err);
    int rows = st == SF_OK ? sf_db_nrows(sel) : 0;
    if (st == SF_OK && rows > 0) {
        const char *ids[SF_JOB_BATCH_MAX];
        for (int r = 0; r < rows && (size_t)r < limit; r++)
            ids[r] = sf_db_get(sel, r, 0);
        sf_buf arr;
        st = uuid_array(&arr, ids, (size_t)rows < limit ? (size_t)rows : limit, err);
        const char *p[] = {sf_buf_str(&arr)};
        if (st == SF_OK)
            st = run_update(db, EV_RELAY, RELAY_SOURCE, "SELECT id, user_id, priority, created_ms FROM u", 1, p, &res,
                            err);
        sf_buf_destroy(&arr);
    }
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    else
        sf_db_rollback(db);
    for (int r = 0; st == SF_OK && res && r < sf_db_nrows(res) && *n < limit; r++)
        fill_entry(&out[(*n)++], res, r, 0, 1, 2, 3);
    sf_db_res_free(sel);
    sf_db_res_free(res);
    return st;
}

sf_status sf_job_list_queued(sf_db *db, const char *after_id, size_t limit, sf_queue_entry *out, size_t *n, sf_err *err)
{
    *n = 0;
    const char *after = after_id && after_id[0] ? after_id : NIL_UUID;
    sf_status st = check_uuid_arg("job id", after, err);
    if (st != SF_OK || limit == 0)
        return st;
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {after, lim};
    return entries_query(db,
                         "SELECT " ENTRY_COLS " FROM jobs j WHERE j.status = 'queued' "
                         "AND j.id > $1::uuid ORDER BY j.id LIMIT $2::bigint",
                         2, params, limit, out, n, err);
}

sf_status sf_job_lease_expired(sf_db *db, const char *const *ids, size_t n, sf_queue_entry *out, size_t *n_out,
                               sf_err *err)
{
    *n_out = 0;
    sf_status st = check_batch(n, err);
    if (st != SF_OK || n == 0)
        return st;
    sf_buf arr;
    st = uuid_array(&arr, ids, n, err);
    if (st == SF_OK)
        st = count_update(db, EV_LEASE_LOST, "SELECT unnest($1::uuid[]) AS id", sf_buf_str(&arr), NULL, err);
    const char *params[] = {sf_buf_str(&arr)};
    if (st == SF_OK)
        st = entries_query(db,
                           "SELECT " ENTRY_COLS " FROM jobs j WHERE j.id = ANY($1::uuid[]) "
                           "AND j.status = 'queued'",
                           1, params, n, out, n_out, err);
    sf_buf_destroy(&arr);
    return st;
}

/* ---- reaper ------------------------------------------------------------- */

static const char REAP_SOURCE[] = "SELECT id, $2::float8 AS base_ms, $3::float8 AS cap_ms FROM jobs "
                                  "WHERE status = 'running' AND lease_until < now() ORDER BY lease_until "
                                  "LIMIT $1::bigint FOR UPDATE SKIP LOCKED";

sf_status sf_job_reap(sf_db *db, size_t limit, const sf_job_retry *retry, sf_job_reap_stats *stats, sf_err *err)
{
    static const sf_job_retry dflt = {SF_JOB_RETRY_BASE_MS_DEFAULT, SF_JOB_RETRY_CAP_MS_DEFAULT};
    memset(stats, 0, sizeof *stats);
    if (limit == 0)
        return SF_OK;
    if (retry == NULL)
        retry = &dflt;
    char lim[24], base[32], cap[32];
    snprintf(lim, sizeof lim, "%zu", limit);
    snprintf(base, sizeof base, "%" PRId64, retry->base_ms);
    snprintf(cap, sizeof cap, "%" PRId64, retry->cap_ms);
    const char *params[] = {lim, base, cap};
    sf_db_res *res = NULL;
    sf_status st =
        run_update(db, EV_REAP, REAP_SOURCE, "SELECT status, count(*) FROM u GROUP BY status", 3, params, &res, err);
    for (int r = 0; st == SF_OK && r < sf_db_nrows(res); r++) {
        const char *status = sf_db_get(res, r, 0);
        int64_t c = get_i64(res, r, 1, 0);
        if (strcmp(status, "pending") == 0)
            stats->retried += c;
        else if (strcmp(status, "dead") == 0)
            stats->dead += c;
        else
            stats->cancelled += c;
    }
    sf_db_res_free(res);
    return st;
}
