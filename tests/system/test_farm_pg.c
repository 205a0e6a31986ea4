/*
 * A PostgreSQL restart while the farm works (docs/architecture.md, invariants
 * 1, 3, 4): the test runs its own PostgreSQL (initdb as the postgres user into
 * the test's temp directory, postgres on a free port; the shared stack's
 * server is never touched) and its own Redis, starts sf-scheduler and two
 * sf-workers, and restarts PostgreSQL (fast shutdown, start again on the same
 * port) in the middle of 300 jobs. Every program must reconnect and every job
 * finish exactly once (one results row each, succeeded; an outage spends no
 * attempt).
 *
 * The fault lands at a known point of the work, whatever the machine's speed:
 * the first half of the jobs runs until a third of it is done; then both
 * workers are frozen (SIGSTOP) with what they hold, the second half is
 * submitted and relayed into Redis, PostgreSQL stops, and only then do the
 * workers resume, into the outage. At the fault at least half of the jobs are
 * queued and not done by construction; the workers' frozen time (the second
 * half's insert and relay, the fast shutdown) stays far inside the lease.
 */
#include <criterion/criterion.h>

#include <pwd.h>
#include <signal.h>
#include <string.h>

#include "../support/farm.h"

#define JOBS 300
#define HALF (JOBS / 2)
#define LEASE_S 15 /* the workers are frozen for about a second; their leases must hold */
#define PGBIN "/usr/lib/postgresql/15/bin"

static int g_pg_port;
static char g_pg_data[256];
static sf_proc *g_pg;

static void setup(void)
{
    farm_setup();
}

/* The programs first, then PostgreSQL with a fast shutdown (SIGINT). */
static void teardown(void)
{
    for (int i = sf_proc_reg_.n - 1; i >= 0; i--)
        if (strcmp(sf_proc_reg_.procs[i].name, "postgres") != 0)
            sf_proc_stop(&sf_proc_reg_.procs[i], SIGTERM, 5000);
    for (int i = sf_proc_reg_.n - 1; i >= 0; i--)
        sf_proc_stop(&sf_proc_reg_.procs[i], SIGINT, 10000);
    farm_teardown();
}

TestSuite(farm_pg, .init = setup, .fini = teardown, .timeout = 180);

static void postgres_user(uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    cr_assert(getpwnam_r("postgres", &pw, buf, sizeof buf, &res) == 0 && res, "no postgres user");
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
}

static int pg_up(void *ctx)
{
    (void)ctx;
    char url[128];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres", g_pg_port);
    sf_db *db = NULL;
    sf_err err = {0};
    sf_db_opts o = {.connect_timeout_s = 2, .connect_attempts = 1};
    if (sf_db_open(url, &o, &db, &err) != SF_OK)
        return 0;
    sf_db_close(db);
    return 1;
}

static void pg_start(void)
{
    uid_t uid;
    gid_t gid;
    postgres_user(&uid, &gid);
    char port[16];
    snprintf(port, sizeof port, "%d", g_pg_port);
    const char *argv[] = {"postgres",
                          "-D",
                          g_pg_data,
                          "-p",
                          port,
                          "-c",
                          "listen_addresses=127.0.0.1",
                          "-c",
                          "unix_socket_directories=",
                          "-c",
                          "fsync=off",
                          "-c",
                          "synchronous_commit=off",
                          "-c",
                          "full_page_writes=off",
                          "-c",
                          "max_connections=100",
                          NULL};
    g_pg = sf_proc_start_as("postgres", PGBIN "/postgres", argv, NULL, F.dir, uid, gid);
    cr_assert(sf_proc_wait_until(pg_up, NULL, 30000, 50), "private postgres did not start (see %s)", g_pg->log);
}

/* initdb, start, create the farm database, apply migrations; repoint F.db. */
static void pg_private(void)
{
    uid_t uid;
    gid_t gid;
    postgres_user(&uid, &gid);
    snprintf(g_pg_data, sizeof g_pg_data, "%s/pgdata", F.dir);
    const char *argv[] = {"initdb", "-D",   g_pg_data,          "-U",        "postgres", "-A", "trust",
                          "-E",     "UTF8", "--locale=C.UTF-8", "--no-sync", NULL};
    sf_proc *init = sf_proc_start_as("initdb", PGBIN "/initdb", argv, NULL, F.dir, uid, gid);
    cr_assert(sf_proc_wait_exit(init, 60000) && sf_proc_exit_code(init) == 0, "initdb failed (see %s)", init->log);
    g_pg_port = sf_proc_free_port();
    pg_start();
    char url[128];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres", g_pg_port);
    sf_db *db = sf_testenv_db_open(url);
    sf_testenv_exec(db, "CREATE DATABASE farm");
    sf_db_close(db);
    sf_db_close(F.db);
    snprintf(F.db_url, sizeof F.db_url, "postgresql://postgres@127.0.0.1:%d/farm", g_pg_port);
    F.db = sf_testenv_db_open(F.db_url);
    sf_err err = {0};
    cr_assert_eq(sf_migrate_up(F.db, SF_SOURCE_DIR "/migrations", 0, NULL, NULL, &err), SF_OK, "%s", err.msg);
}

static long long done_count(void)
{
    return farm_int("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled')");
}

static int reached(void *ctx)
{
    if (!sf_db_is_ok(F.db)) {
        sf_err err = {0};
        if (sf_db_reset(F.db, &err) != SF_OK)
            return 0;
    }
    return done_count() >= *(const long long *)ctx;
}

Test(farm_pg, a_postgresql_restart_mid_run_loses_no_job_and_spends_no_attempt)
{
    pg_private();
    farm_dataset("MED", "1m", 5000, 71);
    char *user = farm_user("pg");
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 2, LEASE_S, NULL);
    sf_proc *w2 = farm_worker("w2", 2, LEASE_S, NULL);
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "MED", "1m", HALF);
    long long third = HALF / 3;
    FARM_ASSERT(sf_proc_wait_until(reached, &third, 60000, 20), "only %lld jobs done", done_count());

    /* Hold the rest of the work back until the fault. */
    sf_proc_signal(w1, SIGSTOP);
    sf_proc_signal(w2, SIGSTOP);
    int64_t frozen = sf_proc_now_ms();
    farm_jobs_bulk(user, FARM_LOGIC_SMA, "MED", "1m", HALF);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 0 FROM jobs WHERE status = 'pending' AND $1 <> ''", "x", 30000),
                "the second half was not relayed into Redis");
    long long before = done_count();
    long long held = farm_int("SELECT count(*) FROM jobs WHERE status = 'running'");
    cr_assert_leq(before, JOBS - HALF, "jobs of the second half finished while every worker was frozen");

    int64_t t0 = sf_proc_now_ms();
    sf_db_close(F.db);
    F.db = NULL;
    cr_assert(sf_proc_stop(g_pg, SIGINT, 20000), "postgres did not stop on SIGINT (fast shutdown)");
    sf_proc_signal(w1, SIGCONT);
    sf_proc_signal(w2, SIGCONT);
    cr_log_info("workers frozen %lld ms; postgres down with %lld of %d jobs done, %lld running",
                (long long)(sf_proc_now_ms() - frozen), before, JOBS, held);
    sf_proc_sleep_ms(2000); /* two seconds without a database, the workers running into it */
    pg_start();
    cr_log_info("postgres restarted in %lld ms", (long long)(sf_proc_now_ms() - t0));
    F.db = sf_testenv_db_open(F.db_url);

    long long all = JOBS;
    FARM_ASSERT(sf_proc_wait_until(reached, &all, 90000, 50), "only %lld of %d jobs done after the restart",
                done_count(), JOBS);
    cr_log_info("all done %lld ms after the restart", (long long)(sf_proc_now_ms() - t0));
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'"), JOBS);
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), JOBS);
    long long reruns = farm_int("SELECT count(*) FROM jobs WHERE attempt <> 1");
    char *att = farm_text1("SELECT coalesce(string_agg(attempt || ':' || n, ','), '') FROM (SELECT attempt, count(*) n"
                           " FROM jobs WHERE $1 <> '' GROUP BY attempt ORDER BY attempt) a",
                           "x");
    cr_log_info("attempts: %s", att);
    if (reruns != 0) {
        char *why = farm_text1("SELECT string_agg(DISTINCT coalesce(error_class, '-') || ': ' || coalesce(error, '-'),"
                               " '; ') FROM jobs WHERE attempt <> 1 AND $1 <> ''",
                               "x");
        sf_proc_dump_logs(3000);
        cr_assert_fail("the outage spent attempts: %s (errors seen: %s)", att, why);
    }
    /* The programs are still alive and reconnected. */
    for (int i = 0; i < sf_proc_reg_.n; i++) {
        const char *name = sf_proc_reg_.procs[i].name;
        if (strcmp(name, "sched") == 0 || name[0] == 'w')
            cr_assert(sf_proc_alive(&sf_proc_reg_.procs[i]), "%s exited", name);
    }
    free(att);
    free(user);
}
