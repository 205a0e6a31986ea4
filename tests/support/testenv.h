/*
 * testenv: helpers shared by the integration tests (header-only: CMake builds
 * each tests/<kind>/test_*.c as its own executable).
 *
 * The local stack's addresses come through sf_config_load with a one-variable
 * table, never getenv. A missing variable fails the test with a message that
 * says how to start the stack. Scratch databases (sf_t_<random>) let a test
 * change the schema freely; they are dropped WITH (FORCE) at the end.
 *
 * Thread safety: call from the test's main thread. Ownership: returned
 * strings are heap copies freed with free().
 */
#ifndef SF_TESTENV_H
#define SF_TESTENV_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "files.h"
#include "sf/buf.h"
#include "sf/config.h"
#include "sf/db.h"
#include "sf/migrate.h"

#define SF_TESTENV_HINT                                                                                                \
    "start the local stack first: SF_PG_DURABLE=0 scripts/stack up --services-only && eval \"$(scripts/stack env)\""

typedef struct sf_testenv_one {
    char *value;
} sf_testenv_one;

/* A variable's value through sf_config_load. required: unset or bad fails
 * the test with SF_TESTENV_HINT (the stack's addresses: DATABASE_URL,
 * REDIS_URL); otherwise unset gives "" (an option). Free with free(). */
static inline char *sf_testenv_var(const char *name, int required)
{
    const sf_config_var vars[] = {
        {name, SF_CFG_STRING, required ? NULL : "", 0, 0, NULL, required, offsetof(sf_testenv_one, value),
         required ? "test stack address" : "test option"},
    };
    sf_testenv_one one = {NULL};
    sf_buf errors;
    sf_buf_init(&errors, 4096);
    sf_status st = sf_config_load(vars, 1, &one, &errors);
    if (st != SF_OK) {
        cr_log_error("%s", sf_buf_str(&errors));
        sf_buf_destroy(&errors);
        sf_config_free(vars, 1, &one);
        cr_assert_fail("%s is not set or not valid: %s", name, required ? SF_TESTENV_HINT : "see the log above");
    }
    sf_buf_destroy(&errors);
    return one.value;
}

/* The value of a required variable; fails the test when it is unset or bad. */
static inline char *sf_testenv_require(const char *name)
{
    return sf_testenv_var(name, 1);
}

/* "<prefix><16 hex digits>", lower case (a valid unquoted SQL identifier). */
static inline void sf_testenv_random_name(const char *prefix, char *buf, size_t size)
{
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        cr_assert_fail("getrandom failed");
    snprintf(buf, size, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* The URL with its database name replaced: scheme://auth@host:port/<db>?query */
static inline void sf_testenv_url_with_db(const char *url, const char *db, char *buf, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    const char *path = strchr(auth, '/');
    const char *query = strchr(auth, '?');
    if (path == NULL || (query && query < path))
        path = query ? query : auth + strlen(auth);
    snprintf(buf, size, "%.*s/%s%s", (int)(path - url), url, db, query ? query : "");
}

static inline sf_db *sf_testenv_db_open(const char *url)
{
    sf_db *db = NULL;
    sf_err err = {0};
    sf_db_opts opts = {.connect_timeout_s = 5, .connect_attempts = 2};
    if (sf_db_open(url, &opts, &db, &err) != SF_OK)
        cr_assert_fail("%s (%s)", err.msg, SF_TESTENV_HINT);
    return db;
}

static inline void sf_testenv_exec(sf_db *db, const char *sql)
{
    sf_err err = {0};
    if (sf_db_exec(db, sql, &err) != SF_OK)
        cr_assert_fail("%s: %s", sql, err.msg);
}

/* Create sf_t_<random>, a copy of the database tpl when tpl is not NULL
 * (file by file: about 70 ms of the server's CPU a copy against 170 ms for
 * WAL_LOG, which writes every page of the copy to the WAL); fills its name
 * and URL. */
static inline void sf_testenv_scratch_create_from(const char *base_url, const char *tpl, char *name, size_t nsize,
                                                  char *url, size_t usize)
{
    char sql[160];
    sf_testenv_random_name("sf_t_", name, nsize);
    if (tpl != NULL)
        snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", name, tpl);
    else
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    sf_db *db = sf_testenv_db_open(base_url);
    sf_testenv_exec(db, sql);
    sf_db_close(db);
    sf_testenv_url_with_db(base_url, name, url, usize);
}

/* Create sf_t_<random>; fills its name and URL. */
static inline void sf_testenv_scratch_create(const char *base_url, char *name, size_t nsize, char *url, size_t usize)
{
    sf_testenv_scratch_create_from(base_url, NULL, name, nsize, url, usize);
}

static inline void sf_testenv_scratch_drop(const char *base_url, const char *name)
{
    char sql[128];
    if (name == NULL || name[0] == '\0')
        return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    sf_db *db = sf_testenv_db_open(base_url);
    sf_testenv_exec(db, sql);
    sf_db_close(db);
}

/*
 * Create sf_t_<random> with every migration applied and return its
 * connection; fills its name and URL as sf_testenv_scratch_create does.
 * scripts/test migrates one database, SF_TEST_TEMPLATE_DB, once per run, and
 * the scratch databases are copies of it (CREATE DATABASE ... TEMPLATE, file
 * by file): cheaper than running every migration in each of several hundred
 * of them. The migrations are applied afterwards all the same, so a copy of
 * a template that lacks the newest ones is brought up to date; without the
 * variable (a test run by hand) they all run here.
 */
static inline sf_db *sf_testenv_scratch_create_migrated(const char *base_url, char *name, size_t nsize, char *url,
                                                        size_t usize)
{
    char *tpl = sf_testenv_var("SF_TEST_TEMPLATE_DB", 0);
    const char *from = tpl != NULL && tpl[0] != '\0' ? tpl : NULL;
    if (from != NULL)
        cr_assert(strspn(from, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(from) && strlen(from) < 64,
                  "SF_TEST_TEMPLATE_DB \"%s\" is not a plain database name", from);
    sf_testenv_scratch_create_from(base_url, from, name, nsize, url, usize);
    free(tpl);
    sf_db *db = sf_testenv_db_open(url);
    sf_err err = {0};
    if (sf_migrate_up(db, SF_SOURCE_DIR "/migrations", 0, NULL, NULL, &err) != SF_OK)
        cr_assert_fail("migrations: %s", err.msg);
    return db;
}

/* A scratch database on DATABASE_URL's server with every migration applied:
 * base_url, name and url are filled as sf_testenv_scratch_create's; returns
 * its connection. Drop it with sf_testenv_scratch_drop(base_url, name). */
static inline sf_db *sf_testenv_scratch_migrated(char *base_url, size_t bsize, char *name, size_t nsize, char *url,
                                                 size_t usize)
{
    char *base = sf_testenv_require("DATABASE_URL");
    snprintf(base_url, bsize, "%s", base);
    free(base);
    return sf_testenv_scratch_create_migrated(base_url, name, nsize, url, usize);
}

/* One text value from a query with no parameters; "" for NULL. Free with free(). */
static inline char *sf_testenv_query_text(sf_db *db, const char *sql)
{
    sf_db_res *res = NULL;
    sf_err err = {0};
    if (sf_db_query(db, sql, 0, NULL, &res, &err) != SF_OK)
        cr_assert_fail("%s: %s", sql, err.msg);
    if (sf_db_nrows(res) != 1)
        cr_assert_fail("%s: %d rows, want 1", sql, sf_db_nrows(res));
    const char *v = sf_db_get(res, 0, 0);
    char *copy = strdup(v ? v : "");
    sf_db_res_free(res);
    return copy;
}

static inline long long sf_testenv_query_int(sf_db *db, const char *sql)
{
    char *s = sf_testenv_query_text(db, sql);
    long long v = strtoll(s, NULL, 10);
    free(s);
    return v;
}

#endif
