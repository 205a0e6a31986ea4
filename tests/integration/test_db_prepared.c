/* sf_db_query_prepared against the local stack: a statement is prepared once
 * per session and reused, survives a reconnect (sf_db_reset forgets the
 * names) and a session that lost its named statements (DEALLOCATE ALL, as
 * behind a transaction-pooling proxy), and reports errors like sf_db_query. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testenv.h"
#include "sf/db.h"

static char *url;
static sf_db *db;

static void setup(void)
{
    url = sf_testenv_require("DATABASE_URL");
    db = sf_testenv_db_open(url);
}

static void teardown(void)
{
    sf_db_close(db);
    free(url);
}

TestSuite(db_prepared, .init = setup, .fini = teardown, .timeout = 30);

static const char ADD[] = "SELECT $1::int + $2::int";

static long long add(int a, int b)
{
    char x[16], y[16];
    snprintf(x, sizeof x, "%d", a);
    snprintf(y, sizeof y, "%d", b);
    const char *p[] = {x, y};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query_prepared(db, ADD, 2, p, &res, &err), SF_OK, "%s", err.msg);
    long long v = strtoll(sf_db_get(res, 0, 0), NULL, 10);
    sf_db_res_free(res);
    return v;
}

static long long named_statements(void)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(
        sf_db_query(db, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sf_p%'", 0, NULL, &res, &err),
        SF_OK, "%s", err.msg);
    long long n = strtoll(sf_db_get(res, 0, 0), NULL, 10);
    sf_db_res_free(res);
    return n;
}

Test(db_prepared, a_statement_is_prepared_once_and_reused_with_new_parameters)
{
    cr_assert_eq(add(40, 2), 42);
    cr_assert_eq(add(1, 2), 3);
    cr_assert_eq(named_statements(), 1, "one named statement for one text");
}

Test(db_prepared, a_reset_session_and_a_session_that_lost_its_statements_still_answer)
{
    cr_assert_eq(add(1, 1), 2);
    sf_err err = {0};
    cr_assert_eq(sf_db_reset(db, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(add(2, 2), 4, "prepared again on the new session");
    cr_assert_eq(sf_db_exec(db, "DEALLOCATE ALL", &err), SF_OK, "%s", err.msg);
    cr_assert_eq(add(3, 3), 6, "run unnamed when the session lost it");
    cr_assert_eq(add(4, 4), 8, "and prepared again after that");
    cr_assert_eq(named_statements(), 1);
}

Test(db_prepared, errors_are_reported_like_sf_db_query)
{
    const char *p[] = {"x"};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query_prepared(db, "SELECT $1::int", 1, p, &res, &err), SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), "22P02");
    cr_assert_null(res);
    cr_assert_eq(sf_db_query_prepared(db, "SELECT FROM nowhere_at_all", 0, NULL, &res, &err), SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), "42P01", "a text that does not prepare");
}

/* ---- binary array parameters -------------------------------------------- */

/* Run sql with one binary array parameter; the first column of row 0. */
static char *bin_query(const char *sql, const sf_buf *arr)
{
    const char *p[] = {arr->data};
    const int len[] = {(int)arr->len}, fmt[] = {1};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query_prepared_bin(db, sql, 1, p, len, fmt, &res, &err), SF_OK, "%s", err.msg);
    const char *v = sf_db_get(res, 0, 0);
    char *out = strdup(v ? v : "(null)");
    sf_db_res_free(res);
    return out;
}

Test(db_prepared, binary_float8_and_bigint_arrays_arrive_bit_for_bit)
{
    const double v[] = {0.1, -0.0, 1.0 / 3.0, 1e300, -2.2250738585072014e-308, 4.9e-324, 10234.567890123457};
    const int64_t t[] = {0, -1, INT64_MAX, INT64_MIN, 1700000000};
    sf_buf a, b;
    sf_err err = {0};
    cr_assert_eq(sf_db_bin_array_init(&a, SF_DB_FLOAT8, 1 << 20, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_add_f8(&a, v, 3, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_add_f8(&a, v + 3, 4, &err), SF_OK); /* appends */
    cr_assert_eq(sf_db_bin_array_finish(&a, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_count(&a), 7);
    /* float8send of each element, compared as the server sees the bits */
    char *got = bin_query("SELECT string_agg(float8send(x)::text, ',' ORDER BY i) "
                          "FROM unnest($1::float8[]) WITH ORDINALITY AS u(x, i)",
                          &a);
    char want[1024] = "";
    for (size_t i = 0; i < 7; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s\\x%016llx", i ? "," : "",
                 (unsigned long long)bits);
    }
    cr_assert_str_eq(got, want);
    free(got);
    cr_assert_eq(sf_db_bin_array_init(&b, SF_DB_INT8, 1 << 20, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_add_i8(&b, t, 5, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_finish(&b, &err), SF_OK);
    got = bin_query("SELECT $1::bigint[]::text", &b);
    cr_assert_str_eq(got, "{0,-1,9223372036854775807,-9223372036854775808,1700000000}");
    free(got);
    sf_buf_destroy(&a);
    sf_buf_destroy(&b);
}

Test(db_prepared, binary_text_arrays_keep_quotes_backslashes_and_nulls_and_empty_arrays_work)
{
    sf_buf a;
    sf_err err = {0};
    const char *s[] = {"{\"a\": \"b\\\"c\"}", NULL, "", "\\\\ {,} 'x'"};
    cr_assert_eq(sf_db_bin_array_init(&a, SF_DB_TEXT, 1 << 20, &err), SF_OK);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(sf_db_bin_array_add_text(&a, s[i], s[i] ? strlen(s[i]) : 0, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_finish(&a, &err), SF_OK);
    char *got = bin_query("SELECT string_agg(coalesce(x, '<NULL>'), '|' ORDER BY i) "
                          "FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i)",
                          &a);
    cr_assert_str_eq(got, "{\"a\": \"b\\\"c\"}|<NULL>||\\\\ {,} 'x'");
    free(got);
    sf_buf_destroy(&a);
    /* no elements: the empty array, of every type */
    cr_assert_eq(sf_db_bin_array_init(&a, SF_DB_FLOAT8, 1 << 20, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_finish(&a, &err), SF_OK);
    got = bin_query("SELECT cardinality($1::float8[])::text || ' ' || ($1::float8[])[1:0]::text", &a);
    cr_assert_str_eq(got, "0 {}");
    free(got);
    sf_buf_destroy(&a);
}

Test(db_prepared, a_buffer_at_its_maximum_fails_with_a_limit_error)
{
    sf_buf a;
    sf_err err = {0};
    double v[64] = {0};
    cr_assert_eq(sf_db_bin_array_init(&a, SF_DB_FLOAT8, 100, &err), SF_OK);
    cr_assert_eq(sf_db_bin_array_add_f8(&a, v, 64, &err), SF_ERR_LIMIT);
    sf_buf_destroy(&a);
}
