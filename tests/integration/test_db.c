/* Integration tests of the PostgreSQL adapter against the local stack. Each
 * test uses temporary tables and random channel names, so tests share the
 * stack's database safely. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/testenv.h"
#include "sf/db.h"
#include "sf/time.h"

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

TestSuite(db, .init = setup, .fini = teardown, .timeout = 30);

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
static int unused_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

Test(db, query_with_parameters_and_nulls)
{
    const char *params[] = {"41", NULL, "it's; DROP TABLE x --"};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(db, "SELECT $1::int + 1, $2::text IS NULL, NULL::text, $3::text", 3, params, &res, &err),
                 SF_OK, "%s", err.msg);
    cr_assert_eq(sf_db_nrows(res), 1);
    cr_assert_eq(sf_db_ncols(res), 4);
    cr_assert_str_eq(sf_db_get(res, 0, 0), "42");
    cr_assert_str_eq(sf_db_get(res, 0, 1), "t");
    cr_assert_null(sf_db_get(res, 0, 2));
    cr_assert(sf_db_is_null(res, 0, 2));
    cr_assert_not(sf_db_is_null(res, 0, 0));
    cr_assert_str_eq(sf_db_get(res, 0, 3), "it's; DROP TABLE x --", "parameters are values, never SQL");
    sf_db_res_free(res);
    sf_db_res_free(NULL);
    cr_assert_str_eq(sf_db_sqlstate(db), "");
}

Test(db, rows_and_affected_counts)
{
    sf_err err = {0};
    sf_testenv_exec(db, "CREATE TEMP TABLE t (id int PRIMARY KEY, v text)");
    sf_db_res *res = NULL;
    cr_assert_eq(sf_db_query(db, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g", 0, NULL, &res, &err),
                 SF_OK, "%s", err.msg);
    cr_assert_eq(sf_db_affected(res), 5);
    sf_db_res_free(res);
    cr_assert_eq(sf_db_query(db, "SELECT id, v FROM t WHERE id > 2 ORDER BY id", 0, NULL, &res, &err), SF_OK);
    cr_assert_eq(sf_db_nrows(res), 3);
    cr_assert_str_eq(sf_db_get(res, 2, 1), "v5");
    sf_db_res_free(res);
    cr_assert_eq(sf_db_query(db, "SELECT 1 WHERE false", 0, NULL, &res, &err), SF_OK);
    cr_assert_eq(sf_db_nrows(res), 0);
    sf_db_res_free(res);
}

Test(db, rollback_discards_and_commit_keeps)
{
    sf_err err = {0};
    sf_testenv_exec(db, "CREATE TEMP TABLE t (id int)");
    cr_assert_eq(sf_db_begin(db, &err), SF_OK);
    sf_testenv_exec(db, "INSERT INTO t VALUES (1), (2)");
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM t"), 2);
    sf_db_rollback(db);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM t"), 0);
    cr_assert_eq(sf_db_begin(db, &err), SF_OK);
    sf_testenv_exec(db, "INSERT INTO t VALUES (3)");
    cr_assert_eq(sf_db_commit(db, &err), SF_OK);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT sum(id) FROM t"), 3);

    /* A failed statement aborts the transaction until the rollback. */
    cr_assert_eq(sf_db_begin(db, &err), SF_OK);
    cr_assert_eq(sf_db_exec(db, "SELECT 1/0", &err), SF_ERR_DB);
    cr_assert_eq(sf_db_exec(db, "INSERT INTO t VALUES (4)", &err), SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), "25P02");
    sf_db_rollback(db);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM t"), 1);
    sf_db_rollback(NULL);
}

Test(db, unique_violation_gives_sqlstate_and_a_clean_message)
{
    sf_err err = {0};
    sf_testenv_exec(db, "CREATE TEMP TABLE u (email text PRIMARY KEY)");
    sf_testenv_exec(db, "INSERT INTO u VALUES ('a@x')");
    const char *params[] = {"a@x"};
    cr_assert_eq(sf_db_query(db, "INSERT INTO u VALUES ($1)", 1, params, NULL, &err), SF_ERR_DB);
    cr_assert_eq(err.code, SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), SF_DB_SQLSTATE_UNIQUE);
    cr_assert(strstr(err.msg, "duplicate key value violates unique constraint") != NULL, "%s", err.msg);
    cr_assert(strncmp(err.msg, "ERROR", 5) != 0, "no libpq severity prefix: %s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
    cr_assert_eq(sf_db_exec(db, "SELEC 1", &err), SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), "42601");
    cr_assert_eq(sf_db_exec(db, "SELECT 1", &err), SF_OK, "the connection stays usable");
    cr_assert_str_eq(sf_db_sqlstate(db), "", "cleared by a successful call");
    cr_assert(sf_db_is_ok(db));
}

Test(db, statement_timeout_cancels_long_statements)
{
    sf_db *short_db = NULL;
    sf_err err = {0};
    sf_db_opts opts = {.statement_timeout_ms = 100};
    cr_assert_eq(sf_db_open(url, &opts, &short_db, &err), SF_OK, "%s", err.msg);
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_db_exec(short_db, "SELECT pg_sleep(2)", &err), SF_ERR_DB);
    cr_assert_lt(sf_time_mono_ms() - t0, 1500);
    cr_assert_str_eq(sf_db_sqlstate(short_db), "57014");
    cr_assert_eq(sf_db_exec(short_db, "SELECT 1", &err), SF_OK);
    sf_db_close(short_db);
}

Test(db, listen_notify_round_trip_and_timeout)
{
    char chan[40], sql[80];
    sf_testenv_random_name("sf_test_chan_", chan, sizeof chan);
    snprintf(sql, sizeof sql, "LISTEN %s", chan);
    sf_testenv_exec(db, sql);
    sf_db *other = sf_testenv_db_open(url);
    const char *params[] = {chan, "payload with \"quotes\""};
    sf_err err = {0};
    cr_assert_eq(sf_db_query(other, "SELECT pg_notify($1, $2)", 2, params, NULL, &err), SF_OK, "%s", err.msg);
    int got = 0;
    char ch[64] = "", pl[64] = "";
    cr_assert_eq(sf_db_wait_notify(db, 2000, &got, ch, sizeof ch, pl, sizeof pl, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(got, 1);
    cr_assert_str_eq(ch, chan);
    cr_assert_str_eq(pl, "payload with \"quotes\"");

    /* Nothing pending: times out after about the time asked. */
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_db_wait_notify(db, 300, &got, ch, sizeof ch, pl, sizeof pl, &err), SF_OK);
    int64_t waited = sf_time_mono_ms() - t0;
    cr_assert_eq(got, 0);
    cr_assert(waited >= 250 && waited < 1500, "waited %lld ms", (long long)waited);

    /* A notification that arrived during another query is not lost; long payloads are cut to fit. */
    params[1] = "0123456789abcdef";
    cr_assert_eq(sf_db_query(other, "SELECT pg_notify($1, $2)", 2, params, NULL, &err), SF_OK);
    usleep(100 * 1000);
    sf_testenv_exec(db, "SELECT 1");
    char small[8];
    cr_assert_eq(sf_db_wait_notify(db, 0, &got, ch, sizeof ch, small, sizeof small, &err), SF_OK);
    cr_assert_eq(got, 1);
    cr_assert_str_eq(small, "0123456");
    sf_db_close(other);
}

Test(db, copy_from_stdin_in_chunks)
{
    sf_err err = {0};
    sf_testenv_exec(db, "CREATE TEMP TABLE c (a int, b text)");
    cr_assert_eq(sf_db_copy_start(db, "COPY c (a, b) FROM STDIN", &err), SF_OK, "%s", err.msg);
    const char *data = "1\tone\n2\t\\N\n3\tth";
    cr_assert_eq(sf_db_copy_put(db, data, strlen(data), &err), SF_OK);
    cr_assert_eq(sf_db_copy_put(db, "ree\n", 4, &err), SF_OK);
    cr_assert_eq(sf_db_copy_end(db, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM c"), 3);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM c WHERE b IS NULL AND a = 2"), 1);
    char *three = sf_testenv_query_text(db, "SELECT b FROM c WHERE a = 3");
    cr_assert_str_eq(three, "three");
    free(three);

    cr_assert_eq(sf_db_copy_start(db, "COPY c (a, b) FROM STDIN", &err), SF_OK);
    cr_assert_eq(sf_db_copy_put(db, "4\tok\nx\tbad\n", 12, &err), SF_OK);
    cr_assert_eq(sf_db_copy_end(db, NULL, &err), SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), "22P02");
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM c"), 3, "a failed COPY inserts nothing");

    cr_assert_eq(sf_db_copy_start(db, "COPY c (a, b) FROM STDIN", &err), SF_OK);
    cr_assert_eq(sf_db_copy_put(db, "5\tfive\n", 7, &err), SF_OK);
    cr_assert_eq(sf_db_copy_end(db, "caller gave up", &err), SF_ERR_DB);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM c"), 3, "an aborted COPY inserts nothing");
    cr_assert_eq(sf_db_copy_start(db, "SELECT 1", &err), SF_ERR_DB, "not a COPY");
    cr_assert(sf_db_is_ok(db));
}

Test(db, a_closed_port_fails_fast_naming_the_host_but_not_the_password)
{
    int port = unused_port();
    char bad[256], hostport[64];
    snprintf(bad, sizeof bad, "postgresql://postgres:Sup3rSecretPw@127.0.0.1:%d/signal_factory", port);
    snprintf(hostport, sizeof hostport, "127.0.0.1:%d", port);
    sf_db_opts opts = {.connect_timeout_s = 1, .connect_attempts = 2, .backoff_initial_ms = 100};
    sf_db *x = NULL;
    sf_err err = {0};
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_db_open(bad, &opts, &x, &err), SF_ERR_UNAVAILABLE);
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert_null(x);
    cr_assert_lt(took, 4000, "took %lld ms", (long long)took);
    cr_assert_geq(took, 100, "the backoff between the two attempts is slept");
    cr_assert(strstr(err.msg, hostport) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "2 attempts") != NULL, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "Sup3rSecretPw"), "%s", err.msg);
}

Test(db, key_value_and_malformed_urls_never_show_the_password)
{
    int port = unused_port();
    char kv[256], hostport[64];
    snprintf(kv, sizeof kv, "host=127.0.0.1 port=%d dbname=x user=u password=KvSecret1", port);
    snprintf(hostport, sizeof hostport, "127.0.0.1:%d/x", port);
    sf_db *x = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_open(kv, NULL, &x, &err), SF_ERR_UNAVAILABLE);
    cr_assert(strstr(err.msg, hostport) != NULL, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "KvSecret1"), "%s", err.msg);
    /* One slash short of a URI: libpq reads it as key=value and would quote it back. */
    cr_assert_eq(sf_db_open("postgresql:/u:Typo5ecret@h/x", NULL, &x, &err), SF_ERR_CONFIG);
    cr_assert_null(x);
    cr_assert_null(strstr(err.msg, "Typo5ecret"), "%s", err.msg);
    cr_assert(strstr(err.msg, "could not parse the database url") != NULL, "%s", err.msg);
}

Test(db, an_unroutable_host_fails_within_the_connect_timeout)
{
    sf_db_opts opts = {.connect_timeout_s = 2, .connect_attempts = 1};
    sf_db *x = NULL;
    sf_err err = {0};
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_db_open("postgresql://u:pw9876@192.0.2.1:5432/x", &opts, &x, &err), SF_ERR_UNAVAILABLE);
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert_lt(took, 3500, "took %lld ms", (long long)took);
    cr_assert(strstr(err.msg, "192.0.2.1") != NULL, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "pw9876"), "%s", err.msg);
}

Test(db, a_killed_session_is_unavailable_and_reset_recovers)
{
    sf_err err = {0};
    char *pid = sf_testenv_query_text(db, "SELECT pg_backend_pid()");
    sf_db *killer = sf_testenv_db_open(url);
    const char *params[] = {pid};
    cr_assert_eq(sf_db_query(killer, "SELECT pg_terminate_backend($1::int)", 1, params, NULL, &err), SF_OK);
    sf_db_close(killer);
    usleep(100 * 1000);
    cr_assert_eq(sf_db_exec(db, "SELECT 1", &err), SF_ERR_UNAVAILABLE, "%s", err.msg);
    cr_assert_not(sf_db_is_ok(db));
    cr_assert_eq(sf_db_reset(db, &err), SF_OK, "%s", err.msg);
    cr_assert(sf_db_is_ok(db));
    char *pid2 = sf_testenv_query_text(db, "SELECT pg_backend_pid()");
    cr_assert_str_neq(pid2, pid);
    free(pid), free(pid2);
}

/* The plan of sql (EXPLAIN, one line per row, joined by newlines). */
static char *plan_of(sf_db *d, const char *sql, const char *p1)
{
    char explain[2048];
    snprintf(explain, sizeof explain, "EXPLAIN %s", sql);
    const char *params[] = {p1};
    sf_db_res *res = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_db_query(d, explain, 1, params, &res, &err), SF_OK, "%s", err.msg);
    size_t cap = 1, len = 0;
    for (int r = 0; r < sf_db_nrows(res); r++)
        cap += strlen(sf_db_get(res, r, 0)) + 1;
    char *out = calloc(1, cap);
    for (int r = 0; r < sf_db_nrows(res); r++)
        len += (size_t)snprintf(out + len, cap - len, "%s\n", sf_db_get(res, r, 0));
    sf_db_res_free(res);
    return out;
}

/* index_plans (the farm's worker and scheduler sessions): a batch of ids
 * joined to a table reaches its rows through the primary key, where a default
 * session scans the whole (small) table; and the session keeps generic plans
 * and never compiles with JIT. */
Test(db, an_index_plans_session_joins_a_batch_of_ids_through_the_primary_key)
{
    sf_err err = {0};
    cr_assert_eq(sf_db_exec(db,
                            "CREATE TEMP TABLE ip (id int PRIMARY KEY, v text);"
                            "INSERT INTO ip SELECT g, 'x' FROM generate_series(1, 20000) g; ANALYZE ip",
                            &err),
                 SF_OK, "%s", err.msg);
    const char *sql = "SELECT ip.id FROM unnest($1::int[]) AS s(id) JOIN ip ON ip.id = s.id "
                      "WHERE CASE WHEN ip.v = 'x' THEN true ELSE false END";
    char ids[4096];
    size_t len = (size_t)snprintf(ids, sizeof ids, "{");
    for (int i = 0; i < 400; i++)
        len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%d", i ? "," : "", 1 + i * 50);
    snprintf(ids + len, sizeof ids - len, "}");
    cr_assert_lt(len + 1, sizeof ids);
    char *plain = plan_of(db, sql, ids);
    cr_log_info("default session:\n%s", plain);

    sf_db_opts o = {.connect_timeout_s = 5, .index_plans = 1};
    sf_db *ip = NULL;
    cr_assert_eq(sf_db_open(url, &o, &ip, &err), SF_OK, "%s", err.msg);
    sf_db_res *res = NULL;
    cr_assert_eq(sf_db_query(ip,
                             "SELECT current_setting('enable_seqscan'), current_setting('enable_hashjoin'), "
                             "current_setting('enable_mergejoin'), current_setting('jit'), "
                             "current_setting('plan_cache_mode')",
                             0, NULL, &res, &err),
                 SF_OK, "%s", err.msg);
    cr_assert_str_eq(sf_db_get(res, 0, 0), "off");
    cr_assert_str_eq(sf_db_get(res, 0, 1), "off");
    cr_assert_str_eq(sf_db_get(res, 0, 2), "off");
    cr_assert_str_eq(sf_db_get(res, 0, 3), "off");
    cr_assert_str_eq(sf_db_get(res, 0, 4), "force_generic_plan");
    sf_db_res_free(res);
    /* the temporary table is this session's own: make it here too */
    cr_assert_eq(sf_db_exec(ip,
                            "CREATE TEMP TABLE ip (id int PRIMARY KEY, v text);"
                            "INSERT INTO ip SELECT g, 'x' FROM generate_series(1, 20000) g; ANALYZE ip",
                            &err),
                 SF_OK, "%s", err.msg);
    char *indexed = plan_of(ip, sql, ids);
    cr_assert(strstr(indexed, "Index") != NULL && strstr(indexed, "Seq Scan") == NULL &&
                  strstr(indexed, "Hash") == NULL,
              "index_plans session:\n%s", indexed);
    /* the batch is the outer side: ip is probed once per id, not rescanned */
    cr_assert(strstr(indexed, "Nested Loop") != NULL, "%s", indexed);
    free(indexed);
    free(plain);
    sf_db_close(ip);
}
