/* Integration tests of sf-scheduler: real processes (fork/exec of the built
 * binary) against the local PostgreSQL and Redis. Each test has its own
 * scratch database and its own queue name (Redis keys sf:{<queue>}:...), so
 * tests and other engineers never see each other's data. Leases are short
 * (LEADER_TTL_SECONDS=2) to keep the tests fast. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/proc.h"
#include "../support/testenv.h"
#include "sf/migrate.h"
#include "sf/queue.h"
#include "sf/redis.h"
#include "sf/time.h"

#define MAX_PROCS 3
#define TTL_S 2

typedef struct proc {
    pid_t pid;
    char name[16];
    char log[300];
} proc;

static char *base_url, *redis_url;
static char scratch_name[64], scratch_url[1024], queue_name[64], dir[256];
static char user_a[40], user_b[40];
static sf_db *db;
static sf_redis *redis;
static sf_queue *queue;
static proc procs[MAX_PROCS];

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void exec_sql(const char *sql)
{
    sf_testenv_exec(db, sql);
}

static long long qint(const char *sql)
{
    return sf_testenv_query_int(db, sql);
}

static char *qtext(const char *sql)
{
    return sf_testenv_query_text(db, sql);
}

/* Poll sql until it returns want, at most timeout_ms; returns the last value. */
static long long wait_int(const char *sql, long long want, int timeout_ms)
{
    int64_t end = sf_time_mono_ms() + timeout_ms;
    long long v = qint(sql);
    while (v != want && sf_time_mono_ms() < end) {
        sleep_ms(50);
        v = qint(sql);
    }
    return v;
}

static void setup(void)
{
    base_url = sf_testenv_require("DATABASE_URL");
    redis_url = sf_testenv_require("REDIS_URL");
    db = sf_testenv_scratch_create_migrated(base_url, scratch_name, sizeof scratch_name, scratch_url,
                                            sizeof scratch_url);
    sf_testenv_tmpdir(dir, sizeof dir);
    sf_err err = {0};
    sf_testenv_random_name("schedtest_", queue_name, sizeof queue_name);
    cr_assert_eq(sf_redis_open(redis_url, NULL, &redis, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_new(queue_name, redis, &queue, &err), SF_OK, "%s", err.msg);
    exec_sql("INSERT INTO users (email, name, password_hash) VALUES "
             "('a@example.com', 'A', 'h'), ('b@example.com', 'B', 'h')");
    char *a = qtext("SELECT id FROM users WHERE email = 'a@example.com'");
    char *b = qtext("SELECT id FROM users WHERE email = 'b@example.com'");
    snprintf(user_a, sizeof user_a, "%s", a);
    snprintf(user_b, sizeof user_b, "%s", b);
    free(a);
    free(b);
    memset(procs, 0, sizeof procs);
}

static void teardown(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].pid > 0) {
            kill(procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
        }
    }
    if (queue != NULL)
        sf_queue_purge(queue, NULL);
    sf_queue_free(queue);
    sf_redis_close(redis);
    sf_db_close(db);
    sf_testenv_scratch_drop(base_url, scratch_name);
    sf_testenv_rmtree(dir);
    free(base_url);
    free(redis_url);
}

TestSuite(scheduler, .init = setup, .fini = teardown, .timeout = 90);

/* Start sf-scheduler named name with the test's environment plus extra
 * ("NAME=value" strings, NULL-terminated; they replace the defaults). */
static proc *spawn(int slot, const char *name, const char *const *extra)
{
    proc *p = &procs[slot];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", dir, name);
    char env[24][1200];
    char *envp[25];
    int n = 0;
    snprintf(env[n++], sizeof env[0], "DATABASE_URL=%s", scratch_url);
    snprintf(env[n++], sizeof env[0], "REDIS_URL=%s", redis_url);
    snprintf(env[n++], sizeof env[0], "QUEUE=%s", queue_name);
    snprintf(env[n++], sizeof env[0], "SCHEDULER_NAME=%s", name);
    snprintf(env[n++], sizeof env[0], "LEADER_TTL_SECONDS=%d", TTL_S);
    snprintf(env[n++], sizeof env[0], "REAPER_INTERVAL_MS=200");
    snprintf(env[n++], sizeof env[0], "RETENTION_INTERVAL_SECONDS=1");
    snprintf(env[n++], sizeof env[0], "RETRY_BASE_MS=100");
    snprintf(env[n++], sizeof env[0], "LOG_LEVEL=info");
    for (int i = 0; extra && extra[i] && n < 24; i++) {
        size_t klen = strcspn(extra[i], "=") + 1;
        int slot_i = n;
        for (int j = 0; j < n; j++)
            if (strncmp(env[j], extra[i], klen) == 0)
                slot_i = j; /* replaces the default */
        snprintf(env[slot_i], sizeof env[0], "%s", extra[i]);
        if (slot_i == n)
            n++;
    }
    for (int i = 0; i < n; i++)
        envp[i] = env[i];
    envp[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char arg0[] = "sf-scheduler";
        char *argv[] = {arg0, NULL};
        execve(SF_BINARY_DIR "/sf-scheduler", argv, envp);
        _exit(127);
    }
    p->pid = pid;
    return p;
}

/* Whole log file (at most 1 MiB) into a heap string. */
static char *read_log(const proc *p)
{
    FILE *f = fopen(p->log, "rb");
    char *buf = calloc(1, 1 << 20);
    cr_assert_not_null(buf);
    if (f != NULL) {
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

static int count_in_log(const proc *p, const char *needle)
{
    char *text = read_log(p);
    int n = 0;
    for (const char *s = text; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    free(text);
    return n;
}

/* Exit status of p within timeout_ms, or -1 if it is still running. */
static int wait_exit(proc *p, int timeout_ms)
{
    int64_t end = sf_time_mono_ms() + timeout_ms;
    do {
        int status = 0;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(20);
    } while (sf_time_mono_ms() < end);
    return -1;
}

/* The current lease holder's name ("A", "B") or "" when nobody holds it. */
static void current_leader(char *buf, size_t size)
{
    char *h = qtext("SELECT COALESCE((SELECT split_part(holder, '/', 1) FROM scheduler_leader "
                    "WHERE id = 1 AND expires_at > now()), '')");
    snprintf(buf, size, "%s", h);
    free(h);
}

static int wait_leader(char *buf, size_t size, const char *not_this, int timeout_ms)
{
    int64_t end = sf_time_mono_ms() + timeout_ms;
    for (;;) {
        current_leader(buf, size);
        if (buf[0] != '\0' && strcmp(buf, not_this) != 0)
            return 1;
        if (sf_time_mono_ms() >= end)
            return 0;
        sleep_ms(20);
    }
}

static proc *by_name(const char *name)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid > 0 && strcmp(procs[i].name, name) == 0)
            return &procs[i];
    cr_assert_fail("no running process named %s", name);
    return NULL;
}

/* ---- leader election -------------------------------------------------- */

static void add_pending(const char *user, int count, const char *run_at_sql);

Test(scheduler, exactly_one_of_two_replicas_leads_and_a_survivor_takes_over_after_sigkill)
{
    spawn(0, "A", NULL);
    spawn(1, "B", NULL);
    char leader[32], next[32];
    cr_assert(wait_leader(leader, sizeof leader, "", 5000), "no leader within 5 s");
    /* for three lease lengths, the same single holder; one "became leader" line in all */
    for (int i = 0; i < 3 * TTL_S * 10; i++) {
        current_leader(next, sizeof next);
        cr_assert_str_eq(next, leader, "leadership moved without a failure");
        sleep_ms(100);
    }
    cr_assert_eq(count_in_log(&procs[0], "\"became leader\"") + count_in_log(&procs[1], "\"became leader\""), 1);
    long long term = qint("SELECT term FROM scheduler_leader");
    proc *old = by_name(leader);
    int64_t killed = sf_time_mono_ms();
    kill(old->pid, SIGKILL);
    wait_exit(old, 2000);
    cr_assert(wait_leader(next, sizeof next, leader, (TTL_S + 2) * 1000), "no takeover");
    int64_t took = sf_time_mono_ms() - killed;
    cr_assert_leq(took, TTL_S * 1000 + 1000, "takeover took %lld ms", (long long)took);
    cr_assert_eq(qint("SELECT term FROM scheduler_leader"), term + 1);
    proc *survivor = by_name(next);
    cr_assert_eq(count_in_log(survivor, "\"became leader\""), 1);
    cr_log_info("takeover after SIGKILL: %lld ms (ttl %d s)", (long long)took, TTL_S);
}

/* A leader frozen past its lease (a stalled process) must not act when it
 * wakes: its deadline passed, the other replica leads, it becomes a follower. */
Test(scheduler, a_stalled_leader_fences_itself_and_becomes_a_follower)
{
    spawn(0, "A", NULL);
    spawn(1, "B", NULL);
    char leader[32], next[32];
    cr_assert(wait_leader(leader, sizeof leader, "", 5000));
    proc *old = by_name(leader);
    kill(old->pid, SIGSTOP);
    cr_assert(wait_leader(next, sizeof next, leader, (TTL_S + 2) * 1000), "no takeover");
    long long term = qint("SELECT term FROM scheduler_leader");
    /* while the old leader is frozen, work arrives for the new one */
    add_pending(user_a, 5, "now()");
    kill(old->pid, SIGCONT);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 5, 10000), 5);
    int64_t end = sf_time_mono_ms() + 3000;
    while (count_in_log(old, "\"lost leadership\"") == 0 && sf_time_mono_ms() < end)
        sleep_ms(50);
    cr_assert_eq(count_in_log(old, "\"lost leadership\""), 1);
    sleep_ms(TTL_S * 1000); /* a whole lease later: still the new leader, same term */
    current_leader(leader, sizeof leader);
    cr_assert_str_eq(leader, next);
    cr_assert_eq(qint("SELECT term FROM scheduler_leader"), term);
    cr_assert_eq(count_in_log(old, "\"became leader\""), 1);
}

Test(scheduler, sigterm_makes_the_leader_hand_over_at_once_and_exit_0)
{
    const char *env[] = {"LEADER_TTL_SECONDS=10", NULL};
    spawn(0, "A", env);
    spawn(1, "B", env);
    char leader[32], next[32];
    cr_assert(wait_leader(leader, sizeof leader, "", 5000));
    sleep_ms(300); /* the follower has read the lease and is waiting */
    proc *old = by_name(leader);
    int64_t t0 = sf_time_mono_ms();
    kill(old->pid, SIGTERM);
    cr_assert_eq(wait_exit(old, 5000), 0, "the leader did not exit 0 on SIGTERM");
    cr_assert(wait_leader(next, sizeof next, leader, 5000), "no takeover");
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert_lt(took, 3000, "handover took %lld ms with a 10 s lease", (long long)took);
    cr_assert_eq(count_in_log(old, "\"released leadership\""), 1);
}

Test(scheduler, bad_environment_exits_2_with_one_line_per_variable)
{
    const char *env[] = {"LEADER_TTL_SECONDS=abc", "RELAY_MAX_READY=0", NULL};
    proc *p = spawn(0, "A", env);
    cr_assert_eq(wait_exit(p, 5000), 2);
    char *text = read_log(p);
    cr_assert(strstr(text, "sf-scheduler: LEADER_TTL_SECONDS:") != NULL, "%s", text);
    cr_assert(strstr(text, "sf-scheduler: RELAY_MAX_READY:") != NULL, "%s", text);
    free(text);
}

/* ---- cron ------------------------------------------------------------- */

static void add_schedule(const char *name, const char *cron, const char *catch_up, const char *next_fire_sql)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO schedules (user_id, name, cron, logic, symbol, timeframe, catch_up, "
             "next_fire) VALUES ('%s', '%s', '%s', '{\"name\": \"x\"}', 'BTCUSD', '1d', '%s', %s)",
             user_a, name, cron, catch_up, next_fire_sql);
    exec_sql(sql);
}

/* Schedules whose firings are not exactly the minutes from their first
 * next_fire (kept in name as an epoch) up to now, each with one job. */
static const char bad_firings_sql[] =
    "SELECT count(*) FROM schedules s WHERE s.name LIKE 'm%' AND ("
    "  (SELECT count(*) FROM schedule_firings f WHERE f.schedule_id = s.id) <> "
    "  (SELECT count(*) FROM generate_series(to_timestamp(substr(s.name, 2)::bigint), "
    "     now() - interval '1.5 s', interval '1 minute')) "
    "  OR EXISTS (SELECT 1 FROM schedule_firings f WHERE f.schedule_id = s.id AND "
    "     (f.job_id IS NULL OR extract(second FROM f.fire_time) <> 0)) "
    "  OR (SELECT count(*) FROM jobs j WHERE j.schedule_id = s.id AND j.kind = 'logic_execution') "
    "     <> (SELECT count(*) FROM schedule_firings f WHERE f.schedule_id = s.id))";

static void add_minute_schedules(int first, int count)
{
    for (int i = first; i < first + count; i++) {
        long long start = qint("SELECT extract(epoch FROM date_trunc('minute', now()) - "
                               "interval '3 minutes')::bigint");
        char name[64], next[96];
        snprintf(name, sizeof name, "m%lld", start);
        snprintf(next, sizeof next, "to_timestamp(%lld)", start);
        add_schedule(name, "* * * * *", "all", next);
        (void)i;
    }
}

Test(scheduler, cron_firings_are_neither_lost_nor_doubled_across_a_leader_handover)
{
    spawn(0, "A", NULL);
    spawn(1, "B", NULL);
    char leader[32], next[32];
    cr_assert(wait_leader(leader, sizeof leader, "", 5000));
    add_minute_schedules(0, 4);
    cr_assert_eq(wait_int(bad_firings_sql, 0, 10000), 0, "first leader's firings");
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings"), qint("SELECT count(*) FROM jobs"));
    long long before = qint("SELECT count(*) FROM schedule_firings");
    cr_assert_geq(before, 16); /* 4 schedules x (3 missed minutes + this one) */

    kill(by_name(leader)->pid, SIGKILL);
    add_minute_schedules(4, 4); /* due while nobody leads */
    cr_assert(wait_leader(next, sizeof next, leader, (TTL_S + 2) * 1000));
    cr_assert_eq(wait_int(bad_firings_sql, 0, 10000), 0, "after the handover");
    cr_assert_eq(wait_int("SELECT count(*) FROM schedules WHERE name LIKE 'm%' AND next_fire <= now()", 0, 10000), 0);
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings"), qint("SELECT count(*) FROM jobs"));
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status NOT IN ('pending', 'queued')"), 0);
}

Test(scheduler, cron_catch_up_policies_none_latest_all)
{
    long long year = qint("SELECT extract(year FROM now())::bigint");
    char jan[96];
    snprintf(jan, sizeof jan, "'%lld-01-01T00:00:00Z'::timestamptz", year - 3);
    add_schedule("all", "0 0 1 1 *", "all", jan);
    add_schedule("latest", "0 0 1 1 *", "latest", jan);
    add_schedule("none", "0 0 1 1 *", "none", jan);
    add_schedule("none-on-time", "*/5 * * * *", "none", "now() - interval '2 seconds'");
    add_schedule("unset", "0 0 1 1 *", "all", "NULL");
    add_schedule("broken", "0 25 * * *", "all", "now()");
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM schedules WHERE enabled AND "
                          "(next_fire IS NULL OR next_fire <= now())",
                          0, 5000),
                 0);
    cr_assert_eq(wait_int("SELECT count(*) FROM schedules WHERE NOT enabled", 1, 10000), 1);
    cr_assert_eq(qint("SELECT count(*) FROM schedules WHERE name = 'broken' AND disabled_at IS NOT NULL AND "
                      "disabled_reason LIKE 'invalid cron expression: %'"),
                 1, "the reason is kept");
    /* all: Jan 1 of each of the last three years and of this one */
    char *fired = qtext("SELECT string_agg(s.name || '@' || f.fire_time::text, ', ' ORDER BY "
                        "s.name, f.fire_time) FROM schedule_firings f JOIN schedules s "
                        "ON s.id = f.schedule_id");
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings f JOIN schedules s ON s.id = "
                      "f.schedule_id WHERE s.name = 'all'"),
                 4, "%s", fired);
    free(fired);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT extract(year FROM fire_time)::bigint FROM schedule_firings f JOIN schedules s "
             "ON s.id = f.schedule_id WHERE s.name = 'latest'");
    cr_assert_eq(qint(sql), year, "latest fires only this year's");
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings f JOIN schedules s ON s.id = "
                      "f.schedule_id WHERE s.name = 'none'"),
                 0);
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings f JOIN schedules s ON s.id = "
                      "f.schedule_id WHERE s.name = 'none-on-time'"),
                 1);
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings f JOIN schedules s ON s.id = "
                      "f.schedule_id WHERE s.name IN ('unset', 'broken')"),
                 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM schedules WHERE name IN ('all', 'latest', 'none', 'unset') "
             "AND next_fire = '%lld-01-01T00:00:00Z'",
             year + 1);
    cr_assert_eq(qint(sql), 4, "next_fire is next year's Jan 1");
    /* each firing's job carries the schedule's logic */
    cr_assert_eq(qint("SELECT count(*) FROM jobs j JOIN schedule_firings f ON f.job_id = j.id "
                      "WHERE j.kind = 'logic_execution' AND j.logic = '{\"name\": \"x\"}' "
                      "AND j.symbol = 'BTCUSD'"),
                 6);
}

/* ---- relay, rebuild --------------------------------------------------- */

static void add_pending(const char *user, int count, const char *run_at_sql)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (user_id, logic, symbol, timeframe, run_at) "
             "SELECT '%s', '{}', 'BTCUSD', '1d', %s FROM generate_series(1, %d)",
             user, run_at_sql, count);
    exec_sql(sql);
}

static long long ready_total(void)
{
    sf_queue_depth depth;
    sf_err err = {0};
    cr_assert_eq(sf_queue_get_depth(queue, &depth, &err), SF_OK, "%s", err.msg);
    return depth.ready_total;
}

static long long wait_ready(long long want, int timeout_ms)
{
    int64_t end = sf_time_mono_ms() + timeout_ms;
    long long v = ready_total();
    while (v != want && sf_time_mono_ms() < end) {
        sleep_ms(50);
        v = ready_total();
    }
    return v;
}

/* 1 when the ids ready for user (the range [user NUL, user \1) of the ready
 * set, members user NUL <16-digit score> <id>; see sf/queue.h) are exactly
 * the user's queued jobs. */
static int ready_matches_queued(const char *user)
{
    char key[256], sql[256], lo[128], hi[128];
    snprintf(key, sizeof key, "%sready", sf_queue_prefix(queue));
    size_t ulen = strlen(user);
    snprintf(lo, sizeof lo, "[%s", user); /* the NUL that ends it is part of the bound */
    snprintf(hi, sizeof hi, "(%s\x01", user);
    const char *argv[] = {"ZRANGEBYLEX", key, lo, hi};
    const size_t lens[] = {11, strlen(key), ulen + 2, ulen + 2};
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_cmd(redis, 4, argv, lens, &rep, &err), SF_OK, "%s", err.msg);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE user_id = '%s' AND status = 'queued'", user);
    int ok = (long long)sf_redis_reply_len(rep) == qint(sql);
    for (size_t i = 0; ok && i < sf_redis_reply_len(rep); i++) {
        const char *member = sf_redis_reply_str(sf_redis_reply_at(rep, i), NULL);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'queued'",
                 member + ulen + 1 + 16);
        ok = qint(sql) == 1;
    }
    sf_redis_reply_free(rep);
    return ok;
}

Test(scheduler, relay_moves_due_pending_jobs_to_redis_and_promotes_delayed_ones)
{
    add_pending(user_a, 20, "now()");
    add_pending(user_b, 5, "now()");
    add_pending(user_b, 1, "now() + interval '1 hour'"); /* a retry waiting out its backoff */
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 25, 10000), 25);
    cr_assert_eq(wait_ready(25, 10000), 25);
    cr_assert(ready_matches_queued(user_a));
    cr_assert(ready_matches_queued(user_b));
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status = 'pending'"), 1);
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status = 'queued' AND queued_at IS NULL"), 0);
    /* its backoff ends: promoted by the next tick */
    exec_sql("UPDATE jobs SET run_at = now() WHERE status = 'pending'");
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 26, 10000), 26);
    cr_assert_eq(wait_ready(26, 10000), 26);
    /* a new submission with its NOTIFY is relayed well within a tick */
    add_pending(user_a, 1, "now()");
    int64_t t0 = sf_time_mono_ms();
    exec_sql("NOTIFY sf_jobs");
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 27, 10000), 27);
    cr_log_info("relay after NOTIFY: %lld ms", (long long)(sf_time_mono_ms() - t0));
}

Test(scheduler, relay_keeps_at_most_relay_max_ready_ids_in_redis)
{
    const char *env[] = {"RELAY_MAX_READY=10", NULL};
    add_pending(user_a, 30, "now()");
    spawn(0, "A", env);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 10, 10000), 10);
    sleep_ms(1500); /* a tick or more later: still 10 */
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status = 'queued'"), 10);
    cr_assert_eq(ready_total(), 10);
    /* workers take 4: room for 4 more */
    sf_queue_id ids[4];
    size_t n = 0;
    sf_err err = {0};
    cr_assert_eq(sf_queue_claim(queue, 4, 60000, ids, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 4);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 14, 10000), 14);
    cr_assert_eq(wait_ready(10, 10000), 10);
}

Test(scheduler, a_flush_of_the_queue_keys_is_rebuilt_from_postgresql)
{
    add_pending(user_a, 15, "now()");
    add_pending(user_b, 7, "now()");
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 22, 10000), 22);
    cr_assert_eq(wait_ready(22, 10000), 22);
    sf_err err = {0};
    cr_assert_eq(sf_queue_purge(queue, &err), SF_OK, "%s", err.msg); /* FLUSHALL of our keys */
    cr_assert_eq(ready_total(), 0);
    cr_assert_eq(wait_ready(22, 10000), 22, "not rebuilt");
    cr_assert(ready_matches_queued(user_a));
    cr_assert(ready_matches_queued(user_b));
    char value[256];
    int found = 0;
    cr_assert_eq(sf_queue_incarnation_get(queue, value, sizeof value, &found, &err), SF_OK);
    cr_assert_eq(found, 1);
    cr_assert(strncmp(value, "A/", 2) == 0, "%s", value);
    cr_assert_geq(count_in_log(&procs[0], "\"rebuilt redis from postgresql\""), 2);
}

Test(scheduler, a_new_leader_rebuilds_redis_after_failover)
{
    add_pending(user_a, 12, "now()");
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 12, 10000), 12);
    kill(procs[0].pid, SIGKILL);
    wait_exit(&procs[0], 2000);
    sf_err err = {0};
    cr_assert_eq(sf_queue_purge(queue, &err), SF_OK, "%s", err.msg);
    spawn(1, "B", NULL);
    cr_assert_eq(wait_ready(12, (TTL_S + 4) * 1000), 12);
    cr_assert(ready_matches_queued(user_a));
}

/* A private redis-server for the test that stops and restarts Redis. */
static void start_private_redis(int port)
{
    proc *p = &procs[2];
    snprintf(p->name, sizeof p->name, "redis");
    snprintf(p->log, sizeof p->log, "%s/redis.log", dir);
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", portbuf, "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--dir", dir, (char *)NULL);
        _exit(127);
    }
    p->pid = pid;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    sf_redis_opts opts = {.connect_attempts = 30, .backoff_initial_ms = 50};
    sf_redis *r = NULL;
    sf_err err = {0};
    if (sf_redis_open(url, &opts, &r, &err) != SF_OK) {
        char *log = read_log(p);
        cr_assert_fail("private redis on port %d: %s\n%s", port, err.msg, log ? log : "(no log)");
    }
    sf_redis_close(r);
}

/* Ready ids in the private Redis (a fresh connection each time: it restarts). */
static long long private_ready(const char *url)
{
    sf_redis *r = NULL;
    sf_queue *q = NULL;
    sf_queue_depth depth = {0};
    sf_err err = {0};
    if (sf_redis_open(url, NULL, &r, &err) == SF_OK && sf_queue_new(queue_name, r, &q, &err) == SF_OK)
        sf_queue_get_depth(q, &depth, &err);
    sf_queue_free(q);
    sf_redis_close(r);
    return depth.ready_total;
}

static long long wait_private_ready(const char *url, long long want, int timeout_ms)
{
    int64_t end = sf_time_mono_ms() + timeout_ms;
    long long v = private_ready(url);
    while (v != want && sf_time_mono_ms() < end) {
        sleep_ms(100);
        v = private_ready(url);
    }
    return v;
}

/* Redis dies: cron and the PostgreSQL reaper go on. It comes back empty (no
 * persistence): every queued job is back in Redis, and what piled up in
 * PostgreSQL meanwhile is relayed. */
Test(scheduler, redis_restart_without_persistence_loses_nothing, .timeout = 120)
{
    /* below the ephemeral range: Redis restarts on this port while the
     * scheduler's outgoing connections take local ports */
    int port = sf_proc_free_port();
    char url[64], env_url[96];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    snprintf(env_url, sizeof env_url, "REDIS_URL=%s", url);
    const char *env[] = {env_url, NULL};
    start_private_redis(port);
    add_pending(user_a, 10, "now()");
    proc *p = spawn(0, "A", env);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 10, 10000), 10);
    cr_assert_eq(wait_private_ready(url, 10, 10000), 10);

    kill(procs[2].pid, SIGKILL);
    waitpid(procs[2].pid, NULL, 0);
    procs[2].pid = 0;
    add_schedule("m", "* * * * *", "latest", "now() - interval '10 minutes'");
    exec_sql("INSERT INTO jobs (user_id, logic, symbol, timeframe, status, attempt, fence, "
             "lease_until, started_at) VALUES ((SELECT id FROM users LIMIT 1), '{}', 'X', '1d', "
             "'running', 1, 1, now() - interval '1 second', now())");
    cr_assert_eq(wait_int("SELECT count(*) FROM schedule_firings", 1, 10000), 1, "cron stopped");
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'running'", 0, 10000), 0, "reaper stopped");
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status = 'pending'"), 2);
    cr_assert_eq(wait_exit(p, 100), -1, "the scheduler exited");
    cr_assert_geq(count_in_log(p, "\"redis unavailable\""), 1);

    start_private_redis(port); /* empty */
    cr_assert_eq(wait_private_ready(url, 12, 10000), 12, "not rebuilt and relayed");
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE status = 'queued'"), 12);
}

/* ---- reaper, retention ------------------------------------------------ */

Test(scheduler, reaper_requeues_expired_running_jobs_and_kills_exhausted_ones)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (user_id, logic, symbol, timeframe, status, attempt, max_attempts, "
             "fence, lease_until, started_at, idempotency_key) VALUES "
             "('%s', '{}', 'X', '1d', 'running', 1, 3, 7, now() - interval '1 second', now(), 'retry'),"
             "('%s', '{}', 'X', '1d', 'running', 3, 3, 8, now() - interval '1 second', now(), 'dead'),"
             "('%s', '{}', 'X', '1d', 'running', 1, 3, 9, now() + interval '1 hour', now(), 'alive')",
             user_a, user_a, user_a);
    exec_sql(sql);
    spawn(0, "A", NULL);
    /* retried: back to pending after its backoff, then relayed to queued */
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'retry' AND "
                          "status = 'queued' AND attempt = 1",
                          1, 5000),
                 1);
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE idempotency_key = 'dead' AND "
                      "status = 'dead' AND finished_at IS NOT NULL"),
                 1);
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE idempotency_key = 'alive' AND "
                      "status = 'running'"),
                 1);
    cr_assert_eq(wait_ready(1, 10000), 1);
}

/* Move the lease deadlines of ids to the epoch: expired from now on. */
static void expire_leases(const sf_queue_id *ids, size_t n)
{
    char key[256];
    snprintf(key, sizeof key, "%sleases", sf_queue_prefix(queue));
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"ZADD", key, "XX", "CH", "1", ids[i].id};
        const size_t lens[] = {4, strlen(key), 2, 2, 1, strlen(ids[i].id)};
        sf_redis_reply *rep = NULL;
        sf_err err = {0};
        cr_assert_eq(sf_redis_cmd(redis, 6, argv, lens, &rep, &err), SF_OK, "%s", err.msg);
        cr_assert_eq(sf_redis_reply_int(rep), 1, "no lease for %s", ids[i].id);
        sf_redis_reply_free(rep);
    }
}

Test(scheduler, reaper_returns_expired_redis_leases_of_unclaimed_jobs_to_ready)
{
    add_pending(user_a, 3, "now()");
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE status = 'queued'", 3, 10000), 3);
    cr_assert_eq(wait_ready(3, 10000), 3);
    /* a worker claims all three in Redis, then "dies" before its PostgreSQL
     * claim; one of them ran and finished meanwhile. The lease is long, so
     * the reaper cannot see it before the finish is written, however slow
     * the machine; the test then expires all three at once. */
    sf_queue_id ids[3];
    size_t n = 0;
    sf_err err = {0};
    cr_assert_eq(sf_queue_claim(queue, 3, 600000, ids, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET status = 'succeeded', finished_at = now() "
             "WHERE id = '%s'",
             ids[0].id);
    exec_sql(sql);
    cr_assert_eq(ready_total(), 0, "the reaper took a lease that had not expired");
    expire_leases(ids, n);
    /* one reaper pass requeues the two still queued, then drops the third
     * lease: wait for both */
    sf_queue_depth depth;
    int64_t end = sf_time_mono_ms() + 10000;
    do {
        cr_assert_eq(sf_queue_get_depth(queue, &depth, &err), SF_OK, "%s", err.msg);
        if (depth.ready_total == 2 && depth.leased == 0)
            break;
        sleep_ms(50);
    } while (sf_time_mono_ms() < end);
    cr_assert_eq(depth.ready_total, 2);
    cr_assert_eq(depth.leased, 0, "expired leases left behind");
    cr_assert(ready_matches_queued(user_a));
}

Test(scheduler, retention_deletes_old_finished_jobs_and_keeps_young_ones)
{
    char sql[2048];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO jobs (user_id, logic, symbol, timeframe, status, finished_at, "
        "created_at, idempotency_key) VALUES "
        "('%s', '{}', 'X', '1d', 'succeeded', now() - interval '40 days', now() - interval '41 days', 'old-ok'),"
        "('%s', '{}', 'X', '1d', 'failed', now() - interval '31 days', now() - interval '41 days', 'old-failed'),"
        "('%s', '{}', 'X', '1d', 'dead', now() - interval '35 days', now() - interval '41 days', 'old-dead'),"
        "('%s', '{}', 'X', '1d', 'cancelled', now() - interval '90 days', now() - interval '91 days', 'old-cancelled'),"
        "('%s', '{}', 'X', '1d', 'succeeded', now() - interval '29 days', now() - interval '41 days', 'young-ok'),"
        "('%s', '{}', 'X', '1d', 'pending', NULL, now() - interval '41 days', 'old-pending')",
        user_a, user_a, user_a, user_a, user_a, user_a);
    exec_sql(sql);
    exec_sql("UPDATE jobs SET run_at = now() + interval '1 day' WHERE idempotency_key = 'old-pending'");
    exec_sql("INSERT INTO results (job_id, metrics, trades, equity) SELECT id, '{}', '[]', '[]' "
             "FROM jobs WHERE idempotency_key IN ('old-ok', 'young-ok')");
    snprintf(sql, sizeof sql,
             "INSERT INTO batches (user_id, logic, grid, symbol, timeframe, total, created_at, "
             "idempotency_key) VALUES "
             "('%s', '{}', '{}', 'X', '1d', 1, now() - interval '40 days', 'empty-old'),"
             "('%s', '{}', '{}', 'X', '1d', 1, now() - interval '40 days', 'full-old'),"
             "('%s', '{}', '{}', 'X', '1d', 1, now(), 'empty-young')",
             user_a, user_a, user_a);
    exec_sql(sql);
    exec_sql("INSERT INTO jobs (user_id, batch_id, combo_index, symbol, timeframe, status, "
             "finished_at) SELECT user_id, id, 0, 'X', '1d', 'succeeded', now() - interval '1 day' "
             "FROM batches WHERE idempotency_key = 'full-old'");
    add_schedule("s", "0 0 1 1 *", "all", "now() + interval '1 day'");
    /* recorded 40 days ago; recorded now for a time 40 days ago (catch-up); recent */
    exec_sql("INSERT INTO schedule_firings (schedule_id, fire_time, created_at) "
             "SELECT id, now() - interval '40 days', now() - interval '40 days' FROM schedules "
             "UNION ALL SELECT id, now() - interval '41 days', now() FROM schedules "
             "UNION ALL SELECT id, now() - interval '2 days', now() - interval '2 days' FROM schedules");
    spawn(0, "A", NULL);
    cr_assert_eq(wait_int("SELECT count(*) FROM jobs WHERE idempotency_key LIKE 'old-%' AND "
                          "idempotency_key <> 'old-pending'",
                          0, 5000),
                 0);
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE idempotency_key IN ('young-ok', 'old-pending')"), 2);
    cr_assert_eq(qint("SELECT count(*) FROM jobs WHERE batch_id IS NOT NULL"), 1);
    cr_assert_eq(qint("SELECT count(*) FROM results"), 1, "the old job's result went with it");
    cr_assert_eq(wait_int("SELECT count(*) FROM batches", 2, 10000), 2);
    cr_assert_eq(qint("SELECT count(*) FROM batches WHERE idempotency_key = 'empty-old'"), 0);
    cr_assert_eq(wait_int("SELECT count(*) FROM schedule_firings", 2, 10000), 2);
    cr_assert_eq(qint("SELECT count(*) FROM schedule_firings WHERE created_at < now() - interval '30 days'"), 0);
}
