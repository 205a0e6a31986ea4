/*
 * Integration tests for sf_queue against the local stack's Redis: every test
 * uses its own queue name (sf:{t_<random>}:...) and purges it at the end.
 * Suite queue_keys runs every operation against a private redis-server in
 * Cluster mode (one node holding every slot) watched by MONITOR, and checks
 * that each command a script runs touches only keys the script was given in
 * KEYS (COMMAND GETKEYS names the keys of each command).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../support/proc.h"
#include "../support/testenv.h"
#include "sf/queue.h"

static sf_redis *g_r;
static sf_queue *g_q;

static void setup(void)
{
    char *url = sf_testenv_require("REDIS_URL");
    sf_err err = {0};
    sf_redis_opts o = {.connect_timeout_ms = 2000, .command_timeout_ms = 5000};
    if (sf_redis_open(url, &o, &g_r, &err) != SF_OK)
        cr_assert_fail("%s (%s)", err.msg, SF_TESTENV_HINT);
    free(url);
    char name[40];
    sf_testenv_random_name("t_", name, sizeof name);
    cr_assert_eq(sf_queue_new(name, g_r, &g_q, &err), SF_OK, "%s", err.msg);
}

static void teardown(void)
{
    if (g_q)
        sf_queue_purge(g_q, NULL);
    sf_queue_free(g_q);
    sf_redis_close(g_r);
    g_q = NULL;
    g_r = NULL;
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 30);

static sf_queue_entry entry(const char *id, const char *tenant, int prio, int64_t created)
{
    sf_queue_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant);
    e.score = sf_queue_score(prio, created);
    return e;
}

static void enqueue(const sf_queue_entry *e, size_t n, size_t want_added)
{
    sf_err err = {0};
    size_t added = 99;
    cr_assert_eq(sf_queue_enqueue(g_q, e, n, &added, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(added, want_added, "added %zu, want %zu", added, want_added);
}

/* Claim up to max; ids joined by ',' into out. */
static size_t claim(size_t max, int64_t lease_ms, char *out, size_t size)
{
    sf_queue_id ids[16];
    size_t n = 0;
    sf_err err = {0};
    cr_assert_eq(sf_queue_claim(g_q, max, lease_ms, ids, &n, &err), SF_OK, "%s", err.msg);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? "," : "", ids[i].id);
    }
    return n;
}

static sf_queue_depth depth(void)
{
    sf_queue_depth d;
    sf_err err = {0};
    cr_assert_eq(sf_queue_get_depth(g_q, &d, &err), SF_OK, "%s", err.msg);
    return d;
}

Test(queue, claims_rotate_across_tenants_so_a_big_sweep_cannot_starve_a_single_job)
{
    sf_queue_entry big[5];
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "a%d", i + 1);
        big[i] = entry(id, "alice", 1, 1000 + i);
    }
    enqueue(big, 5, 5);
    sf_queue_entry one = entry("b1", "bob", 1, 5000); /* submitted after all of alice's */
    enqueue(&one, 1, 1);
    char got[256];
    cr_assert_eq(claim(3, 30000, got, sizeof got), 3);
    cr_assert_str_eq(got, "a1,b1,a2");
    cr_assert_eq(claim(10, 30000, got, sizeof got), 3);
    cr_assert_str_eq(got, "a3,a4,a5");
    cr_assert_eq(claim(10, 30000, got, sizeof got), 0);
    sf_queue_depth d = depth();
    cr_assert_eq(d.leased, 6);
    cr_assert_eq(d.ready_total, 0);
    cr_assert_eq(d.tenants, 0, "empty tenants leave the rotation");
}

/* Enqueue count ids "<prefix><i>" of tenant, created from created0 on, in
 * batches of SF_QUEUE_BATCH_MAX; every one must be new. */
static void enqueue_many(const char *prefix, const char *tenant, int prio, int64_t created0, int count)
{
    static sf_queue_entry e[SF_QUEUE_BATCH_MAX];
    for (int done = 0; done < count;) {
        int n = count - done < SF_QUEUE_BATCH_MAX ? count - done : SF_QUEUE_BATCH_MAX;
        for (int i = 0; i < n; i++) {
            char id[SF_QUEUE_ID_MAX];
            snprintf(id, sizeof id, "%s%d", prefix, done + i);
            e[i] = entry(id, tenant, prio, created0 + done + i);
        }
        enqueue(e, (size_t)n, (size_t)n);
        done += n;
    }
}

Test(queue, a_tenant_behind_a_100000_job_backlog_waits_for_at_most_one_id_of_it)
{
    enqueue_many("a", "alice", 1, 1000, 100000);
    char got[256];
    cr_assert_eq(claim(4, 30000, got, sizeof got), 4, "alice alone: one claim takes what it wants");
    cr_assert_str_eq(got, "a0,a1,a2,a3");
    sf_queue_entry b = entry("b1", "bob", 1, 900000); /* newer than all of alice's */
    enqueue(&b, 1, 1);
    enqueue_many("x", "alice", 0, 950000, 1000); /* alice's backlog grows, even in a better band */
    /* four worker threads, one id each: bob's comes second */
    cr_assert_eq(claim(1, 30000, got, sizeof got), 1);
    cr_assert_str_eq(got, "x0", "alice's own high band goes first among her ids");
    cr_assert_eq(claim(1, 30000, got, sizeof got), 1);
    cr_assert_str_eq(got, "b1", "bob waited for one id of alice's, not for her 100,000");
    cr_assert_eq(claim(2, 30000, got, sizeof got), 2);
    cr_assert_str_eq(got, "x1,x2");
    sf_queue_depth d = depth();
    cr_assert_eq(d.ready_total, 100000 + 1000 - 4 - 3);
    cr_assert_eq(d.ready[0], 1000 - 3);
    cr_assert_eq(d.ready[1], 100000 - 4);
    cr_assert_eq(d.tenants, 1, "bob left the rotation with his last id");
    cr_assert_eq(d.leased, 8);
}

Test(queue, priority_orders_a_tenants_own_ids_and_never_lets_it_jump_another_tenant)
{
    sf_queue_entry e[5] = {entry("a1", "alice", 1, 100), entry("a2", "alice", 1, 200), entry("b-low", "bob", 2, 50),
                           entry("a-high", "alice", 0, 300), entry("c-norm", "carol", 1, 10)};
    enqueue(e, 5, 5);
    char got[256];
    cr_assert_eq(claim(5, 30000, got, sizeof got), 5);
    cr_assert_str_eq(got, "a-high,b-low,c-norm,a1,a2");
}

Test(queue, tenants_whose_names_are_prefixes_of_each_other_keep_their_own_ids)
{
    sf_queue_entry e[4] = {entry("ab1", "ab", 1, 1), entry("a1", "a", 1, 2), entry("a\x01", "a\x01", 1, 0),
                           entry("ab2", "ab", 1, 3)};
    enqueue(e, 4, 4);
    char got[256];
    cr_assert_eq(claim(4, 30000, got, sizeof got), 4);
    cr_assert_str_eq(got, "ab1,a1,a\x01,ab2");
}

Test(queue, priority_orders_work_within_a_tenant_then_age)
{
    sf_queue_entry e[4] = {entry("low", "t", 2, 100), entry("norm-new", "t", 1, 300), entry("norm-old", "t", 1, 200),
                           entry("high", "t", 0, 400)};
    enqueue(e, 4, 4);
    sf_queue_depth d = depth();
    cr_assert_eq(d.ready[0], 1);
    cr_assert_eq(d.ready[1], 2);
    cr_assert_eq(d.ready[2], 1);
    char got[256];
    cr_assert_eq(claim(4, 30000, got, sizeof got), 4);
    cr_assert_str_eq(got, "high,norm-old,norm-new,low");
}

Test(queue, enqueue_is_idempotent_and_pushes_one_wake_token_per_new_id)
{
    sf_queue_entry e[2] = {entry("j1", "t", 1, 1), entry("j2", "t", 1, 2)};
    enqueue(e, 2, 2);
    enqueue(e, 2, 0);
    enqueue(e, 1, 0);
    sf_queue_depth d = depth();
    cr_assert_eq(d.ready_total, 2);
    cr_assert_eq(d.wake, 2);
    cr_assert_eq(d.tenants, 1);
    /* the same ids with another tenant or score, twice in one call, or as a
     * requeue: still no-ops */
    sf_queue_entry again[3] = {entry("j1", "other", 0, 99), entry("j2", "t", 2, 5), entry("j2", "t", 2, 5)};
    enqueue(again, 3, 0);
    sf_err err = {0};
    size_t rq = 9;
    cr_assert_eq(sf_queue_requeue(g_q, e, 2, &rq, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rq, 0);
    sf_queue_entry twice[2] = {entry("j3", "t", 1, 3), entry("j3", "t", 1, 3)};
    enqueue(twice, 2, 1);
    d = depth();
    cr_assert_eq(d.ready_total, 3);
    cr_assert_eq(d.ready[1], 3, "each id kept its first score");
    cr_assert_eq(d.wake, 3);
    cr_assert_eq(d.tenants, 1, "a tenant with no new id is not listed");
    char got[64];
    cr_assert_eq(claim(1, 30000, got, sizeof got), 1);
    cr_assert_str_eq(got, "j1");
    cr_assert_eq(depth().wake, 2, "a claim consumes the wake token of the id it took");
    cr_assert_eq(claim(5, 30000, got, sizeof got), 2);
    cr_assert_str_eq(got, "j2,j3");
    enqueue(e, 2, 2); /* claimed ids are no longer ready: they can be added again */
}

Test(queue, expired_leases_are_listed_by_redis_time_and_can_be_requeued)
{
    sf_queue_entry e[2] = {entry("short", "t", 1, 1), entry("long", "t", 1, 2)};
    enqueue(e, 2, 2);
    char got[64];
    cr_assert_eq(claim(1, 150, got, sizeof got), 1);
    cr_assert_str_eq(got, "short");
    cr_assert_eq(claim(1, 150, got, sizeof got), 1);
    sf_err err = {0};
    const char *keep[] = {"long"};
    size_t ext = 0;
    sf_queue_id ids[8];
    size_t n = 9;
    cr_assert_eq(sf_queue_expired(g_q, 8, ids, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 0, "nothing has expired yet");
    struct timespec ts = {0, 80 * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert_eq(sf_queue_extend(g_q, keep, 1, 30000, &ext, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ext, 1);
    nanosleep(&ts, NULL);
    nanosleep(&ts, NULL);
    cr_assert_eq(sf_queue_expired(g_q, 8, ids, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0].id, "short");
    size_t rq = 0;
    cr_assert_eq(sf_queue_requeue(g_q, &e[0], 1, &rq, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(rq, 1);
    cr_assert_eq(depth().leased, 1, "the requeued id's lease is gone");
    cr_assert_eq(claim(4, 30000, got, sizeof got), 1);
    cr_assert_str_eq(got, "short");
    const char *both[] = {"short", "long"};
    cr_assert_eq(sf_queue_ack(g_q, both, 2, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(depth().leased, 0);
    cr_assert_eq(sf_queue_extend(g_q, keep, 1, 30000, &ext, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(ext, 0, "an acked lease is not recreated by extend");
}

Test(queue, incarnation_is_missing_until_set)
{
    char v[64];
    int found = 7;
    sf_err err = {0};
    cr_assert_eq(sf_queue_incarnation_get(g_q, v, sizeof v, &found, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(found, 0);
    cr_assert_eq(sf_queue_incarnation_set(g_q, "inc-42", &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_incarnation_get(g_q, v, sizeof v, &found, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(found, 1);
    cr_assert_str_eq(v, "inc-42");
}

Test(queue, wait_returns_at_once_with_a_token_and_times_out_without_one)
{
    sf_err err = {0};
    int woken = 5;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(sf_queue_wait(g_q, 300, &woken, &err), SF_OK, "%s", err.msg);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    cr_assert_eq(woken, 0);
    cr_assert(ms >= 250 && ms < 2000, "waited %ld ms", ms);
    sf_queue_entry e = entry("w", "t", 1, 1);
    enqueue(&e, 1, 1);
    cr_assert_eq(sf_queue_wait(g_q, 5000, &woken, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(woken, 1);
}

Test(queue, removed_ids_are_not_claimed)
{
    sf_queue_entry e[2] = {entry("keep", "t", 1, 1), entry("gone", "u", 1, 2)};
    enqueue(e, 2, 2);
    size_t removed = 0;
    sf_err err = {0};
    sf_queue_entry wrong = entry("keep", "u", 1, 1);
    cr_assert_eq(sf_queue_remove(g_q, &wrong, 1, &removed, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(removed, 0, "an id given with another tenant stays");
    cr_assert_eq(sf_queue_remove(g_q, &e[1], 1, &removed, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
    cr_assert_eq(sf_queue_remove(g_q, &e[1], 1, &removed, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(removed, 0);
    cr_assert_eq(depth().ready_total, 1);
    enqueue(&e[1], 1, 1); /* a removed id can be added again */
    cr_assert_eq(sf_queue_remove(g_q, &e[1], 1, &removed, &err), SF_OK, "%s", err.msg);
    char got[64];
    cr_assert_eq(claim(5, 30000, got, sizeof got), 1);
    cr_assert_str_eq(got, "keep");
}

Test(queue, bad_names_and_oversized_batches_are_refused)
{
    sf_queue *q = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_queue_new("a}b", g_r, &q, &err), SF_ERR_INVALID);
    cr_assert_eq(sf_queue_new("", g_r, &q, &err), SF_ERR_INVALID);
    sf_queue_id ids[1];
    size_t n = 0;
    cr_assert_eq(sf_queue_claim(g_q, SF_QUEUE_BATCH_MAX + 1, 1000, ids, &n, &err), SF_ERR_LIMIT);
    sf_queue_entry e = entry("", "t", 1, 1);
    cr_assert_eq(sf_queue_enqueue(g_q, &e, 1, NULL, &err), SF_ERR_INVALID);
    e = entry("x", "t", 1, 1);
    e.score = -1;
    cr_assert_eq(sf_queue_enqueue(g_q, &e, 1, NULL, &err), SF_ERR_INVALID);
    e.score = SF_QUEUE_SCORE_LIMIT;
    cr_assert_eq(sf_queue_requeue(g_q, &e, 1, NULL, &err), SF_ERR_INVALID);
    cr_assert_eq(depth().ready_total, 0);
}

/* ---- every key a script touches is declared (Cluster mode, MONITOR) ---- */

#define MON_ARGS 64
#define MON_ARG_MAX 128
#define MON_DECLARED 32

static struct {
    char dir[64];
    int port;
    sf_proc *server;
    sf_proc *monitor;
    sf_redis *r;
} K;

/* One command of a MONITOR line: `<time> [<db> <client>] "arg" "arg" ...`,
 * the arguments quoted as sdscatrepr writes them. */
typedef struct mon_cmd {
    int lua; /* run by a script: client "lua" */
    int argc;
    char argv[MON_ARGS][MON_ARG_MAX];
    size_t lens[MON_ARGS];
} mon_cmd;

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* One quoted argument at *p into dst (at most MON_ARG_MAX - 1 bytes); advances
 * *p past it. */
static size_t unquote(const char **p, char *dst)
{
    const char *s = *p + 1; /* past the opening quote */
    size_t n = 0;
    while (*s && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            char e = *s++;
            if (e == 'x') {
                c = (char)(hex_val(s[0]) * 16 + hex_val(s[1]));
                s += 2;
            } else {
                c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'a' ? '\a' : e == 'b' ? '\b' : e;
            }
        }
        if (n < MON_ARG_MAX - 1) /* longer ones (a script's text) are cut: keys are short */
            dst[n++] = c;
    }
    dst[n] = '\0';
    *p = *s ? s + 1 : s;
    return n;
}

/* 1 when line is a monitored command (parsed into c). */
static int parse_line(const char *line, mon_cmd *c)
{
    const char *open = strchr(line, '['), *close = open ? strstr(open, "] ") : NULL;
    if (close == NULL)
        return 0;
    const char *client = memchr(open, ' ', (size_t)(close - open));
    c->lua = client && close - client == 4 && strncmp(client + 1, "lua", 3) == 0;
    c->argc = 0;
    for (const char *p = close + 2; *p == '"';) {
        cr_assert_lt(c->argc, MON_ARGS, "a monitored command has too many arguments");
        c->lens[c->argc] = unquote(&p, c->argv[c->argc]);
        c->argc++;
        while (*p == ' ')
            p++;
    }
    return c->argc > 0;
}

static int is_script_call(const mon_cmd *c)
{
    return !c->lua && (strcasecmp(c->argv[0], "EVALSHA") == 0 || strcasecmp(c->argv[0], "EVAL") == 0);
}

/* The keys of a command, as the server names them (COMMAND GETKEYS). */
static int command_keys(const mon_cmd *c, char keys[][MON_ARG_MAX], int max)
{
    const char *argv[MON_ARGS + 2] = {"COMMAND", "GETKEYS"};
    size_t lens[MON_ARGS + 2] = {7, 7};
    for (int i = 0; i < c->argc; i++) {
        argv[i + 2] = c->argv[i];
        lens[i + 2] = c->lens[i];
    }
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    sf_status st = sf_redis_cmd(K.r, c->argc + 2, argv, lens, &rep, &err);
    int n = 0;
    if (st != SF_OK || sf_redis_reply_type(rep) != SF_REDIS_ARRAY)
        cr_assert(strcasecmp(c->argv[0], "TIME") == 0, "COMMAND GETKEYS %s: %s", c->argv[0], err.msg);
    else
        for (size_t i = 0; i < sf_redis_reply_len(rep) && n < max; i++)
            snprintf(keys[n++], MON_ARG_MAX, "%s", sf_redis_reply_str(sf_redis_reply_at(rep, i), NULL));
    sf_redis_reply_free(rep);
    return n;
}

typedef struct key_check {
    char declared[MON_DECLARED][MON_ARG_MAX];
    int ndeclared;
    char shas[16][MON_ARG_MAX]; /* distinct scripts run by EVALSHA */
    int nshas;
    int checked; /* commands run by scripts */
    int undeclared;
} key_check;

static void note_script_call(key_check *k, const mon_cmd *c)
{
    int nkeys = c->argc > 2 ? (int)strtol(c->argv[2], NULL, 10) : 0;
    for (int i = 0; i < nkeys && 3 + i < c->argc && k->ndeclared < MON_DECLARED; i++)
        snprintf(k->declared[k->ndeclared++], MON_ARG_MAX, "%s", c->argv[3 + i]);
    if (strcasecmp(c->argv[0], "EVALSHA") != 0)
        return;
    for (int i = 0; i < k->nshas; i++)
        if (strcmp(k->shas[i], c->argv[1]) == 0)
            return;
    if (k->nshas < 16)
        snprintf(k->shas[k->nshas++], sizeof k->shas[0], "%s", c->argv[1]);
}

static void check_script_command(key_check *k, const mon_cmd *c)
{
    char keys[MON_ARGS][MON_ARG_MAX];
    int n = command_keys(c, keys, MON_ARGS);
    k->checked++;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < k->ndeclared && !found; j++)
            found = strcmp(keys[i], k->declared[j]) == 0;
        if (!found) {
            k->undeclared++;
            cr_log_error("a script ran %s on key %s, which it was not given in KEYS", c->argv[0], keys[i]);
        }
    }
}

/* Check the lines between two markers: every key of every command a script
 * ran is one of the keys the script calls there declared (MONITOR shows a
 * script's commands next to its EVALSHA, before or after it by version;
 * a NOSCRIPT fallback makes an EVALSHA and an EVAL of the same keys). */
static void check_segment(key_check *k, char **lines, int n)
{
    static mon_cmd c;
    k->ndeclared = 0;
    for (int i = 0; i < n; i++)
        if (parse_line(lines[i], &c) && is_script_call(&c))
            note_script_call(k, &c);
    for (int i = 0; i < n; i++)
        if (parse_line(lines[i], &c) && c.lua)
            check_script_command(k, &c);
}

static int is_marker(const char *line)
{
    return strstr(line, "\"ECHO\" \"sf-mark-") != NULL;
}

static void check_monitor_log(key_check *k)
{
    char *log = sf_proc_log_read(K.monitor, (size_t)16 << 20);
    static char *lines[4096];
    int n = 0;
    for (char *s = log, *e; *s; s = e + 1) {
        e = strchr(s, '\n');
        if (e == NULL)
            e = s + strlen(s) - 1;
        else
            *e = '\0';
        if (is_marker(s)) {
            check_segment(k, lines, n);
            n = 0;
        } else {
            cr_assert_lt(n, 4096, "too many monitored lines between two markers");
            lines[n++] = s;
        }
    }
    free(log);
}

static sf_redis *open_port(int port)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    sf_redis_opts o = {.connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    sf_redis *r = NULL;
    sf_err err = {0};
    return sf_redis_open(url, &o, &r, &err) == SF_OK ? r : NULL;
}

/* The reply of a command on K.r as text ("" for nil, an array or an error). */
static void k_cmd(int argc, const char *const *argv, char *out, size_t size)
{
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    out[0] = '\0';
    if (sf_redis_cmd(K.r, argc, argv, NULL, &rep, &err) == SF_OK && sf_redis_reply_str(rep, NULL))
        snprintf(out, size, "%s", sf_redis_reply_str(rep, NULL));
    sf_redis_reply_free(rep);
}

static int k_up(void *ctx)
{
    (void)ctx;
    return (K.r = open_port(K.port)) != NULL;
}

static int k_cluster_ok(void *ctx)
{
    (void)ctx;
    const char *argv[] = {"CLUSTER", "INFO"};
    char info[4096];
    k_cmd(2, argv, info, sizeof info);
    return strstr(info, "cluster_state:ok") != NULL;
}

static int k_monitor_on(void *ctx)
{
    (void)ctx;
    return sf_proc_log_contains(K.monitor, "OK");
}

static int k_marker_seen(void *ctx)
{
    return sf_proc_log_contains(K.monitor, (const char *)ctx);
}

static void keys_setup(void)
{
    memset(&K, 0, sizeof K);
    sf_testenv_tmpdir(K.dir, sizeof K.dir);
    K.port = sf_proc_free_port();
    char port[16], bus[16], conf[128];
    snprintf(port, sizeof port, "%d", K.port);
    snprintf(bus, sizeof bus, "%d", sf_proc_free_port()); /* not port + 10000: it may pass 65535 */
    snprintf(conf, sizeof conf, "%s/nodes.conf", K.dir);
    const char *argv[] = {"redis-server",
                          "--bind",
                          "127.0.0.1",
                          "--port",
                          port,
                          "--cluster-enabled",
                          "yes",
                          "--cluster-port",
                          bus,
                          "--cluster-config-file",
                          conf,
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--dir",
                          K.dir,
                          NULL};
    K.server = sf_proc_start("redis", "/usr/bin/redis-server", argv, NULL, K.dir);
    cr_assert(sf_proc_wait_until(k_up, NULL, 10000, 20), "redis-server (cluster mode) did not start");
    const char *slots[] = {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"};
    char out[64];
    k_cmd(4, slots, out, sizeof out);
    cr_assert_str_eq(out, "OK", "CLUSTER ADDSLOTSRANGE");
    cr_assert(sf_proc_wait_until(k_cluster_ok, NULL, 10000, 50), "the one-node cluster is not ok");
    const char *mon[] = {"redis-cli", "-p", port, "monitor", NULL};
    K.monitor = sf_proc_start("monitor", "/usr/bin/redis-cli", mon, NULL, K.dir);
    cr_assert(sf_proc_wait_until(k_monitor_on, NULL, 10000, 20), "MONITOR did not start");
}

static void keys_teardown(void)
{
    sf_redis_close(K.r);
    sf_proc_stop_all(5000);
    sf_testenv_rmtree(K.dir);
}

TestSuite(queue_keys, .init = keys_setup, .fini = keys_teardown, .timeout = 60);

static void mark(int *i)
{
    char text[32], out[32];
    snprintf(text, sizeof text, "sf-mark-%d", (*i)++);
    const char *argv[] = {"ECHO", text};
    k_cmd(2, argv, out, sizeof out);
}

/* Every operation of the queue, each between two markers; each succeeds on
 * a Cluster node. */
static void run_every_operation(sf_queue *q, int *m)
{
    sf_err err = {0};
    sf_queue_entry e[4] = {entry("j1", "alice", 1, 10), entry("j2", "bob", 0, 20), entry("j3", "alice", 2, 30),
                           entry("j4", "carol", 1, 40)};
    size_t n = 0;
    sf_queue_id ids[4];
    const char *j1[] = {"j1"}, *both[] = {"j1", "j2"};
    char v[32];
    int found = 0, woken = 0;
    sf_queue_depth d;
    mark(m);
    cr_assert_eq(sf_queue_enqueue(q, e, 4, &n, &err), SF_OK, "enqueue: %s", err.msg);
    cr_assert_eq(n, 4);
    mark(m);
    cr_assert_eq(sf_queue_enqueue(q, e, 2, &n, &err), SF_OK, "enqueue again: %s", err.msg);
    mark(m);
    cr_assert_eq(sf_queue_claim(q, 2, 30000, ids, &n, &err), SF_OK, "claim: %s", err.msg);
    cr_assert_eq(n, 2);
    mark(m);
    cr_assert_eq(sf_queue_extend(q, j1, 1, 30000, &n, &err), SF_OK, "extend: %s", err.msg);
    mark(m);
    cr_assert_eq(sf_queue_expired(q, 4, ids, &n, &err), SF_OK, "expired: %s", err.msg);
    mark(m);
    cr_assert_eq(sf_queue_requeue(q, e, 1, &n, &err), SF_OK, "requeue: %s", err.msg);
    cr_assert_eq(n, 1);
    mark(m);
    cr_assert_eq(sf_queue_remove(q, &e[3], 1, &n, &err), SF_OK, "remove: %s", err.msg);
    cr_assert_eq(n, 1);
    mark(m);
    cr_assert_eq(sf_queue_get_depth(q, &d, &err), SF_OK, "depth: %s", err.msg);
    cr_assert_eq(d.ready_total, 2);
    mark(m);
    cr_assert_eq(sf_queue_wait(q, 100, &woken, &err), SF_OK, "wait: %s", err.msg);
    cr_assert_eq(sf_queue_ack(q, both, 2, &err), SF_OK, "ack: %s", err.msg);
    cr_assert_eq(sf_queue_incarnation_set(q, "inc", &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_incarnation_get(q, v, sizeof v, &found, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(found, 1);
    cr_assert_eq(sf_queue_publish_cancel(q, j1, 1, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_queue_purge(q, &err), SF_OK, "purge: %s", err.msg);
    mark(m);
}

Test(queue_keys, every_key_a_script_touches_is_declared_and_the_queue_works_on_a_cluster_node)
{
    sf_queue *q = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_queue_new("kq", K.r, &q, &err), SF_OK, "%s", err.msg);
    int m = 0;
    run_every_operation(q, &m);
    run_every_operation(q, &m); /* scripts cached: EVALSHA alone */
    sf_queue_free(q);
    char last[32];
    snprintf(last, sizeof last, "sf-mark-%d", m - 1);
    cr_assert(sf_proc_wait_until(k_marker_seen, last, 10000, 20), "MONITOR did not show the last marker");
    key_check k;
    memset(&k, 0, sizeof k);
    check_monitor_log(&k);
    cr_log_info("%d commands run by %d scripts checked against their KEYS", k.checked, k.nshas);
    cr_assert_eq(k.undeclared, 0, "%d commands run by scripts touched undeclared keys", k.undeclared);
    cr_assert_eq(k.nshas, 6, "every script ran (enqueue, claim, extend, expired, remove, depth)");
    cr_assert_gt(k.checked, 50);
}

typedef struct other_server {
    int port;
    sf_redis *r;
} other_server;

static int other_up(void *ctx)
{
    other_server *o = ctx;
    return (o->r = open_port(o->port)) != NULL;
}

Test(queue_keys, enqueue_stays_idempotent_on_a_redis_without_zmscore)
{
    /* ZMSCORE renamed away, as on a Redis older than 6.2: one ZSCORE per id */
    other_server o = {.port = sf_proc_free_port()};
    char port[16];
    snprintf(port, sizeof port, "%d", o.port);
    const char *argv[] = {"redis-server",     "--bind",  "127.0.0.1", "--port", port,
                          "--rename-command", "ZMSCORE", "",          "--save", "",
                          "--appendonly",     "no",      "--dir",     K.dir,    NULL};
    sf_proc_start("redis-old", "/usr/bin/redis-server", argv, NULL, K.dir);
    cr_assert(sf_proc_wait_until(other_up, &o, 10000, 20), "the second redis-server did not start");
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    const char *zmscore[] = {"ZMSCORE", "x", "a"};
    cr_assert_neq(sf_redis_cmd(o.r, 3, zmscore, NULL, &rep, &err), SF_OK, "ZMSCORE is still there");
    sf_redis_reply_free(rep);
    sf_queue *q = NULL;
    cr_assert_eq(sf_queue_new("old", o.r, &q, &err), SF_OK, "%s", err.msg);
    sf_queue_entry e[3] = {entry("j1", "t", 1, 1), entry("j2", "u", 1, 2), entry("j1", "t", 1, 1)};
    size_t n = 0;
    cr_assert_eq(sf_queue_enqueue(q, e, 3, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 2, "an id twice in one call counts once");
    sf_queue_entry again[2] = {entry("j1", "other", 0, 9), entry("j3", "t", 1, 3)};
    cr_assert_eq(sf_queue_enqueue(q, again, 2, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 1, "j1 is ready already");
    sf_queue_id ids[8];
    cr_assert_eq(sf_queue_claim(q, 8, 30000, ids, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(ids[0].id, "j1");
    cr_assert_str_eq(ids[1].id, "j2");
    cr_assert_str_eq(ids[2].id, "j3");
    sf_queue_free(q);
    sf_redis_close(o.r);
}
