/*
 * sf-api: GET /v1/jobs and GET /v1/batches, a user's jobs and batches newest
 * first in keyset pages (sf/joblist.h builds the statements; migration 0012
 * has an index behind every filter), and the filter checks reruns share.
 *
 * ?limit= is 1 to 500 (50 by default; above 500 is 400, not clamped, so a
 * client never believes it got what it asked for). ?cursor= is the
 * next_cursor of the previous page, as it was given. The answer is
 * {"items": [...], "next_cursor": "..." | null}; null on the last page.
 * Without ?batch=, sweep members are not listed (their batch is, in GET
 * /v1/batches); ?batch=ID lists that batch's members.
 */
#include "lists.h"

#include <stdio.h>
#include <string.h>

#include "sf/dataset.h"
#include "sf/time.h"

static int bad(sf_httpd_req *req, const char *field, const char *msg)
{
    sf_httpd_reply_error(req, 400, "invalid_request", msg, field);
    return 0;
}

static int parse_time(sf_httpd_req *req, const char *field, const char *text, int *has, int64_t *secs)
{
    sf_err err = {0};
    *has = text != NULL;
    if (text == NULL || sf_time_parse_iso8601(text, strlen(text), secs, &err) == SF_OK)
        return 1;
    char msg[SF_ERR_MSG_MAX + 128];
    snprintf(msg, sizeof msg, "%s: %s (an ISO-8601 UTC time such as \"2024-01-01T00:00:00Z\")", field, err.msg);
    return bad(req, field, msg);
}

static int parse_statuses(sf_httpd_req *req, const api_filter_in *in, api_filter *out)
{
    for (size_t i = 0; i < in->n_status; i++) {
        if (!sf_joblist_status_valid(in->status[i])) {
            char msg[200];
            snprintf(msg, sizeof msg, "status: unknown status \"%.40s\" (one of " SF_JOBLIST_STATUS_LIST ")",
                     in->status[i]);
            return bad(req, "status", msg);
        }
        out->f.status[out->f.n_status++] = in->status[i];
    }
    return 1;
}

/* A logic hash as given (any case), or a stored logic's id: its body's hash. */
static int parse_logic(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const char *text, api_filter *out)
{
    if (text == NULL)
        return 1;
    size_t n = strlen(text);
    for (size_t i = 0; i < n && n == 64; i++)
        out->logic[i] = (char)(text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]);
    out->logic[n == 64 ? 64 : 0] = '\0';
    if (sf_joblist_logic_hash_valid(out->logic)) {
        out->f.logic_hash = out->logic;
        return 1;
    }
    if (!api_is_uuid(text))
        return bad(req, "logic", "logic: must be a logic hash (64 hex digits, as jobs show it) or a stored logic's id");
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *p[] = {text, user->id};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db,
                         "SELECT encode(sha256(convert_to(body::text, 'UTF8')), 'hex') FROM logics "
                         "WHERE id = $1::uuid AND user_id = $2::uuid",
                         2, p, &res, &err);
    int ok = st == SF_OK && sf_db_nrows(res) == 1;
    if (ok) {
        snprintf(out->logic, sizeof out->logic, "%s", sf_db_get(res, 0, 0));
        out->f.logic_hash = out->logic;
    } else if (st == SF_OK) {
        sf_httpd_reply_error(req, 404, "logic_not_found", "logic: no such logic", "logic");
    } else {
        api_fail(app, req, st, &err);
    }
    sf_db_res_free(res);
    return ok;
}

/* The batch must be the user's: 404 otherwise, as on every other verb. */
static int parse_batch(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const char *text, api_filter *out)
{
    if (text == NULL)
        return 1;
    if (!api_is_uuid(text))
        return bad(req, "batch", "batch: must be a batch id (a UUID)");
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    const char *p[] = {text, user->id};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, "SELECT 1 FROM batches WHERE id = $1::uuid AND user_id = $2::uuid", 2, p, &res, &err);
    int ok = st == SF_OK && sf_db_nrows(res) == 1;
    if (ok)
        out->f.batch_id = text;
    else if (st == SF_OK)
        sf_httpd_reply_error(req, 404, "not_found", "batch: no such batch", "batch");
    else
        api_fail(app, req, st, &err);
    sf_db_res_free(res);
    return ok;
}

int api_filter_parse(api_app *app, sf_httpd_req *req, const sf_auth_user *user, const api_filter_in *in,
                     api_filter *out)
{
    memset(out, 0, sizeof *out);
    out->f.user_id = user->id;
    out->f.limit = SF_JOBLIST_LIMIT_DEFAULT;
    sf_err err = {0};
    if (!parse_statuses(req, in, out))
        return 0;
    if (in->kind && !sf_joblist_kind_valid(in->kind))
        return bad(req, "kind", "kind: must be one of " SF_JOBLIST_KIND_LIST);
    out->f.kind = in->kind;
    if (in->symbol && sf_dataset_validate_symbol(in->symbol, &err) != SF_OK)
        return bad(req, "symbol", err.msg);
    out->f.symbol = in->symbol;
    if (!parse_time(req, "since", in->since, &out->f.has_since, &out->f.since_s) ||
        !parse_time(req, "until", in->until, &out->f.has_until, &out->f.until_s))
        return 0;
    return parse_logic(app, req, user, in->logic, out) && parse_batch(app, req, user, in->batch, out);
}

int api_page_args(sf_httpd_req *req, sf_joblist_filter *f)
{
    const char *limit = sf_httpd_query(req, "limit"), *cursor = sf_httpd_query(req, "cursor");
    int64_t n = SF_JOBLIST_LIMIT_DEFAULT;
    sf_err err = {0};
    if (limit && sf_config_parse_int(limit, 1, SF_JOBLIST_LIMIT_MAX, &n, &err) != SF_OK)
        return bad(req, "limit", "limit: must be an integer from 1 to 500 (50 when absent)");
    f->limit = (int)n;
    if (cursor && sf_joblist_cursor_decode(cursor, &f->cursor_us, f->cursor_id, sizeof f->cursor_id, &err) != SF_OK)
        return bad(req, "cursor", err.msg);
    f->has_cursor = cursor != NULL;
    return 1;
}

void api_reply_page(api_app *app, sf_httpd_req *req, const sf_joblist_filter *f, const sf_joblist_query *q)
{
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_buf b;
    sf_buf_init(&b, (size_t)64 << 20);
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, q->sql, q->nparams, q->params, &res, &err);
    int n = st == SF_OK ? sf_db_nrows(res) : 0, shown = n > f->limit ? f->limit : n;
    if (st == SF_OK)
        st = sf_buf_puts(&b, "{\"items\":[", &err);
    for (int i = 0; st == SF_OK && i < shown; i++)
        st = sf_buf_printf(&b, &err, "%s%s", i ? "," : "", sf_db_get(res, i, 0));
    if (st == SF_OK && n > f->limit) {
        char cursor[SF_JOBLIST_CURSOR_MAX];
        sf_joblist_cursor_encode(strtoll(sf_db_get(res, shown - 1, 1), NULL, 10), sf_db_get(res, shown - 1, 2), cursor,
                                 sizeof cursor);
        st = sf_buf_printf(&b, &err, "],\"next_cursor\":\"%s\"}", cursor);
    } else if (st == SF_OK) {
        st = sf_buf_puts(&b, "],\"next_cursor\":null}", &err);
    }
    if (st == SF_OK)
        api_reply_text(app, req, 200, sf_buf_str(&b));
    else
        api_fail(app, req, st, &err);
    sf_db_res_free(res);
    sf_buf_destroy(&b);
}

void api_jobs_list(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    api_filter_in in = {.kind = sf_httpd_query(req, "kind"),
                        .batch = sf_httpd_query(req, "batch"),
                        .logic = sf_httpd_query(req, "logic"),
                        .symbol = sf_httpd_query(req, "symbol"),
                        .since = sf_httpd_query(req, "since"),
                        .until = sf_httpd_query(req, "until")};
    if ((in.status[0] = sf_httpd_query(req, "status")) != NULL)
        in.n_status = 1;
    api_filter a;
    sf_joblist_query q;
    sf_err err = {0};
    if (!api_filter_parse(app, req, &user, &in, &a) || !api_page_args(req, &a.f))
        return;
    sf_status st = sf_joblist_jobs(&a.f, &q, &err);
    if (st == SF_ERR_INVALID)
        bad(req, NULL, err.msg);
    else if (st != SF_OK)
        api_fail(app, req, st, &err);
    else
        api_reply_page(app, req, &a.f, &q);
}

void api_batches_list(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    api_filter_in in = {.since = sf_httpd_query(req, "since"), .until = sf_httpd_query(req, "until")};
    api_filter a;
    sf_joblist_query q;
    sf_err err = {0};
    if (!api_filter_parse(app, req, &user, &in, &a) || !api_page_args(req, &a.f))
        return;
    sf_status st = sf_joblist_batches(&a.f, &q, &err);
    if (st == SF_ERR_INVALID)
        bad(req, NULL, err.msg);
    else if (st != SF_OK)
        api_fail(app, req, st, &err);
    else
        api_reply_page(app, req, &a.f, &q);
}
