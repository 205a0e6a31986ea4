/*
 * db: the PostgreSQL adapter (the only module that includes libpq-fe.h).
 *
 * One sf_db is one connection, used by one thread at a time. Statements take
 * text parameters ($1, $2, ...; NULL pointer = SQL NULL) and return an opaque
 * result read by row and column. Connecting retries with exponential backoff
 * up to a bounded number of attempts, each bounded by connect_timeout.
 *
 * Errors: a connection that cannot be made or is lost is SF_ERR_UNAVAILABLE;
 * a statement the server rejects is SF_ERR_DB, with the SQLSTATE available from
 * sf_db_sqlstate until the next call. A URL libpq cannot parse is
 * SF_ERR_CONFIG (not retried). Messages never contain the password; libpq
 * treats a connect_timeout below 2 s as 2 s.
 *
 * Ownership: sf_db_open returns a connection closed by sf_db_close; each
 * sf_db_res is freed by sf_db_res_free (both accept NULL). Strings returned by
 * sf_db_get are borrowed from the result and live until it is freed.
 */
#ifndef SF_DB_H
#define SF_DB_H

#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"

typedef struct sf_db sf_db;
typedef struct sf_db_res sf_db_res;

typedef struct sf_db_opts {
    int connect_timeout_s;        /* per attempt; 0 = 5 */
    int connect_attempts;         /* 0 = 1 */
    int backoff_initial_ms;       /* first wait between attempts; 0 = 100, doubles, max 5 s */
    int statement_timeout_ms;     /* 0 = server default */
    const char *application_name; /* NULL = "signal-factory" */
    int index_plans;              /* 1: the session's plans reach rows through indexes:
                              * sequential scans, hash joins and merge joins are off
                              * (enable_seqscan, enable_hashjoin, enable_mergejoin,
                              * sent at connection start; the planner still uses one
                              * when nothing else can run a statement), and so is JIT
                              * (a disabled plan's cost passed jit_above_cost, and
                              * compiling cost more than running). Prepared statements
                              * keep one generic plan from their first run
                              * (plan_cache_mode force_generic_plan: planning a claim
                              * was a large part of a single job's start). For sessions
                              * whose statements touch a few rows by key in tables that
                              * grow from empty (the farm's queue): cost estimates made
                              * on a small or freshly changed table chose a sequential
                              * scan of jobs for every batch of ids (see job.c) */
} sf_db_opts;

#define SF_DB_SQLSTATE_UNIQUE "23505"
#define SF_DB_SQLSTATE_SERIALIZATION "40001"

sf_status sf_db_open(const char *url, const sf_db_opts *opts, sf_db **out, sf_err *err);
void sf_db_close(sf_db *db);

/* Reconnect a lost connection (one attempt). */
sf_status sf_db_reset(sf_db *db, sf_err *err);
int sf_db_is_ok(const sf_db *db);

/* Run a statement (or several, with no parameters) and discard any rows. */
sf_status sf_db_exec(sf_db *db, const char *sql, sf_err *err);
/* Run one statement with text parameters; rows (if any) in *out when out != NULL. */
sf_status sf_db_query(sf_db *db, const char *sql, int nparams, const char *const *params, sf_db_res **out, sf_err *err);
/* sf_db_query for a statement run again and again (a fixed text): the first
 * call prepares it as a named statement of this session (parse, analysis
 * and, after a few runs, planning are done once); later calls only bind and
 * execute. At most 32 texts per connection (then unnamed, as sf_db_query);
 * forgotten on sf_db_reset. A session that lost them (a transaction-pooling
 * proxy without prepared-statement support) is answered by running the text
 * unnamed and starting over; inside an explicit transaction that error
 * aborts the transaction (SF_ERR_DB) like any other. */
sf_status sf_db_query_prepared(sf_db *db, const char *sql, int nparams, const char *const *params, sf_db_res **out,
                               sf_err *err);
/* sf_db_query_prepared with some parameters in binary format: lengths[i] and
 * formats[i] (0 text, 1 binary) as libpq's PQexecPrepared; NULL arrays mean
 * all text. */
sf_status sf_db_query_prepared_bin(sf_db *db, const char *sql, int nparams, const char *const *params,
                                   const int *lengths, const int *formats, sf_db_res **out, sf_err *err);

/* A one-dimensional float8[], bigint[] or text[] in PostgreSQL's binary
 * format, to pass as a binary parameter: no number is printed or parsed on
 * either side, no text escaped and unescaped. init starts it in b (an sf_buf
 * with maximum max), the add functions of its type append values (any number
 * of calls; text s == NULL is SQL NULL; len bytes of s, which must be valid
 * UTF-8: the server checks), finish completes it; then b->data and b->len are
 * the parameter. Destroy b with sf_buf_destroy. */
typedef enum sf_db_elem { SF_DB_FLOAT8, SF_DB_INT8, SF_DB_TEXT } sf_db_elem;
sf_status sf_db_bin_array_init(sf_buf *b, sf_db_elem elem, size_t max, sf_err *err);
sf_status sf_db_bin_array_add_f8(sf_buf *b, const double *v, size_t n, sf_err *err);
sf_status sf_db_bin_array_add_i8(sf_buf *b, const int64_t *v, size_t n, sf_err *err);
sf_status sf_db_bin_array_add_text(sf_buf *b, const char *s, size_t len, sf_err *err);
sf_status sf_db_bin_array_finish(sf_buf *b, sf_err *err);
size_t sf_db_bin_array_count(const sf_buf *b); /* values added so far */

/* Like sf_db_query with a printf-formatted parameter list is deliberately absent:
 * values travel as parameters, never spliced into SQL. */

sf_status sf_db_begin(sf_db *db, sf_err *err);
sf_status sf_db_commit(sf_db *db, sf_err *err);
void sf_db_rollback(sf_db *db); /* best effort; never fails the caller */

/* Rows affected by the last command of the last successful statement. */
int64_t sf_db_affected(const sf_db_res *res);
int sf_db_nrows(const sf_db_res *res);
int sf_db_ncols(const sf_db_res *res);
/* NULL for SQL NULL. */
const char *sf_db_get(const sf_db_res *res, int row, int col);
int sf_db_is_null(const sf_db_res *res, int row, int col);
void sf_db_res_free(sf_db_res *res);

const char *sf_db_sqlstate(const sf_db *db); /* "" when none */

/* LISTEN/NOTIFY: after `LISTEN chan`, wait up to timeout_ms for a
 * notification. Returns SF_OK with *got = 1 and the channel/payload copied
 * (truncated to the sizes given), *got = 0 on timeout. */
sf_status sf_db_wait_notify(sf_db *db, int timeout_ms, int *got, char *channel, size_t chsize, char *payload,
                            size_t plsize, sf_err *err);

/* COPY ... FROM STDIN: start, send chunks, end (which reports the server's verdict). */
sf_status sf_db_copy_start(sf_db *db, const char *sql, sf_err *err);
sf_status sf_db_copy_put(sf_db *db, const char *data, size_t len, sf_err *err);
sf_status sf_db_copy_end(sf_db *db, const char *abort_reason, sf_err *err);

/* COPY ... TO STDOUT: run sql and hand each CopyData message (one row, or in
 * binary format the header plus the first row) to fn, borrowed for the call.
 * A failure returned by fn stops reading; the rest of the copy is drained and
 * fn's status returned. */
typedef sf_status (*sf_db_copy_fn)(const char *data, size_t len, void *ctx, sf_err *err);
sf_status sf_db_copy_out(sf_db *db, const char *sql, sf_db_copy_fn fn, void *ctx, sf_err *err);

#endif
