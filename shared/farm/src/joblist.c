/* joblist: keyset pages and rerun selections as SQL; see sf/joblist.h. */
#include "sf/joblist.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const STATUSES[SF_JOBLIST_STATUSES] = {"pending", "queued", "running",  "succeeded",
                                                          "failed",  "dead",   "cancelled"};

#define EPOCH "timestamptz 'epoch'"
/* named apart from the columns, or ORDER BY id would sort by the text */
#define KEY_COLS "(extract(epoch FROM created_at) * 1000000)::bigint AS key_us, id::text AS key_id"
#define NEWEST "ORDER BY created_at DESC, id DESC"

int sf_joblist_status_valid(const char *s)
{
    for (size_t i = 0; s != NULL && i < SF_JOBLIST_STATUSES; i++)
        if (strcmp(s, STATUSES[i]) == 0)
            return 1;
    return 0;
}

int sf_joblist_kind_valid(const char *s)
{
    return s != NULL && (strcmp(s, "backtest") == 0 || strcmp(s, "logic_execution") == 0);
}

int sf_joblist_logic_hash_valid(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* ---- building ------------------------------------------------------------------- */

typedef struct builder {
    sf_joblist_query *q;
    size_t len;
    int overflow;
} builder;

static void put(builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->q->sql + b->len, sizeof b->q->sql - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->q->sql - b->len)
        b->overflow = 1;
    else
        b->len += (size_t)n;
}

/* Add a parameter (copied into the query's store); returns its number. */
static int param(builder *b, const char *value)
{
    sf_joblist_query *q = b->q;
    if (q->nparams >= SF_JOBLIST_PARAMS_MAX || strlen(value) >= sizeof q->store[0]) {
        b->overflow = 1;
        return 1;
    }
    snprintf(q->store[q->nparams], sizeof q->store[0], "%s", value);
    q->params[q->nparams] = q->store[q->nparams];
    return ++q->nparams;
}

static int param_i64(builder *b, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, v);
    return param(b, t);
}

static sf_status check(const sf_joblist_filter *f, int jobs, sf_err *err)
{
    if (!is_uuid(f->user_id))
        return sf_err_set(err, SF_ERR_INVALID, "could not build a list: no user");
    if (f->limit < 1 || f->limit > SF_JOBLIST_LIMIT_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "limit: must be from 1 to %d", SF_JOBLIST_LIMIT_MAX);
    if (!jobs && (f->n_status || f->kind || f->batch_id || f->logic_hash || f->symbol))
        return sf_err_set(err, SF_ERR_INVALID, "batches are filtered by since and until only");
    if (f->n_status > SF_JOBLIST_STATUSES)
        return sf_err_set(err, SF_ERR_INVALID, "status: too many");
    for (size_t i = 0; i < f->n_status; i++)
        if (!sf_joblist_status_valid(f->status[i]))
            return sf_err_set(err, SF_ERR_INVALID, "status: must be one of " SF_JOBLIST_STATUS_LIST);
    if (f->kind && !sf_joblist_kind_valid(f->kind))
        return sf_err_set(err, SF_ERR_INVALID, "kind: must be one of " SF_JOBLIST_KIND_LIST);
    if (f->batch_id && !is_uuid(f->batch_id))
        return sf_err_set(err, SF_ERR_INVALID, "batch: must be a batch id (a UUID)");
    if (f->logic_hash && !sf_joblist_logic_hash_valid(f->logic_hash))
        return sf_err_set(err, SF_ERR_INVALID, "logic: must be a logic hash (64 hex digits)");
    if (f->has_cursor && !is_uuid(f->cursor_id))
        return sf_err_set(err, SF_ERR_INVALID, "cursor: not a cursor of this list");
    return SF_OK;
}

/* The conditions shared by every statement (after "WHERE "); status only
 * when with_status. */
static void where(builder *b, const sf_joblist_filter *f, int jobs, int with_status, int with_cursor)
{
    put(b, "user_id = $%d::uuid", param(b, f->user_id));
    if (jobs && f->batch_id)
        put(b, " AND batch_id = $%d::uuid", param(b, f->batch_id));
    else if (jobs)
        put(b, " AND batch_id IS NULL");
    if (with_status && f->n_status == 1) {
        put(b, " AND status = $%d::job_status", param(b, f->status[0]));
    } else if (with_status && f->n_status > 1) {
        char arr[128] = "{";
        for (size_t i = 0; i < f->n_status; i++)
            snprintf(arr + strlen(arr), sizeof arr - strlen(arr), "%s%s", i ? "," : "", f->status[i]);
        snprintf(arr + strlen(arr), sizeof arr - strlen(arr), "}");
        put(b, " AND status = ANY($%d::job_status[])", param(b, arr));
    }
    if (f->kind)
        put(b, " AND kind = $%d::job_kind", param(b, f->kind));
    if (f->symbol)
        put(b, " AND symbol = $%d", param(b, f->symbol));
    if (f->logic_hash)
        put(b, " AND logic_hash = $%d", param(b, f->logic_hash));
    if (f->has_since)
        put(b, " AND created_at >= " EPOCH " + $%d::bigint * interval '1 second'", param_i64(b, f->since_s));
    if (f->has_until)
        put(b, " AND created_at < " EPOCH " + $%d::bigint * interval '1 second'", param_i64(b, f->until_s));
    if (with_cursor && f->has_cursor) {
        int us = param_i64(b, f->cursor_us);
        put(b, " AND (created_at, id) < (" EPOCH " + $%d::bigint * interval '1 microsecond', $%d::uuid)", us,
            param(b, f->cursor_id));
    }
}

static sf_status finish(builder *b, sf_err *err)
{
    if (b->overflow)
        return sf_err_set(err, SF_ERR_LIMIT, "could not build a list: the statement is too long");
    return SF_OK;
}

static void start(builder *b, sf_joblist_query *q)
{
    memset(q, 0, sizeof *q);
    b->q = q;
    b->len = 0;
    b->overflow = 0;
}

/* A batch's members of every status: the keys of the seven ranges of
 * jobs_batch merged (each at most limit + 1), then their rows. */
static void merged_statuses(builder *b, const sf_joblist_filter *f, int limit_param)
{
    int first_param = b->q->nparams;
    put(b, "SELECT " SF_JOBLIST_JOB_JSON "::text, (extract(epoch FROM k.k_ts) * 1000000)::bigint, k.k_id::text "
           "FROM (");
    for (size_t i = 0; i < SF_JOBLIST_STATUSES; i++) {
        b->q->nparams = first_param; /* every branch binds the same parameters */
        put(b, "%s(SELECT created_at AS k_ts, id AS k_id FROM jobs WHERE ", i ? " UNION ALL " : "");
        where(b, f, 1, 0, 1);
        put(b, " AND status = '%s' " NEWEST " LIMIT $%d)", STATUSES[i], limit_param);
    }
    put(b, ") k JOIN jobs ON jobs.id = k.k_id ORDER BY k.k_ts DESC, k.k_id DESC LIMIT $%d", limit_param);
}

sf_status sf_joblist_jobs(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    builder b;
    start(&b, q);
    sf_status st = check(f, 1, err);
    if (st != SF_OK)
        return st;
    int limit = param_i64(&b, (int64_t)f->limit + 1);
    if (f->batch_id && f->n_status != 1) {
        if (f->n_status > 1)
            return sf_err_set(err, SF_ERR_INVALID, "status: a list shows one status or all");
        merged_statuses(&b, f, limit);
        return finish(&b, err);
    }
    if (f->n_status > 1)
        return sf_err_set(err, SF_ERR_INVALID, "status: a list shows one status or all");
    put(&b, "SELECT " SF_JOBLIST_JOB_JSON "::text, " KEY_COLS " FROM jobs WHERE ");
    where(&b, f, 1, 1, 1);
    put(&b, " " NEWEST " LIMIT $%d", limit);
    return finish(&b, err);
}

sf_status sf_joblist_batches(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    builder b;
    start(&b, q);
    sf_status st = check(f, 0, err);
    if (st != SF_OK)
        return st;
    int limit = param_i64(&b, (int64_t)f->limit + 1);
    put(&b, "SELECT json_build_object('id', id, 'symbol', symbol, 'timeframe', timeframe, 'total', total, "
            "'rank_by', rank_by, 'detail_top', detail_top, 'cancel_requested', cancel_requested, "
            "'created_at', created_at, 'logic_hash', logic_hash, 'dataset_version', dataset_version, "
            "'rerun_of', rerun_of, 'links', json_build_object('self', '/v1/batches/' || id))::text, " KEY_COLS
            " FROM batches WHERE ");
    where(&b, f, 0, 0, 1);
    put(&b, " " NEWEST " LIMIT $%d", limit);
    return finish(&b, err);
}

/* ---- stored logics, schedules, signals ----------------------------------------------- */

static int is_number(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n >= 1 && n <= 18;
}

/* The checks of a list with only a cursor and a limit; id_number: the
 * cursor's id is a number (else a UUID). */
static sf_status check_plain(const sf_joblist_filter *f, int id_number, sf_err *err)
{
    if (!is_uuid(f->user_id))
        return sf_err_set(err, SF_ERR_INVALID, "could not build a list: no user");
    if (f->limit < 1 || f->limit > SF_JOBLIST_LIMIT_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "limit: must be from 1 to %d", SF_JOBLIST_LIMIT_MAX);
    if (f->n_status || f->kind || f->batch_id || f->logic_hash || f->symbol || f->has_since || f->has_until)
        return sf_err_set(err, SF_ERR_INVALID, "this list takes no filter");
    if (f->has_cursor && !(id_number ? is_number(f->cursor_id) : is_uuid(f->cursor_id)))
        return sf_err_set(err, SF_ERR_INVALID, "cursor: not a cursor of this list");
    return SF_OK;
}

/* " AND (created_at, <col>) < (cursor)" when there is a cursor. */
static void after_cursor(builder *b, const sf_joblist_filter *f, const char *col, const char *type)
{
    if (!f->has_cursor)
        return;
    int us = param_i64(b, f->cursor_us);
    put(b, " AND (created_at, %s) < (" EPOCH " + $%d::bigint * interval '1 microsecond', $%d::%s)", col, us,
        param(b, f->cursor_id), type);
}

sf_status sf_joblist_logics(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    builder b;
    start(&b, q);
    sf_status st = check_plain(f, 0, err);
    if (st != SF_OK)
        return st;
    int limit = param_i64(&b, (int64_t)f->limit + 1);
    put(&b,
        "SELECT json_build_object('id', id, 'name', name, 'version', version, 'logic_hash', "
        "encode(sha256(convert_to(body::text, 'UTF8')), 'hex'), 'created_at', created_at, 'updated_at', updated_at, "
        "'links', json_build_object('self', '/v1/logics/' || id))::text, " KEY_COLS
        " FROM logics WHERE user_id = $%d::uuid AND deleted_at IS NULL",
        param(&b, f->user_id));
    after_cursor(&b, f, "id", "uuid");
    put(&b, " " NEWEST " LIMIT $%d", limit);
    return finish(&b, err);
}

sf_status sf_joblist_schedules(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    builder b;
    start(&b, q);
    sf_status st = check_plain(f, 1, err);
    if (st != SF_OK)
        return st;
    int limit = param_i64(&b, (int64_t)f->limit + 1);
    put(&b, "SELECT " SF_JOBLIST_SCHEDULE_JSON "::text, " KEY_COLS " FROM schedules WHERE user_id = $%d::uuid",
        param(&b, f->user_id));
    after_cursor(&b, f, "id", "bigint");
    put(&b, " " NEWEST " LIMIT $%d", limit);
    return finish(&b, err);
}

sf_status sf_joblist_signals(const sf_joblist_filter *f, const char *schedule_id, sf_joblist_query *q, sf_err *err)
{
    builder b;
    start(&b, q);
    sf_status st = check_plain(f, 0, err);
    if (st == SF_OK && !is_number(schedule_id))
        st = sf_err_set(err, SF_ERR_INVALID, "could not build a list: no schedule");
    if (st != SF_OK)
        return st;
    int limit = param_i64(&b, (int64_t)f->limit + 1);
    put(&b,
        "SELECT " SF_JOBLIST_SIGNAL_JSON "::text, (extract(epoch FROM created_at) * 1000000)::bigint, "
        "job_id::text FROM signals WHERE schedule_id = $%d::bigint",
        param(&b, schedule_id));
    after_cursor(&b, f, "job_id", "uuid");
    put(&b, " ORDER BY created_at DESC, job_id DESC LIMIT $%d", limit);
    return finish(&b, err);
}

sf_status sf_joblist_count(const sf_joblist_filter *f, int64_t max, sf_joblist_query *q, sf_err *err)
{
    builder b;
    sf_joblist_filter g = *f;
    g.has_cursor = 0;
    g.limit = 1;
    start(&b, q);
    sf_status st = check(&g, 1, err);
    if (st != SF_OK)
        return st;
    put(&b, "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE ");
    where(&b, &g, 1, 1, 0);
    /* in the index's order: a read of at most max + 1 entries, never a scan of the table */
    put(&b, " " NEWEST " LIMIT $%d) matched", param_i64(&b, max + 1));
    return finish(&b, err);
}

sf_status sf_joblist_ids(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    builder b;
    sf_joblist_filter g = *f;
    g.has_cursor = 0;
    g.limit = 1;
    start(&b, q);
    sf_status st = check(&g, 1, err);
    if (st != SF_OK)
        return st;
    put(&b, "SELECT id FROM jobs WHERE ");
    where(&b, &g, 1, 1, 0);
    return finish(&b, err);
}

/* ---- cursors -------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void sf_joblist_cursor_encode(int64_t created_us, const char *id, char *out, size_t size)
{
    char raw[80];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ".%s", created_us, id);
    size_t o = 0;
    for (int i = 0; i < n && o + 5 < size; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)raw[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = B64[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = B64[v & 63];
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Unpadded base64url into raw (NUL-terminated); 0 when it is not that. */
static int b64_decode(const char *text, char *raw, size_t size)
{
    size_t n = strlen(text), o = 0;
    if (n % 4 == 1 || n / 4 * 3 + 3 >= size)
        return 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        size_t k = 0;
        for (; k < 4 && i + k < n; k++) {
            int d = b64_value(text[i + k]);
            if (d < 0)
                return 0;
            v |= (uint32_t)d << (18 - 6 * k);
        }
        for (size_t j = 0; j + 1 < k; j++)
            raw[o++] = (char)((v >> (16 - 8 * j)) & 0xff);
    }
    raw[o] = '\0';
    return strlen(raw) == o;
}

sf_status sf_joblist_cursor_decode(const char *text, int64_t *created_us, char *id, size_t id_size, sf_err *err)
{
    char raw[96];
    const char *dot = NULL;
    if (text == NULL || strlen(text) >= SF_JOBLIST_CURSOR_MAX || !b64_decode(text, raw, sizeof raw) ||
        (dot = strchr(raw, '.')) == NULL || dot == raw || dot - raw > 18 || !(is_uuid(dot + 1) || is_number(dot + 1)) ||
        id_size < 37)
        return sf_err_set(err, SF_ERR_INVALID,
                          "cursor: not a cursor of this list (pass next_cursor from the previous page as it is)");
    int64_t us = 0;
    for (const char *p = raw; p < dot; p++) {
        if (*p < '0' || *p > '9')
            return sf_err_set(err, SF_ERR_INVALID,
                              "cursor: not a cursor of this list (pass next_cursor from the previous page as it is)");
        us = us * 10 + (*p - '0');
    }
    *created_us = us;
    snprintf(id, id_size, "%s", dot + 1);
    return SF_OK;
}
