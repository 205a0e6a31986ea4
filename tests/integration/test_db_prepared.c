/* sf_db_query_prepared against the local stack: a statement is prepared once
 * per session and reused, survives a reconnect (sf_db_reset forgets the
 * names) and a session that lost its named statements (DEALLOCATE ALL, as
 * behind a transaction-pooling proxy), and reports errors like sf_db_query. */
#include <criterion/criterion.h>
#include <stdlib.h>

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
    cr_assert_eq(sf_db_query(db, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sf_p%'", 0, NULL,
                             &res, &err), SF_OK, "%s", err.msg);
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
