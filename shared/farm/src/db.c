/* db: libpq adapter; see sf/db.h. */
#include "sf/db.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREPARED_MAX 32 /* named statements per connection (sf_db_query_prepared) */

struct sf_db {
    PGconn *conn;
    char sqlstate[6];
    char *prepared[PREPARED_MAX]; /* texts prepared as "sf_p<i>" on this session */
    int n_prepared;
};

struct sf_db_res {
    PGresult *res;
};

/* First line of a libpq message, for one-line errors. */
static void first_line(const char *msg, char *buf, size_t size)
{
    snprintf(buf, size, "%s", msg ? msg : "");
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static PGconn *connect_once(const char *url, const sf_db_opts *o)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", o->connect_timeout_s > 0 ? o->connect_timeout_s : 5);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {url, timeout, o->application_name ? o->application_name : "signal-factory",
                          o->index_plans ? "-c enable_seqscan=off -c enable_hashjoin=off "
                                           "-c enable_mergejoin=off -c jit=off "
                                           "-c plan_cache_mode=force_generic_plan"
                                         : NULL,
                          NULL};
    if (!o->index_plans)
        keys[3] = NULL; /* the list ends there: the URL's own options stay */
    return PQconnectdbParams(keys, vals, 1);
}

/* Server NOTICEs ("relation ... already exists, skipping") are dropped:
 * libpq's default processor prints them on stderr, and shared/ never prints. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static sf_status after_connect(sf_db *db, const sf_db_opts *o, sf_err *err)
{
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    if (o->statement_timeout_ms <= 0)
        return SF_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", o->statement_timeout_ms);
    return sf_db_exec(db, sql, err);
}

/* "host:port/dbname" for messages, whatever the form of url (URI or
 * key=value): never the password. libpq's own parse error is dropped, since
 * it may quote the string, password included. */
static sf_status describe_target(const char *url, char *buf, size_t size, sf_err *err)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &why);
    PQfreemem(why);
    if (opts == NULL)
        return sf_err_set(err, SF_ERR_CONFIG, "could not parse the database url (not shown: it may hold a password)");
    const char *part[3] = {"localhost", "5432", ""};
    static const char *const keys[3] = {"host", "port", "dbname"};
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        for (int k = 0; k < 3; k++)
            if (o->val && o->val[0] && strcmp(o->keyword, keys[k]) == 0)
                part[k] = o->val;
    snprintf(buf, size, "%s:%s/%s", part[0], part[1], part[2]);
    PQconninfoFree(opts);
    return SF_OK;
}

sf_status sf_db_open(const char *url, const sf_db_opts *opts, sf_db **out, sf_err *err)
{
    sf_db_opts o = opts ? *opts : (sf_db_opts){0};
    int attempts = o.connect_attempts > 0 ? o.connect_attempts : 1;
    int backoff = o.backoff_initial_ms > 0 ? o.backoff_initial_ms : 100;
    char target[512], why[256] = "";
    if (describe_target(url, target, sizeof target, err) != SF_OK)
        return SF_ERR_CONFIG;
    sf_db *db = calloc(1, sizeof *db);
    if (db == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < attempts; i++) {
        if (i > 0) {
            sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        db->conn = connect_once(url, &o);
        if (db->conn && PQstatus(db->conn) == CONNECTION_OK) {
            sf_status st = after_connect(db, &o, err);
            if (st != SF_OK) {
                sf_db_close(db);
                return st;
            }
            *out = db;
            return SF_OK;
        }
        first_line(db->conn ? PQerrorMessage(db->conn) : "out of memory", why, sizeof why);
        PQfinish(db->conn);
        db->conn = NULL;
    }
    free(db);
    return sf_err_set(err, SF_ERR_UNAVAILABLE, "could not connect to database \"%s\" after %d attempt%s: %s", target,
                      attempts, attempts == 1 ? "" : "s", why);
}

/* Forget the named statements (a new session has none). */
static void forget_prepared(sf_db *db)
{
    for (int i = 0; i < db->n_prepared; i++)
        free(db->prepared[i]);
    db->n_prepared = 0;
}

void sf_db_close(sf_db *db)
{
    if (db == NULL)
        return;
    PQfinish(db->conn);
    forget_prepared(db);
    free(db);
}

sf_status sf_db_reset(sf_db *db, sf_err *err)
{
    forget_prepared(db);
    PQreset(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        char why[256];
        first_line(PQerrorMessage(db->conn), why, sizeof why);
        return sf_err_set(err, SF_ERR_UNAVAILABLE, "could not reconnect to database: %s", why);
    }
    return SF_OK;
}

int sf_db_is_ok(const sf_db *db)
{
    return db && PQstatus(db->conn) == CONNECTION_OK;
}

/* Classify a failed result: lost connection vs. rejected statement. */
static sf_status fail(sf_db *db, PGresult *res, sf_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    state = db->sqlstate; /* res is cleared below */
    /* The primary message alone ("relation \"x\" does not exist"), without
     * libpq's "ERROR:  " prefix. */
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char why[384];
    first_line(primary ? primary : res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn), why, sizeof why);
    if (why[0] == '\0')
        first_line(PQerrorMessage(db->conn), why, sizeof why);
    PQclear(res);
    if (PQstatus(db->conn) != CONNECTION_OK || strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0)
        return sf_err_set(err, SF_ERR_UNAVAILABLE, "lost connection to database: %s", why);
    return sf_err_set(err, SF_ERR_DB, "%s", why);
}

static int result_ok(PGresult *res)
{
    ExecStatusType s = PQresultStatus(res);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_COPY_IN;
}

sf_status sf_db_exec(sf_db *db, const char *sql, sf_err *err)
{
    db->sqlstate[0] = '\0';
    PGresult *res = PQexec(db->conn, sql);
    if (res == NULL || !result_ok(res))
        return fail(db, res, err);
    PQclear(res);
    return SF_OK;
}

static sf_status wrap_result(PGresult *res, sf_db_res **out, sf_err *err);

static sf_status query_unnamed(sf_db *db, const char *sql, int nparams, const char *const *params, const int *lengths,
                               const int *formats, sf_db_res **out, sf_err *err)
{
    db->sqlstate[0] = '\0';
    if (out)
        *out = NULL;
    PGresult *res = PQexecParams(db->conn, sql, nparams, NULL, params, lengths, formats, 0);
    if (res == NULL || !result_ok(res))
        return fail(db, res, err);
    return wrap_result(res, out, err);
}

sf_status sf_db_query(sf_db *db, const char *sql, int nparams, const char *const *params, sf_db_res **out, sf_err *err)
{
    return query_unnamed(db, sql, nparams, params, NULL, NULL, out, err);
}

static sf_status wrap_result(PGresult *res, sf_db_res **out, sf_err *err)
{
    if (out == NULL) {
        PQclear(res);
        return SF_OK;
    }
    sf_db_res *r = malloc(sizeof *r);
    if (r == NULL) {
        PQclear(res);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    r->res = res;
    *out = r;
    return SF_OK;
}

/* The index of sql among the named statements, preparing it when new; -1
 * when the cache is full (the caller runs it unnamed). */
static int prepared_index(sf_db *db, const char *sql, int nparams, PGresult **bad)
{
    *bad = NULL;
    for (int i = 0; i < db->n_prepared; i++)
        if (strcmp(db->prepared[i], sql) == 0)
            return i;
    if (db->n_prepared >= PREPARED_MAX)
        return -1;
    char *copy = strdup(sql);
    if (copy == NULL)
        return -1;
    char name[16];
    snprintf(name, sizeof name, "sf_p%d", db->n_prepared);
    PGresult *res = PQprepare(db->conn, name, sql, nparams, NULL);
    if (res == NULL || !result_ok(res)) {
        free(copy);
        *bad = res ? res : PQmakeEmptyPGresult(db->conn, PGRES_FATAL_ERROR);
        return -1;
    }
    PQclear(res);
    db->prepared[db->n_prepared] = copy;
    return db->n_prepared++;
}

sf_status sf_db_query_prepared(sf_db *db, const char *sql, int nparams, const char *const *params, sf_db_res **out,
                               sf_err *err)
{
    return sf_db_query_prepared_bin(db, sql, nparams, params, NULL, NULL, out, err);
}

sf_status sf_db_query_prepared_bin(sf_db *db, const char *sql, int nparams, const char *const *params,
                                   const int *lengths, const int *formats, sf_db_res **out, sf_err *err)
{
    db->sqlstate[0] = '\0';
    if (out)
        *out = NULL;
    PGresult *bad = NULL;
    int i = prepared_index(db, sql, nparams, &bad);
    if (bad != NULL)
        return fail(db, bad, err);
    if (i < 0)
        return query_unnamed(db, sql, nparams, params, lengths, formats, out, err);
    char name[16];
    snprintf(name, sizeof name, "sf_p%d", i);
    PGresult *res = PQexecPrepared(db->conn, name, nparams, params, lengths, formats, 0);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "26000") == 0) {
        /* The session lost it (a pooler handed us another server session):
         * start the cache again and run this one unnamed. */
        PQclear(res);
        forget_prepared(db);
        return query_unnamed(db, sql, nparams, params, lengths, formats, out, err);
    }
    if (res == NULL || !result_ok(res))
        return fail(db, res, err);
    return wrap_result(res, out, err);
}

/* ---- binary arrays ------------------------------------------------------ */

#define BIN_ARRAY_HEADER 20 /* ndim, flags, element type, length, lower bound */
#define BIN_ELEM 12         /* a 4-byte length and an 8-byte value */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

sf_status sf_db_bin_array_init(sf_buf *b, sf_db_elem elem, size_t max, sf_err *err)
{
    unsigned char h[BIN_ARRAY_HEADER];
    put_be32(h, 1);
    put_be32(h + 4, 0);
    put_be32(h + 8, elem == SF_DB_FLOAT8 ? 701 : elem == SF_DB_INT8 ? 20 : 25);
    put_be32(h + 12, 0);
    put_be32(h + 16, 1);
    sf_buf_init(b, max);
    return sf_buf_append(b, h, sizeof h, err);
}

static sf_status bin_add(sf_buf *b, const uint64_t *bits, size_t n, sf_err *err)
{
    unsigned char e[BIN_ELEM * 64];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < 64 && i < n; k++, i++) {
            put_be32(e + k * BIN_ELEM, 8);
            put_be64(e + k * BIN_ELEM + 4, bits[i]);
        }
        sf_status st = sf_buf_append(b, e, k * BIN_ELEM, err);
        if (st != SF_OK)
            return st;
        put_be32((unsigned char *)b->data + 12, get_be32((unsigned char *)b->data + 12) + (uint32_t)k);
    }
    return SF_OK;
}

sf_status sf_db_bin_array_add_f8(sf_buf *b, const double *v, size_t n, sf_err *err)
{
    _Static_assert(sizeof(double) == sizeof(uint64_t), "IEEE-754 binary64 doubles");
    uint64_t bits[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        memcpy(bits, v + i, k * sizeof *bits);
        sf_status st = bin_add(b, bits, k, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

sf_status sf_db_bin_array_add_i8(sf_buf *b, const int64_t *v, size_t n, sf_err *err)
{
    uint64_t bits[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < k; j++)
            bits[j] = (uint64_t)v[i + j];
        sf_status st = bin_add(b, bits, k, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

sf_status sf_db_bin_array_add_text(sf_buf *b, const char *s, size_t len, sf_err *err)
{
    unsigned char l[4];
    if (s == NULL) {
        put_be32(l, UINT32_MAX);                   /* -1: NULL */
        put_be32((unsigned char *)b->data + 4, 1); /* the array has NULLs */
    } else {
        if (len > INT32_MAX)
            return sf_err_set(err, SF_ERR_LIMIT, "binary array: an element over %d bytes", INT32_MAX);
        put_be32(l, (uint32_t)len);
    }
    sf_status st = sf_buf_append(b, l, sizeof l, err);
    if (st == SF_OK && s != NULL)
        st = sf_buf_append(b, s, len, err);
    if (st == SF_OK)
        put_be32((unsigned char *)b->data + 12, get_be32((unsigned char *)b->data + 12) + 1);
    return st;
}

size_t sf_db_bin_array_count(const sf_buf *b)
{
    return b->len < BIN_ARRAY_HEADER ? 0 : get_be32((const unsigned char *)b->data + 12);
}

sf_status sf_db_bin_array_finish(sf_buf *b, sf_err *err)
{
    if (b->len < BIN_ARRAY_HEADER)
        return sf_err_set(err, SF_ERR_INVALID, "binary array: not started");
    if (sf_db_bin_array_count(b) > INT32_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "binary array: more than %d elements", INT32_MAX);
    if (sf_db_bin_array_count(b) == 0) { /* the empty array has no dimensions */
        unsigned char *h = (unsigned char *)b->data;
        put_be32(h, 0);
        put_be32(h + 4, 0);
        b->len = 12;
        b->data[b->len] = '\0';
    }
    return SF_OK;
}

sf_status sf_db_begin(sf_db *db, sf_err *err)
{
    return sf_db_exec(db, "BEGIN", err);
}

sf_status sf_db_commit(sf_db *db, sf_err *err)
{
    return sf_db_exec(db, "COMMIT", err);
}

void sf_db_rollback(sf_db *db)
{
    if (db && PQstatus(db->conn) == CONNECTION_OK)
        PQclear(PQexec(db->conn, "ROLLBACK"));
}

int64_t sf_db_affected(const sf_db_res *res)
{
    const char *s = PQcmdTuples(res->res);
    return s && *s ? strtoll(s, NULL, 10) : 0;
}

int sf_db_nrows(const sf_db_res *res)
{
    return PQntuples(res->res);
}
int sf_db_ncols(const sf_db_res *res)
{
    return PQnfields(res->res);
}

const char *sf_db_get(const sf_db_res *res, int row, int col)
{
    if (PQgetisnull(res->res, row, col))
        return NULL;
    return PQgetvalue(res->res, row, col);
}

int sf_db_is_null(const sf_db_res *res, int row, int col)
{
    return PQgetisnull(res->res, row, col);
}

void sf_db_res_free(sf_db_res *res)
{
    if (res == NULL)
        return;
    PQclear(res->res);
    free(res);
}

const char *sf_db_sqlstate(const sf_db *db)
{
    return db->sqlstate;
}

static int take_notify(sf_db *db, char *channel, size_t chsize, char *payload, size_t plsize)
{
    PGnotify *n = PQnotifies(db->conn);
    if (n == NULL)
        return 0;
    snprintf(channel, chsize, "%s", n->relname);
    snprintf(payload, plsize, "%s", n->extra ? n->extra : "");
    PQfreemem(n);
    return 1;
}

sf_status sf_db_wait_notify(sf_db *db, int timeout_ms, int *got, char *channel, size_t chsize, char *payload,
                            size_t plsize, sf_err *err)
{
    *got = 0;
    if (PQconsumeInput(db->conn) == 0)
        return fail(db, NULL, err);
    if ((*got = take_notify(db, channel, chsize, payload, plsize)))
        return SF_OK;
    struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return sf_err_set(err, SF_ERR_UNAVAILABLE, "lost connection to database: no socket");
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        return sf_err_sys(err, SF_ERR_IO, errno, "could not wait for notifications: %s", sf_err_errno_text(errno).text);
    if (r <= 0)
        return SF_OK;
    if (PQconsumeInput(db->conn) == 0)
        return fail(db, NULL, err);
    *got = take_notify(db, channel, chsize, payload, plsize);
    return SF_OK;
}

sf_status sf_db_copy_start(sf_db *db, const char *sql, sf_err *err)
{
    PGresult *res = PQexec(db->conn, sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
        return fail(db, res, err);
    PQclear(res);
    return SF_OK;
}

sf_status sf_db_copy_put(sf_db *db, const char *data, size_t len, sf_err *err)
{
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : (int)len;
        if (PQputCopyData(db->conn, data, chunk) != 1)
            return fail(db, NULL, err);
        data += chunk;
        len -= (size_t)chunk;
    }
    return SF_OK;
}

sf_status sf_db_copy_end(sf_db *db, const char *abort_reason, sf_err *err)
{
    if (PQputCopyEnd(db->conn, abort_reason) != 1)
        return fail(db, NULL, err);
    sf_status st = SF_OK;
    PGresult *res;
    while ((res = PQgetResult(db->conn)) != NULL) {
        if (st == SF_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            st = fail(db, res, err);
            continue;
        }
        PQclear(res);
    }
    return st;
}

/* Read what is left of a COPY OUT and the final result; keep the first error. */
static sf_status copy_out_finish(sf_db *db, sf_status st, sf_err *err)
{
    PGresult *res;
    while ((res = PQgetResult(db->conn)) != NULL) {
        if (st == SF_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            st = fail(db, res, err);
            continue;
        }
        PQclear(res);
    }
    return st;
}

sf_status sf_db_copy_out(sf_db *db, const char *sql, sf_db_copy_fn fn, void *ctx, sf_err *err)
{
    db->sqlstate[0] = '\0';
    PGresult *res = PQexec(db->conn, sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_OUT)
        return fail(db, res, err);
    PQclear(res);
    sf_status st = SF_OK;
    char *buf = NULL;
    int n;
    while ((n = PQgetCopyData(db->conn, &buf, 0)) > 0) {
        if (st == SF_OK)
            st = fn(buf, (size_t)n, ctx, err);
        PQfreemem(buf);
        buf = NULL;
    }
    if (n == -2 && st == SF_OK)
        st = fail(db, NULL, err);
    return copy_out_finish(db, st, err);
}
