/*
 * A Redis that closes the worker's connections (CLIENT KILL TYPE normal on
 * the farm's private redis-server, as a failover or an operator does) while
 * the worker runs jobs: the worker must neither die (hiredis writes with a
 * plain write(), and sf-worker ignores SIGPIPE through sf/daemon.h) nor lose
 * or repeat a job. It reconnects, keeps the leases of its running jobs, and
 * every job succeeds exactly once: one results row, attempt 1.
 *
 * The first kill happens at a known point: both runners are inside a job,
 * held there by the test's lock on bars (they block loading their data set),
 * and the test waits until the heartbeat has met the closed connection and
 * reconnected before it lets them go. The second kill comes in the middle of
 * the flow of the first half; the second half is submitted only after it, so
 * jobs remain to run after every kill however fast the machine is.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "../support/farm.h"

#define HALF 60

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(farm_redis_kill, .init = setup, .fini = teardown, .timeout = 180);

static char *states(void)
{
    return farm_text1("SELECT coalesce(string_agg(status || ' ' || n, ', '), 'none') FROM"
                      " (SELECT status, count(*) AS n FROM jobs WHERE $1 <> '' GROUP BY status) s",
                      "x");
}

static long long succeeded(void)
{
    return farm_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'");
}

static int reached(void *ctx)
{
    return succeeded() >= *(const long long *)ctx;
}

static void wait_succeeded(long long n, int64_t timeout_ms)
{
    FARM_ASSERT(sf_proc_wait_until(reached, &n, timeout_ms, 20), "only %lld of %lld jobs succeeded: %s", succeeded(), n,
                states());
}

/* CLIENT KILL TYPE normal: every ordinary client but the caller; the count. */
static long long kill_clients(void)
{
    const char *argv[] = {"CLIENT", "KILL", "TYPE", "normal"};
    char *n = farm_redis(4, argv);
    long long killed = strtoll(n, NULL, 10);
    free(n);
    return killed;
}

/* Every name of ctx (a NULL-terminated list) on a connection in CLIENT LIST:
 * the programs name their connections (CLIENT SETNAME), so a connection of
 * this test's own, or one still closing, is never counted for them. */
static int clients_named(void *ctx)
{
    const char *const *names = ctx;
    sf_redis *r = farm_redis_open();
    cr_assert(r != NULL, "private redis at %s is down", F.redis_url);
    const char *argv[] = {"CLIENT", "LIST"};
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_cmd(r, 2, argv, NULL, &rep, &err), SF_OK, "CLIENT LIST: %s", err.msg);
    const char *list = sf_redis_reply_str(rep, NULL);
    int all = list != NULL;
    for (size_t i = 0; all && names[i] != NULL; i++) {
        char field[96];
        snprintf(field, sizeof field, " name=%s ", names[i]);
        all = strstr(list, field) != NULL;
    }
    sf_redis_reply_free(rep);
    sf_redis_close(r);
    return all;
}

typedef struct log_wait {
    sf_proc *p;
    const char *needle;
} log_wait;

static int log_has(void *ctx)
{
    const log_wait *l = ctx;
    return sf_proc_log_contains(l->p, l->needle);
}

Test(farm_redis_kill, client_kill_while_jobs_run_leaves_the_worker_alive_and_every_job_done_once)
{
    farm_dataset("MED", "1m", 20000, 81);
    char *user = farm_user("kill");
    sf_proc *sched = farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 2, 3, NULL);

    sf_db *locker = sf_testenv_db_open(F.db_url);
    sf_testenv_exec(locker, "BEGIN; LOCK TABLE bars IN ACCESS EXCLUSIVE MODE");
    farm_jobs_bulk(user, FARM_LOGIC_HEAVY, "MED", "1m", HALF);
    FARM_ASSERT(farm_wait_sql("SELECT count(*) = 2 FROM jobs WHERE status = 'running' AND $1 <> ''", "x", 20000),
                "the two runners never held a job: %s", states());
    /* the worker's claimer, heartbeat and completer, and the scheduler */
    const char *names[] = {"sf-worker/claimer", "sf-worker/heartbeat", "sf-worker/completer", "sf-scheduler", NULL};
    FARM_ASSERT(sf_proc_wait_until(clients_named, names, 20000, 20),
                "never the worker's claimer, heartbeat and completer and the scheduler on Redis at once");
    long long killed = kill_clients();
    cr_log_info("first CLIENT KILL with 2 jobs running: %lld connections closed", killed);
    cr_assert_geq(killed, 4, "CLIENT KILL closed only %lld connections", killed);
    log_wait hb = {w1, "\"message\":\"redis reconnected\",\"thread\":\"heartbeat\""};
    FARM_ASSERT(sf_proc_wait_until(log_has, &hb, 20000, 50),
                "the heartbeat never met the closed connection and reconnected");
    FARM_ASSERT(sf_proc_alive(w1), "the worker died after its Redis connections were closed");
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status = 'running'"), 2, "%s", states());
    sf_testenv_exec(locker, "ROLLBACK");
    sf_db_close(locker);

    wait_succeeded(HALF / 2, 60000);
    killed = kill_clients();
    cr_log_info("second CLIENT KILL after %lld jobs: %lld connections closed", succeeded(), killed);
    farm_jobs_bulk(user, FARM_LOGIC_HEAVY, "MED", "1m", HALF);

    wait_succeeded(2 * HALF, 90000);
    FARM_ASSERT(sf_proc_alive(w1), "the worker died");
    FARM_ASSERT(sf_proc_alive(sched), "the scheduler died");
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs WHERE status <> 'succeeded'"), 0, "%s", states());
    cr_assert_eq(farm_int("SELECT count(*) FROM results"), 2 * HALF);
    cr_assert_eq(farm_int("SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM results r"
                          " WHERE r.job_id = j.id) <> 1"),
                 0);
    long long reruns = farm_int("SELECT count(*) FROM jobs WHERE attempt <> 1");
    cr_assert_eq(reruns, 0, "%lld jobs ran more than once", reruns);
    cr_assert(sf_proc_log_contains(w1, "\"message\":\"redis reconnected\",\"thread\":\"claimer\""),
              "the claimer never reconnected");

    /* and it still drains and stops cleanly */
    sf_proc_signal(w1, SIGTERM);
    FARM_ASSERT(sf_proc_wait_exit(w1, 15000), "w1 did not exit after SIGTERM");
    cr_assert_eq(sf_proc_exit_code(w1), 0);
    cr_assert(sf_proc_log_contains(w1, "\"message\":\"stopped\",\"exit_code\":0"));
    free(user);
}
