/*
 * Integration tests for sf_queue against the local stack's Redis: every test
 * uses its own queue name (sf:{t_<random>}:...) and purges it at the end.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

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

Test(queue, priority_orders_work_within_a_tenant_then_age)
{
    sf_queue_entry e[4] = {entry("low", "t", 2, 100), entry("norm-new", "t", 1, 300),
                           entry("norm-old", "t", 1, 200), entry("high", "t", 0, 400)};
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
    char got[64];
    cr_assert_eq(claim(1, 30000, got, sizeof got), 1);
    cr_assert_eq(depth().wake, 1, "a claim consumes the wake token of the id it took");
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
    cr_assert_eq(sf_queue_remove(g_q, &e[1], 1, &removed, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
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
}
