/* Integration tests of the migration runner against the local PostgreSQL:
 * each test has its own scratch database and its own migrations directory. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/testenv.h"
#include "sf/migrate.h"

static char *base_url;
static char scratch_name[64];
static char scratch_url[1024];
static char dir[256];
static sf_db *db;

static void setup(void)
{
    base_url = sf_testenv_require("DATABASE_URL");
    sf_testenv_scratch_create(base_url, scratch_name, sizeof scratch_name, scratch_url, sizeof scratch_url);
    sf_testenv_tmpdir(dir, sizeof dir);
    db = sf_testenv_db_open(scratch_url);
}

static void teardown(void)
{
    sf_db_close(db);
    db = NULL;
    sf_testenv_scratch_drop(base_url, scratch_name);
    sf_testenv_rmtree(dir);
    free(base_url);
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 60);

/* Events collected from the report callback. */
typedef struct events {
    int n;
    sf_migrate_state state[32];
    int version[32];
    char name[32][64];
    char applied_at[32][40];
} events;

static void collect(const sf_migrate_event *ev, void *ctx)
{
    events *e = ctx;
    if (e->n >= 32)
        return;
    e->state[e->n] = ev->state;
    e->version[e->n] = ev->version;
    snprintf(e->name[e->n], sizeof e->name[0], "%s", ev->name);
    snprintf(e->applied_at[e->n], sizeof e->applied_at[0], "%s", ev->applied_at ? ev->applied_at : "");
    e->n++;
}

static void write_mig(const char *stem, const char *up, const char *down)
{
    char name[128];
    snprintf(name, sizeof name, "%s.up.sql", stem);
    sf_testenv_write_file(dir, name, up);
    snprintf(name, sizeof name, "%s.down.sql", stem);
    sf_testenv_write_file(dir, name, down);
}

static void write_three(void)
{
    write_mig("0001_colors",
              "CREATE TYPE color AS ENUM ('red', 'green');\n"
              "CREATE TABLE paint (id serial PRIMARY KEY, c color NOT NULL DEFAULT 'red', note text);\n",
              "DROP TABLE paint;\nDROP TYPE color;\n");
    write_mig("0002_paint_index",
              "ALTER TABLE paint ADD COLUMN price numeric(10,2);\n"
              "CREATE INDEX paint_price ON paint (price);\n",
              "DROP INDEX paint_price;\nALTER TABLE paint DROP COLUMN price;\n");
    write_mig("0003_cans",
              "CREATE TABLE cans (id bigint PRIMARY KEY, paint_id int REFERENCES paint(id), "
              "size int CHECK (size > 0));\nCREATE UNIQUE INDEX cans_paint ON cans (paint_id, size);\n",
              "DROP TABLE cans;\n");
}

/* Everything about the user schema, one sorted text (schema_migrations excluded). */
static char *schema_snapshot(void)
{
    return sf_testenv_query_text(
        db, "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ("
            " SELECT format('col %s.%s %s %s %s %s', table_name, column_name, data_type, udt_name, is_nullable,"
            "  coalesce(column_default, '')) AS x FROM information_schema.columns"
            "  WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
            " UNION ALL SELECT format('idx %s', indexdef) FROM pg_indexes"
            "  WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            " UNION ALL SELECT format('type %s %s %s', t.typname, t.typtype,"
            "  (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid))"
            "  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            "  WHERE n.nspname = 'public' AND t.typname NOT LIKE '%schema_migrations'"
            " UNION ALL SELECT format('con %s %s', conname, pg_get_constraintdef(c.oid)) FROM pg_constraint c"
            "  JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'"
            "  AND conrelid <> coalesce(to_regclass('schema_migrations')::oid, 0)"
            " UNION ALL SELECT format('rel %s %s', relname, relkind) FROM pg_class c"
            "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            "  AND relname NOT LIKE 'schema_migrations%') s");
}

static void sha256_file_hex(const char *name, char hex[65])
{
    char path[512], data[65536];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    unsigned char md[32];
    unsigned int len = 0;
    cr_assert_eq(EVP_Digest(data, n, md, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static long long applied_count(void)
{
    return sf_testenv_query_int(db, "SELECT count(*) FROM schema_migrations");
}

Test(migrate, up_down_up_round_trip_leaves_the_same_schema)
{
    write_three();
    sf_err err = {0};
    char *empty = schema_snapshot();
    events ev = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, 3);
    cr_assert_str_eq(ev.name[0], "0001_colors");
    cr_assert_str_eq(ev.name[2], "0003_cans");
    cr_assert_eq(ev.state[2], SF_MIGRATE_APPLIED);
    char *full = schema_snapshot();
    cr_assert(strstr(full, "idx CREATE UNIQUE INDEX cans_paint") != NULL, "%s", full);
    cr_assert(strstr(full, "type color e red,green") != NULL, "%s", full);

    events down = {0};
    cr_assert_eq(sf_migrate_down(db, dir, 1, collect, &down, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(down.n, 1);
    cr_assert_eq(down.state[0], SF_MIGRATE_REVERTED);
    cr_assert_str_eq(down.name[0], "0003_cans");
    cr_assert_eq(applied_count(), 2);
    cr_assert_eq(sf_migrate_down(db, dir, 100, collect, &down, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(down.n, 3);
    cr_assert_str_eq(down.name[2], "0001_colors");
    cr_assert_eq(applied_count(), 0);
    char *again_empty = schema_snapshot();
    cr_assert_str_eq(again_empty, empty);

    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_OK, "%s", err.msg);
    char *again_full = schema_snapshot();
    cr_assert_str_eq(again_full, full);
    free(empty), free(full), free(again_empty), free(again_full);
}

Test(migrate, schema_migrations_records_version_name_and_sha256)
{
    write_three();
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 2, NULL, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(applied_count(), 2);
    char want[65];
    sha256_file_hex("0002_paint_index.up.sql", want);
    char *got = sf_testenv_query_text(db, "SELECT checksum FROM schema_migrations WHERE version = 2");
    cr_assert_str_eq(got, want);
    free(got);
    got = sf_testenv_query_text(db, "SELECT name FROM schema_migrations WHERE version = 1");
    cr_assert_str_eq(got, "0001_colors");
    free(got);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM schema_migrations"
                                          " WHERE applied_at > now() - interval '1 minute'"),
                 2);
    events ev = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, 1, "only 0003 is left to apply");
    cr_assert_eq(ev.version[0], 3);
}

Test(migrate, changed_applied_migration_is_refused_and_nothing_later_is_applied)
{
    write_three();
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 1, NULL, NULL, &err), SF_OK, "%s", err.msg);
    char before[65], after[65];
    sha256_file_hex("0001_colors.up.sql", before);
    sf_testenv_write_file(dir, "0001_colors.up.sql",
                          "CREATE TYPE color AS ENUM ('red', 'green', 'blue');\n"
                          "CREATE TABLE paint (id serial PRIMARY KEY, c color NOT NULL DEFAULT 'red', note text);\n");
    sha256_file_hex("0001_colors.up.sql", after);
    cr_assert_str_neq(before, after);

    events ev = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, collect, &ev, &err), SF_ERR_CONFLICT);
    cr_assert_eq(ev.n, 0);
    cr_assert(strstr(err.msg, "0001_colors.up.sql") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, before) != NULL, "message lacks the applied checksum: %s", err.msg);
    cr_assert(strstr(err.msg, after) != NULL, "message lacks the file checksum: %s", err.msg);
    cr_assert_eq(applied_count(), 1);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM information_schema.columns"
                                          " WHERE table_name = 'paint' AND column_name = 'price'"),
                 0);
    cr_assert_eq(sf_migrate_down(db, dir, 1, NULL, NULL, &err), SF_ERR_CONFLICT, "down is refused too");
    cr_assert_eq(applied_count(), 1);
}

Test(migrate, failed_migration_rolls_back_and_keeps_the_earlier_ones)
{
    write_mig("0001_a", "CREATE TABLE a (x int);\n", "DROP TABLE a;\n");
    write_mig("0002_b", "CREATE TABLE b (x int);\nINSERT INTO b VALUES (1);\nSELECT 1/0;\n", "DROP TABLE b;\n");
    write_mig("0003_c", "CREATE TABLE c (x int);\n", "DROP TABLE c;\n");
    sf_err err = {0};
    events ev = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, collect, &ev, &err), SF_ERR_DB);
    cr_assert(strstr(err.msg, "0002_b.up.sql") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "division by zero") != NULL, "%s", err.msg);
    cr_assert_eq(ev.n, 1);
    cr_assert_eq(applied_count(), 1);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('b', 'c')"), 0);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'"), 1);
}

/* ---- concurrency ---- */

typedef struct runner {
    pthread_barrier_t *start;
    sf_status st;
    sf_err err;
    events ev;
} runner;

static void *run_up(void *arg)
{
    runner *r = arg;
    sf_db *mine = sf_testenv_db_open(scratch_url);
    pthread_barrier_wait(r->start);
    r->st = sf_migrate_up(mine, dir, 0, collect, &r->ev, &r->err);
    sf_db_close(mine);
    return NULL;
}

Test(migrate, concurrent_runners_apply_each_migration_exactly_once)
{
    /* Inserts under a primary key: a second run of 0002 or 0003 would fail. */
    write_mig("0001_runs", "CREATE TABLE runs (v int PRIMARY KEY);\n", "DROP TABLE runs;\n");
    write_mig("0002_first", "SELECT pg_sleep(0.2);\nINSERT INTO runs VALUES (2);\n", "DELETE FROM runs WHERE v = 2;\n");
    write_mig("0003_second", "INSERT INTO runs VALUES (3);\nSELECT pg_sleep(0.1);\n",
              "DELETE FROM runs WHERE v = 3;\n");
    write_mig("0004_third", "INSERT INTO runs VALUES (4);\n", "DELETE FROM runs WHERE v = 4;\n");
    for (int round = 0; round < 2; round++) {
        enum { N = 3 };
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, N);
        runner r[N];
        pthread_t t[N];
        memset(r, 0, sizeof r);
        for (int i = 0; i < N; i++) {
            r[i].start = &start;
            cr_assert_eq(pthread_create(&t[i], NULL, run_up, &r[i]), 0);
        }
        int applied = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            cr_assert_eq(r[i].st, SF_OK, "runner %d: %s", i, r[i].err.msg);
            applied += r[i].ev.n;
        }
        pthread_barrier_destroy(&start);
        cr_assert_eq(applied, round == 0 ? 4 : 0, "round %d: %d applied events", round, applied);
        cr_assert_eq(applied_count(), 4);
        cr_assert_eq(sf_testenv_query_int(db, "SELECT sum(v) FROM runs"), 9);
    }
}

/* ---- status ---- */

Test(migrate, status_lists_applied_with_time_and_pending)
{
    write_three();
    sf_err err = {0};
    events ev = {0};
    cr_assert_eq(sf_migrate_status(db, dir, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, 3);
    cr_assert_eq(ev.state[0], SF_MIGRATE_PENDING);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"), 0,
                 "status creates nothing");

    cr_assert_eq(sf_migrate_up(db, dir, 2, NULL, NULL, &err), SF_OK, "%s", err.msg);
    char *now = sf_testenv_query_text(db, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')");
    memset(&ev, 0, sizeof ev);
    cr_assert_eq(sf_migrate_status(db, dir, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, 3);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ev.state[i], SF_MIGRATE_APPLIED);
        cr_assert_eq(strncmp(ev.applied_at[i], now, 10), 0, "%s", ev.applied_at[i]);
        cr_assert_eq(strlen(ev.applied_at[i]), 24, "%s", ev.applied_at[i]);
        cr_assert_eq(ev.applied_at[i][23], 'Z');
    }
    cr_assert_eq(ev.state[2], SF_MIGRATE_PENDING);
    cr_assert_str_eq(ev.name[2], "0003_cans");
    cr_assert_str_eq(ev.applied_at[2], "");
    free(now);
}

Test(migrate, missing_and_changed_files_are_reported)
{
    write_three();
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_OK, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/0003_cans.up.sql", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/0003_cans.down.sql", dir);
    remove(path);
    sf_testenv_write_file(dir, "0002_paint_index.up.sql", "SELECT 1;\n");
    events ev = {0};
    cr_assert_eq(sf_migrate_status(db, dir, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, 3);
    cr_assert_eq(ev.state[0], SF_MIGRATE_APPLIED);
    cr_assert_eq(ev.state[1], SF_MIGRATE_CHANGED);
    cr_assert_eq(ev.state[2], SF_MIGRATE_MISSING);
    cr_assert_str_eq(ev.name[2], "0003_cans");
    /* 0002 changed is found first; with 0002 restored, the missing 0003 is named. */
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_ERR_CONFLICT);
    cr_assert(strstr(err.msg, "0002_paint_index.up.sql") != NULL, "%s", err.msg);
    write_mig("0002_paint_index",
              "ALTER TABLE paint ADD COLUMN price numeric(10,2);\n"
              "CREATE INDEX paint_price ON paint (price);\n",
              "DROP INDEX paint_price;\nALTER TABLE paint DROP COLUMN price;\n");
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_ERR_CONFLICT);
    cr_assert(strstr(err.msg, "0003") != NULL && strstr(err.msg, "no file") != NULL, "%s", err.msg);
}

Test(migrate, a_pending_migration_older_than_the_newest_applied_is_refused)
{
    write_three();
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_OK, "%s", err.msg);
    sf_testenv_exec(db, "DELETE FROM schema_migrations WHERE version = 2");
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_ERR_CONFLICT);
    cr_assert(strstr(err.msg, "0002_paint_index is pending but the newer 0003 is already applied") != NULL, "%s",
              err.msg);
    cr_assert_eq(applied_count(), 2, "nothing applied");
    cr_assert_eq(sf_migrate_up(db, dir, 9, NULL, NULL, &err), SF_ERR_CONFLICT);
}

Test(migrate, an_up_target_beyond_the_files_is_not_found)
{
    write_three();
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(db, dir, 4, NULL, NULL, &err), SF_ERR_NOTFOUND);
    cr_assert(strstr(err.msg, "no migration 0004") != NULL, "%s", err.msg);
    cr_assert_eq(applied_count(), 0);
    cr_assert_eq(sf_migrate_up(db, dir, -1, NULL, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(sf_migrate_down(db, dir, 0, NULL, NULL, &err), SF_ERR_INVALID);
}

/* ---- directory validation ---- */

Test(migrate, bad_file_names_are_rejected)
{
    static const char *const bad[] = {
        "1_a.up.sql",      "00001_a.up.sql", "0001-a.up.sql",     "0001_A.up.sql",   "0001_a.sql",
        "0001_a.up.sql~",  "0000_a.up.sql",  "0001_.up.sql",      "0001_a b.up.sql", "0002_a.UP.sql",
        "0001_a.side.sql", "notes.sql",      "0002_x.up.sql.bak",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%zu", dir, i);
        cr_assert_eq(mkdir(sub, 0700), 0);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", sub, bad[i]);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fclose(f);
        sf_err err = {0};
        int count = -1;
        cr_assert_eq(sf_migrate_check_dir(sub, &count, &err), SF_ERR_INVALID, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, bad[i]) != NULL, "message does not name %s: %s", bad[i], err.msg);
    }
}

Test(migrate, gaps_duplicates_and_unpaired_files_are_rejected)
{
    sf_err err = {0};
    int count = 0;
    write_mig("0001_a", "SELECT 1;", "SELECT 1;");
    sf_testenv_write_file(dir, "README.md", "ignored");
    sf_testenv_write_file(dir, ".hidden.sql", "ignored");
    cr_assert_eq(sf_migrate_check_dir(dir, &count, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(count, 1);

    write_mig("0003_c", "SELECT 1;", "SELECT 1;");
    cr_assert_eq(sf_migrate_check_dir(dir, &count, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "version 0002 is missing") != NULL, "%s", err.msg);

    write_mig("0002_b", "SELECT 1;", "SELECT 1;");
    cr_assert_eq(sf_migrate_check_dir(dir, &count, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(count, 3);

    sf_testenv_write_file(dir, "0002_other.up.sql", "SELECT 1;");
    cr_assert_eq(sf_migrate_check_dir(dir, &count, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "version 0002 is used by both") != NULL, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/0002_other.up.sql", dir);
    remove(path);

    sf_testenv_write_file(dir, "0004_d.up.sql", "SELECT 1;");
    cr_assert_eq(sf_migrate_check_dir(dir, &count, &err), SF_ERR_INVALID);
    cr_assert(strstr(err.msg, "0004_d.up.sql: has no matching .down.sql") != NULL, "%s", err.msg);

    /* Nothing is applied from a bad directory. */
    cr_assert_eq(sf_migrate_up(db, dir, 0, NULL, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"), 0);
}

/* ---- the real migrations/ directory ---- */

Test(migrate, real_migrations_go_up_down_to_zero_and_up_again)
{
    const char *real = SF_SOURCE_DIR "/migrations";
    sf_err err = {0};
    int count = 0;
    cr_assert_eq(sf_migrate_check_dir(real, &count, &err), SF_OK, "%s", err.msg);
    cr_assert_geq(count, 1);
    char *empty = schema_snapshot();
    events ev = {0};
    cr_assert_eq(sf_migrate_up(db, real, 0, collect, &ev, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ev.n, count);
    char *full = schema_snapshot();
    cr_assert(strstr(full, "col users.email text text NO") != NULL, "%s", full);
    cr_assert(strstr(full, "col users.tier USER-DEFINED user_tier NO 'free'::user_tier") != NULL, "%s", full);
    cr_assert(strstr(full, "type user_tier e free,premium,enterprise") != NULL, "%s", full);

    sf_testenv_exec(db, "INSERT INTO users (email, name, password_hash) VALUES ('a@example.com', 'A', 'h')");
    char *row = sf_testenv_query_text(db, "SELECT tier || ' ' || (id IS NOT NULL) || ' ' || "
                                          "(created_at = updated_at) FROM users");
    cr_assert_str_eq(row, "free true true");
    free(row);
    cr_assert_eq(
        sf_db_exec(db, "INSERT INTO users (email, name, password_hash) VALUES ('a@example.com', 'B', 'h')", &err),
        SF_ERR_DB);
    cr_assert_str_eq(sf_db_sqlstate(db), SF_DB_SQLSTATE_UNIQUE);

    cr_assert_eq(sf_migrate_down(db, real, SF_MIGRATE_MAX, NULL, NULL, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(applied_count(), 0);
    char *again_empty = schema_snapshot();
    cr_assert_str_eq(again_empty, empty);
    cr_assert_eq(sf_migrate_up(db, real, 0, NULL, NULL, &err), SF_OK, "%s", err.msg);
    char *again_full = schema_snapshot();
    cr_assert_str_eq(again_full, full);
    free(empty), free(full), free(again_empty), free(again_full);
}

/* ---- the sf-migrate program ---- */

static int run_cli(const char *env, const char *args, char *out, size_t size)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -i PATH=/usr/bin:/bin %s %s/sf-migrate %s 2>&1", env, SF_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(migrate, cli_prints_plain_lines_and_exit_codes)
{
    write_three();
    char env[2048], out[8192];
    snprintf(env, sizeof env, "DATABASE_URL='%s' MIGRATIONS_DIR='%s'", scratch_url, dir);
    cr_assert_eq(run_cli(env, "up 1", out, sizeof out), 0, "%s", out);
    cr_assert(strncmp(out, "applied 0001_colors (", 21) == 0, "%s", out);
    cr_assert(strstr(out, " ms)\n") != NULL, "%s", out);
    cr_assert_eq(run_cli(env, "status", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "0001_colors") != NULL && strstr(out, " applied  20") != NULL, "%s", out);
    cr_assert(strstr(out, "0002_paint_index") != NULL && strstr(out, " pending\n") != NULL, "%s", out);
    cr_assert_eq(run_cli(env, "up", out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(strstr(out, "applied 0003") ? "ok" : out, "ok");
    cr_assert_eq(run_cli(env, "down 2", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "reverted 0003_cans (") != NULL && strstr(out, "reverted 0002_paint_index (") != NULL, "%s",
              out);

    sf_testenv_write_file(dir, "0001_colors.up.sql", "SELECT 'changed';\n");
    cr_assert_eq(run_cli(env, "up", out, sizeof out), 1, "%s", out);
    cr_assert(strncmp(out, "sf-migrate: ", 12) == 0 && strstr(out, "0001_colors.up.sql changed") != NULL, "%s", out);

    cr_assert_eq(run_cli("DB_CONNECT_ATTEMPTS=0 LOG_LEVEL=loud", "up", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "sf-migrate: DATABASE_URL: is required\n") != NULL, "%s", out);
    cr_assert(strstr(out, "sf-migrate: DB_CONNECT_ATTEMPTS: ") != NULL, "%s", out);
    cr_assert(strstr(out, "sf-migrate: LOG_LEVEL: ") != NULL, "%s", out);
    cr_assert_eq(run_cli(env, "sideways", out, sizeof out), 2, "%s", out);
    cr_assert_eq(run_cli("", "--help", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "DATABASE_URL") && strstr(out, "MIGRATIONS_DIR") && strstr(out, "LOG_LEVEL"), "%s", out);
}

Test(migrate, two_sf_migrate_processes_at_once_apply_each_migration_once)
{
    write_mig("0001_runs", "CREATE TABLE runs (v int PRIMARY KEY);\n", "DROP TABLE runs;\n");
    write_mig("0002_slow", "SELECT pg_sleep(0.3);\nINSERT INTO runs VALUES (2);\n", "DELETE FROM runs;\n");
    write_mig("0003_fast", "INSERT INTO runs VALUES (3);\n", "DELETE FROM runs WHERE v = 3;\n");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -i DATABASE_URL='%s' MIGRATIONS_DIR='%s' %s/sf-migrate up 2>&1", scratch_url, dir,
             SF_BINARY_DIR);
    FILE *a = popen(cmd, "r"), *b = popen(cmd, "r");
    cr_assert(a && b);
    char out_a[4096], out_b[4096];
    out_a[fread(out_a, 1, sizeof out_a - 1, a)] = '\0';
    out_b[fread(out_b, 1, sizeof out_b - 1, b)] = '\0';
    cr_assert_eq(pclose(a), 0, "%s", out_a);
    cr_assert_eq(pclose(b), 0, "%s", out_b);
    int applied = 0;
    for (const char *p = out_a; (p = strstr(p, "applied ")); p++)
        applied++;
    for (const char *p = out_b; (p = strstr(p, "applied ")); p++)
        applied++;
    cr_assert_eq(applied, 3, "%s---\n%s", out_a, out_b);
    cr_assert_eq(applied_count(), 3);
    cr_assert_eq(sf_testenv_query_int(db, "SELECT sum(v) FROM runs"), 5);
}
