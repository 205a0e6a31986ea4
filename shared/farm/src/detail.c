/*
 * detail: sweep members' detail jobs (see sf/detail.h).
 *
 * DESIGN. A detail job is an ordinary single backtest: the worker runs it
 * and stores its full result like any other, so its trades and curve are
 * those of a single backtest of the member's logic by construction, and no
 * code on the worker's or the completion's path knows about details. The
 * member's logic is rebuilt here from the batch's logic and grid with
 * sf_grid_apply (the text whose parse the worker's grid cursor reproduces).
 * jobs.detail_of's unique index makes "at most one per member" hold
 * whatever runs concurrently (two API requests, the scheduler): an INSERT
 * that loses the race inserts nothing, and the caller reads the winner's.
 */
#include "sf/detail.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/grid.h"
#include "sf/rank.h"

/* One detail job for member $1 with logic $2 and source $3, unless the member
 * stored its trades itself (a result from before migration 0011) or has a
 * detail already. */
static const char INSERT_SQL[] =
    "INSERT INTO jobs (user_id, kind, priority, logic, symbol, timeframe, from_ts, to_ts, "
    "max_attempts, detail_of, detail_source) "
    "SELECT m.user_id, 'backtest', 0, $2::jsonb, m.symbol, m.timeframe, m.from_ts, m.to_ts, "
    "m.max_attempts, m.id, $3 FROM jobs m WHERE m.id = $1::uuid AND m.batch_id IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = m.id AND r.trades IS NOT NULL) "
    "ON CONFLICT (detail_of) WHERE detail_of IS NOT NULL DO NOTHING RETURNING id";

/* Enqueue the detail of member (combination index of grid over logic_json). */
static sf_status insert_detail(sf_db *db, const sf_grid *grid, const char *logic_json, const char *member,
                               const char *index_text, const char *source, int *inserted, sf_err *err)
{
    char *text = NULL;
    size_t len = 0;
    *inserted = 0;
    long long index = strtoll(index_text ? index_text : "-1", NULL, 10);
    if (index < 0 || (size_t)index >= sf_grid_size(grid))
        return sf_err_set(err, SF_ERR_INVALID, "member %.40s: combination %lld is not in its grid", member, index);
    sf_status st = sf_grid_apply(grid, (size_t)index, logic_json, strlen(logic_json), &text, &len, err);
    const char *params[] = {member, text, source};
    sf_db_res *res = NULL;
    if (st == SF_OK)
        st = sf_db_query(db, INSERT_SQL, 3, params, &res, err);
    if (st == SF_OK)
        *inserted = sf_db_nrows(res);
    sf_db_res_free(res);
    free(text);
    return st;
}

/* ---- on request ---------------------------------------------------------- */

static const char MEMBER_SQL[] = "SELECT m.combo_index::text, b.logic::text, b.grid::text, d.id::text, d.status::text, "
                                 "d.detail_source FROM jobs m JOIN batches b ON b.id = m.batch_id "
                                 "LEFT JOIN jobs d ON d.detail_of = m.id WHERE m.id = $1::uuid";

static void fill_detail(sf_detail *out, const char *id, const char *status, const char *source)
{
    snprintf(out->id, sizeof out->id, "%s", id ? id : "");
    snprintf(out->status, sizeof out->status, "%s", status ? status : "");
    snprintf(out->source, sizeof out->source, "%s", source ? source : "");
}

/* Drop a failed, dead or cancelled detail of member (its error kept in out). */
static sf_status drop_failed(sf_db *db, const char *member, sf_detail *out, sf_err *err)
{
    const char *params[] = {member};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "DELETE FROM jobs WHERE detail_of = $1::uuid "
                               "AND status IN ('failed', 'dead', 'cancelled') RETURNING coalesce(error, status::text)",
                               1, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) > 0)
        snprintf(out->previous_error, sizeof out->previous_error, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    return st;
}

/* In the caller's transaction: the member's detail, enqueued when missing. */
static sf_status ensure_detail(sf_db *db, const char *member, sf_detail *out, sf_err *err)
{
    const char *params[] = {member};
    sf_db_res *res = NULL;
    sf_grid *grid = NULL;
    sf_status st = sf_db_query(db, MEMBER_SQL, 1, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "job %.40s is not a sweep member", member);
    if (st == SF_OK && !sf_db_is_null(res, 0, 3)) {
        fill_detail(out, sf_db_get(res, 0, 3), sf_db_get(res, 0, 4), sf_db_get(res, 0, 5));
    } else if (st == SF_OK) {
        const char *grid_text = sf_db_get(res, 0, 2);
        st = sf_grid_parse(grid_text, strlen(grid_text), 0, &grid, err);
        if (st == SF_OK)
            st = insert_detail(db, grid, sf_db_get(res, 0, 1), member, sf_db_get(res, 0, 0), "request", &out->created,
                               err);
        if (st == SF_OK && out->created)
            st = sf_db_exec(db, "NOTIFY sf_jobs", err);
    }
    sf_grid_free(grid);
    sf_db_res_free(res);
    return st;
}

sf_status sf_detail_request(sf_db *db, const char *member_id, sf_detail *out, sf_err *err)
{
    memset(out, 0, sizeof *out);
    sf_status st = sf_db_begin(db, err);
    if (st != SF_OK)
        return st;
    st = drop_failed(db, member_id, out, err);
    if (st == SF_OK)
        st = ensure_detail(db, member_id, out, err);
    if (st == SF_OK && out->id[0] == '\0') {
        /* inserted just now, or by a concurrent request (then ours did nothing) */
        sf_detail again;
        memset(&again, 0, sizeof again);
        st = ensure_detail(db, member_id, &again, err);
        fill_detail(out, again.id, again.status, again.source);
    }
    if (st == SF_OK && out->id[0] == '\0')
        st = sf_err_set(err, SF_ERR_INVALID, "job %.40s stored its trades: it needs no detail", member_id);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK)
        sf_db_rollback(db);
    return st;
}

/* ---- when a sweep finishes ------------------------------------------------ */

/* The oldest finished sweep whose details are due, locked. */
static const char DUE_SQL[] =
    "SELECT b.id::text, b.rank_by, b.detail_top::text, b.logic::text, b.grid::text FROM batches b "
    "WHERE b.details_at IS NULL AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id "
    "AND j.status IN ('pending', 'queued', 'running')) "
    "ORDER BY b.created_at LIMIT 1 FOR UPDATE OF b SKIP LOCKED";

/* The best $3 succeeded members by metrics->$2 in the metric's direction,
 * null last, ties by index: the leaderboard's order (sf-api). */
#define TOP_SQL(dir)                                                                                                   \
    "SELECT j.id::text, j.combo_index::text FROM jobs j JOIN results r ON r.job_id = j.id "                            \
    "WHERE j.batch_id = $1::uuid AND j.status = 'succeeded' "                                                          \
    "ORDER BY CASE WHEN jsonb_typeof(r.metrics -> $2) = 'number' THEN (r.metrics ->> $2)::float8 END " dir             \
    " NULLS LAST, j.combo_index LIMIT $3::integer"
static const char TOP_DESC_SQL[] = TOP_SQL("DESC");
static const char TOP_ASC_SQL[] = TOP_SQL("ASC");

/* In the caller's transaction: the details of batch row 0 of due. */
static sf_status enqueue_top(sf_db *db, const sf_db_res *due, int64_t *details, sf_err *err)
{
    const char *batch = sf_db_get(due, 0, 0), *rank_by = sf_db_get(due, 0, 1);
    const sf_rank_metric *m = sf_rank_find(rank_by);
    const char *params[] = {batch, m ? m->name : SF_RANK_DEFAULT, sf_db_get(due, 0, 2)};
    int lower = m != NULL && m->dir == SF_RANK_LOWER;
    sf_db_res *top = NULL;
    sf_status st = sf_db_query(db, lower ? TOP_ASC_SQL : TOP_DESC_SQL, 3, params, &top, err);
    sf_grid *grid = NULL;
    if (st == SF_OK && sf_db_nrows(top) > 0) {
        const char *grid_text = sf_db_get(due, 0, 4);
        st = sf_grid_parse(grid_text, strlen(grid_text), 0, &grid, err);
    }
    for (int r = 0; st == SF_OK && r < sf_db_nrows(top); r++) {
        int inserted = 0;
        st = insert_detail(db, grid, sf_db_get(due, 0, 3), sf_db_get(top, r, 0), sf_db_get(top, r, 1), "top", &inserted,
                           err);
        *details += inserted;
    }
    sf_grid_free(grid);
    sf_db_res_free(top);
    return st;
}

/* The batch's members' logic could not be rebuilt (sf_grid_parse or
 * sf_grid_apply refused it: not for a batch validated at submission). */
static int unbuildable(sf_status st)
{
    return st == SF_ERR_INVALID || st == SF_ERR_PARSE || st == SF_ERR_LIMIT;
}

/* One due batch in one transaction; *found = 0 when none is due. A batch
 * whose members cannot be rebuilt is marked done all the same (so it does
 * not come back every pass), and its error is returned. */
static sf_status finish_one(sf_db *db, int *found, sf_detail_stats *stats, sf_err *err)
{
    sf_db_res *due = NULL;
    int64_t details = 0;
    sf_status st = sf_db_begin(db, err);
    if (st != SF_OK)
        return st;
    st = sf_db_query(db, DUE_SQL, 0, NULL, &due, err);
    *found = st == SF_OK && sf_db_nrows(due) > 0;
    if (*found)
        st = enqueue_top(db, due, &details, err);
    sf_status refused = unbuildable(st) ? st : SF_OK;
    st = refused != SF_OK ? SF_OK : st;
    if (*found && st == SF_OK) {
        const char *params[] = {sf_db_get(due, 0, 0)};
        st = sf_db_query(db, "UPDATE batches SET details_at = now() WHERE id = $1::uuid", 1, params, NULL, err);
    }
    if (st == SF_OK && details > 0)
        st = sf_db_exec(db, "NOTIFY sf_jobs", err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
    } else if (*found) {
        stats->batches++;
        stats->details += details;
    }
    sf_db_res_free(due);
    return st != SF_OK ? st : refused;
}

sf_status sf_detail_finished_batches(sf_db *db, size_t limit, sf_detail_stats *stats, sf_err *err)
{
    int found = 1;
    sf_status st = SF_OK;
    for (size_t i = 0; i < limit && found && st == SF_OK; i++)
        st = finish_one(db, &found, stats, err);
    return st;
}
