/* Integration tests of the Redis adapter against the local stack. Keys carry
 * a random prefix and are deleted at the end. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/testenv.h"
#include "sf/redis.h"
#include "sf/time.h"

static char *url;
static sf_redis *r;
static char prefix[48];

static void setup(void)
{
    url = sf_testenv_require("REDIS_URL");
    sf_testenv_random_name("sf:test:", prefix, sizeof prefix);
    sf_err err = {0};
    sf_redis_opts opts = {.command_timeout_ms = 2000};
    if (sf_redis_open(url, &opts, &r, &err) != SF_OK)
        cr_assert_fail("%s (%s)", err.msg, SF_TESTENV_HINT);
}

static void key(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s:%s", prefix, name);
}

/* Run a command given as words; returns the status, reply in *out (or freed). */
static sf_status cmd(sf_redis_reply **out, sf_err *err, int argc, const char *const *argv)
{
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(r, argc, argv, NULL, &rep, err);
    if (out)
        *out = rep;
    else
        sf_redis_reply_free(rep);
    return st;
}

static void teardown(void)
{
    if (r && sf_redis_is_ok(r)) {
        const char *scan[] = {
            "EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0", "0", NULL};
        char pattern[64];
        snprintf(pattern, sizeof pattern, "%s:*", prefix);
        scan[3] = pattern;
        cmd(NULL, NULL, 4, scan);
    }
    sf_redis_close(r);
    free(url);
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 30);

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

Test(redis, url_parsing_reads_host_port_password_and_db)
{
    static const struct {
        const char *url;
        const char *host;
        int port;
        const char *password;
        int db;
    } good[] = {
        {"redis://127.0.0.1:56379/0", "127.0.0.1", 56379, "", 0},
        {"redis://:pw@cache:6380/3", "cache", 6380, "pw", 3},
        {"redis://user:p:w@h", "h", 6379, "p:w", 0},
        {"redis://h", "h", 6379, "", 0},
        {"redis://h/", "h", 6379, "", 0},
        {"redis://h:1/15", "h", 1, "", 15},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sf_redis_url u;
        sf_err err = {0};
        cr_assert_eq(sf_redis_parse_url(good[i].url, &u, &err), SF_OK, "%s: %s", good[i].url, err.msg);
        cr_assert_str_eq(u.host, good[i].host, "%s", good[i].url);
        cr_assert_eq(u.port, good[i].port, "%s", good[i].url);
        cr_assert_str_eq(u.password, good[i].password, "%s", good[i].url);
        cr_assert_eq(u.db, good[i].db, "%s", good[i].url);
    }
}

Test(redis, bad_urls_are_rejected_without_echoing_the_password)
{
    static const char *const bad[] = {
        "http://h",          "redis://",          "redis://:hunter2@h:0", "redis://:hunter2@h:65536",
        "redis://h:12x",     "redis://h:",        "redis://:hunter2@h/x", "redis://h/-1",
        "redis://h:6379/1x", "redis://:hunter2@", "redis://h/99999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sf_redis_url u;
        sf_err err = {0};
        cr_assert_eq(sf_redis_parse_url(bad[i], &u, &err), SF_ERR_PARSE, "%s accepted", bad[i]);
        cr_assert(strncmp(err.msg, "redis url", 9) == 0, "%s: %s", bad[i], err.msg);
        cr_assert_null(strstr(err.msg, "hunter2"), "%s", err.msg);
    }
}

/* Found by fuzz_redis (tests/fuzz/seeds/fuzz_redis/regress-long-number-*):
 * a port or database number was read from its first 31 characters, so
 * "/0000000000000000000000000000000junk" was database 0. */
Test(redis, a_port_or_database_number_is_read_whole_however_long)
{
    static const char *const bad[] = {
        "redis://h:6379/00000000000000000000000000000001x",
        "redis://h:0000000000000000000000000006379x/1",
        "redis://h/0000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sf_redis_url u;
        sf_err err = {0};
        cr_assert_eq(sf_redis_parse_url(bad[i], &u, &err), SF_ERR_PARSE, "%s accepted", bad[i]);
        cr_assert(strncmp(err.msg, "redis url: ", 11) == 0, "%s: %s", bad[i], err.msg);
    }
    sf_redis_url u;
    cr_assert_eq(
        sf_redis_parse_url("redis://h:0000000000000000000000000006379/0000000000000000000000000000007", &u, NULL),
        SF_OK, "31 characters still fit");
    cr_assert_eq(u.port, 6379);
    cr_assert_eq(u.db, 7);
}

Test(redis, commands_return_typed_replies)
{
    char k[96], l[96];
    key(k, sizeof k, "s");
    key(l, sizeof l, "list");
    sf_err err = {0};
    sf_redis_reply *rep = NULL;
    const char *set[] = {"SET", k, "va\0lue"};
    size_t lens[] = {3, strlen(k), 6};
    cr_assert_eq(sf_redis_cmd(r, 3, set, lens, &rep, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_STATUS);
    cr_assert_str_eq(sf_redis_reply_str(rep, NULL), "OK");
    sf_redis_reply_free(rep);
    const char *get[] = {"GET", k};
    cr_assert_eq(cmd(&rep, &err, 2, get), SF_OK);
    size_t len = 0;
    const char *v = sf_redis_reply_str(rep, &len);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_STR);
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(v, "va\0lue", 6), 0, "binary safe");
    sf_redis_reply_free(rep);
    const char *del[] = {"DEL", k};
    cr_assert_eq(cmd(&rep, &err, 2, del), SF_OK);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_INT);
    cr_assert_eq(sf_redis_reply_int(rep), 1);
    sf_redis_reply_free(rep);
    cr_assert_eq(cmd(&rep, &err, 2, get), SF_OK);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_NIL);
    cr_assert_null(sf_redis_reply_str(rep, NULL));
    sf_redis_reply_free(rep);
    const char *push[] = {"RPUSH", l, "a", "b", "c"};
    cr_assert_eq(cmd(NULL, &err, 5, push), SF_OK);
    const char *range[] = {"LRANGE", l, "0", "-1"};
    cr_assert_eq(cmd(&rep, &err, 4, range), SF_OK);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_ARRAY);
    cr_assert_eq(sf_redis_reply_len(rep), 3);
    cr_assert_str_eq(sf_redis_reply_str(sf_redis_reply_at(rep, 2), NULL), "c");
    cr_assert_null(sf_redis_reply_at(rep, 3));
    sf_redis_reply_free(rep);
}

Test(redis, pipelined_replies_come_back_in_order)
{
    char k[96];
    key(k, sizeof k, "counter");
    sf_err err = {0};
    const char *incr[] = {"INCR", k};
    const char *bad[] = {"HGET", k, "field"}; /* wrong type once k is a string */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(sf_redis_append(r, i == 50 ? 3 : 2, i == 50 ? bad : incr, NULL, &err), SF_OK);
    for (int i = 0; i < 100; i++) {
        sf_redis_reply *rep = NULL;
        sf_status st = sf_redis_read(r, &rep, &err);
        if (i == 50) {
            cr_assert_eq(st, SF_ERR_REDIS);
            cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_ERROR);
        } else {
            cr_assert_eq(st, SF_OK, "%s", err.msg);
            cr_assert_eq(sf_redis_reply_int(rep), i < 50 ? i + 1 : i);
        }
        sf_redis_reply_free(rep);
    }
}

static void check_eval(sf_redis_script *s, const char *k, sf_err *err)
{
    const char *keys[] = {k};
    const char *args[] = {"x"};
    sf_redis_reply *rep = NULL;
    cr_assert_eq(sf_redis_eval(r, s, 1, keys, 1, args, &rep, err), SF_OK, "%s", err ? err->msg : "");
    cr_assert_str_eq(sf_redis_reply_str(rep, NULL), "x@k");
    sf_redis_reply_free(rep);
}

Test(redis, eval_loads_and_reloads_after_script_flush)
{
    sf_redis_script s = {.source = "return ARGV[1] .. '@' .. string.sub(KEYS[1], -1)", .sha = ""};
    char k[96];
    key(k, sizeof k, "k");
    sf_err err = {0};
    check_eval(&s, k, &err);
    cr_assert_eq(strlen(s.sha), 40);
    char sha[41];
    memcpy(sha, s.sha, sizeof sha);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    cr_assert_eq(cmd(NULL, &err, 2, flush), SF_OK);
    check_eval(&s, k, &err);
    cr_assert_str_eq(s.sha, sha);
    cr_assert_eq(cmd(NULL, &err, 2, flush), SF_OK);
    check_eval(&s, k, NULL); /* the fallback does not depend on an error struct */

    sf_redis_script broken = {.source = "return redis.call('NOPE')", .sha = ""};
    sf_redis_reply *rep = NULL;
    const char *keys[] = {k};
    cr_assert_eq(sf_redis_eval(r, &broken, 1, keys, 0, NULL, &rep, &err), SF_ERR_REDIS);
    sf_redis_reply_free(rep);
    cr_assert(sf_redis_is_ok(r));
}

Test(redis, an_error_reply_leaves_the_connection_usable)
{
    char k[96];
    key(k, sizeof k, "str");
    sf_err err = {0};
    const char *set[] = {"SET", k, "abc"};
    cr_assert_eq(cmd(NULL, &err, 3, set), SF_OK);
    const char *incr[] = {"INCR", k};
    sf_redis_reply *rep = NULL;
    cr_assert_eq(cmd(&rep, &err, 2, incr), SF_ERR_REDIS);
    cr_assert_eq(err.code, SF_ERR_REDIS);
    cr_assert(strstr(err.msg, "not an integer") != NULL, "%s", err.msg);
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_ERROR);
    sf_redis_reply_free(rep);
    cr_assert(sf_redis_is_ok(r));
    const char *ping[] = {"PING"};
    cr_assert_eq(cmd(&rep, &err, 1, ping), SF_OK);
    cr_assert_str_eq(sf_redis_reply_str(rep, NULL), "PONG");
    sf_redis_reply_free(rep);
}

Test(redis, blocking_move_times_out_with_nil_and_keeps_the_connection)
{
    sf_redis *b = NULL;
    sf_err err = {0};
    sf_redis_opts opts = {.command_timeout_ms = 200};
    cr_assert_eq(sf_redis_open(url, &opts, &b, &err), SF_OK, "%s", err.msg);
    char src[96], dst[96];
    key(src, sizeof src, "empty");
    key(dst, sizeof dst, "dst");
    const char *blmove[] = {"BLMOVE", src, dst, "LEFT", "RIGHT", "1"};
    sf_redis_reply *rep = NULL;
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_redis_cmd_blocking(b, 1000, 6, blmove, NULL, &rep, &err), SF_OK, "%s", err.msg);
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert_eq(sf_redis_reply_type(rep), SF_REDIS_NIL);
    sf_redis_reply_free(rep);
    cr_assert(took >= 900 && took < 1800, "took %lld ms", (long long)took);
    cr_assert(sf_redis_is_ok(b));

    /* The ordinary 200 ms timeout is back: a plain command still works. */
    const char *ping[] = {"PING"};
    cr_assert_eq(sf_redis_cmd(b, 1, ping, NULL, &rep, &err), SF_OK, "%s", err.msg);
    sf_redis_reply_free(rep);

    /* An element is moved as soon as it is there. */
    const char *push[] = {"RPUSH", src, "job-1"};
    cr_assert_eq(cmd(NULL, &err, 3, push), SF_OK);
    cr_assert_eq(sf_redis_cmd_blocking(b, 1000, 6, blmove, NULL, &rep, &err), SF_OK, "%s", err.msg);
    cr_assert_str_eq(sf_redis_reply_str(rep, NULL), "job-1");
    sf_redis_reply_free(rep);
    sf_redis_close(b);
}

Test(redis, a_plain_command_over_its_timeout_is_unavailable_and_reconnect_recovers)
{
    sf_redis *b = NULL;
    sf_err err = {0};
    sf_redis_opts opts = {.command_timeout_ms = 200};
    cr_assert_eq(sf_redis_open(url, &opts, &b, &err), SF_OK, "%s", err.msg);
    char src[96];
    key(src, sizeof src, "empty2");
    const char *blpop[] = {"BLPOP", src, "1"};
    sf_redis_reply *rep = NULL;
    cr_assert_eq(sf_redis_cmd(b, 3, blpop, NULL, &rep, &err), SF_ERR_UNAVAILABLE);
    cr_assert_null(rep);
    cr_assert(strstr(err.msg, "timed out") != NULL, "%s", err.msg);
    cr_assert_not(sf_redis_is_ok(b));
    cr_assert_eq(sf_redis_cmd(b, 3, blpop, NULL, &rep, &err), SF_ERR_UNAVAILABLE, "stays broken");
    cr_assert_eq(sf_redis_reconnect(b, &err), SF_OK, "%s", err.msg);
    const char *ping[] = {"PING"};
    cr_assert_eq(sf_redis_cmd(b, 1, ping, NULL, &rep, &err), SF_OK, "%s", err.msg);
    sf_redis_reply_free(rep);
    sf_redis_close(b);
}

Test(redis, the_url_database_number_is_selected)
{
    char db5[320];
    sf_redis_url u;
    cr_assert_eq(sf_redis_parse_url(url, &u, NULL), SF_OK);
    snprintf(db5, sizeof db5, "redis://%s:%d/5", u.host, u.port);
    sf_redis *five = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_open(db5, NULL, &five, &err), SF_OK, "%s", err.msg);
    char k[96];
    key(k, sizeof k, "in5");
    const char *set[] = {"SET", k, "1", "EX", "60"};
    sf_redis_reply *rep = NULL;
    cr_assert_eq(sf_redis_cmd(five, 5, set, NULL, &rep, &err), SF_OK, "%s", err.msg);
    sf_redis_reply_free(rep);
    const char *exists[] = {"EXISTS", k};
    cr_assert_eq(sf_redis_cmd(five, 2, exists, NULL, &rep, &err), SF_OK);
    cr_assert_eq(sf_redis_reply_int(rep), 1);
    sf_redis_reply_free(rep);
    cr_assert_eq(cmd(&rep, &err, 2, exists), SF_OK);
    cr_assert_eq(sf_redis_reply_int(rep), 0, "not visible in database 0");
    sf_redis_reply_free(rep);
    const char *del[] = {"DEL", k};
    cr_assert_eq(sf_redis_cmd(five, 2, del, NULL, &rep, &err), SF_OK);
    sf_redis_reply_free(rep);
    sf_redis_close(five);
}

Test(redis, a_closed_port_fails_within_the_timeout_without_the_password)
{
    int port = unused_port();
    char bad[128], hostport[64];
    snprintf(bad, sizeof bad, "redis://:Hidden9pw@127.0.0.1:%d/0", port);
    snprintf(hostport, sizeof hostport, "127.0.0.1:%d", port);
    sf_redis_opts opts = {.connect_timeout_ms = 500, .connect_attempts = 2, .backoff_initial_ms = 100};
    sf_redis *x = NULL;
    sf_err err = {0};
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_redis_open(bad, &opts, &x, &err), SF_ERR_UNAVAILABLE);
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert_null(x);
    cr_assert_lt(took, 2 * 500 + 100 + 500, "took %lld ms", (long long)took);
    cr_assert(strstr(err.msg, hostport) != NULL, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "Hidden9pw"), "%s", err.msg);
}

Test(redis, a_refused_password_is_an_error_without_the_password)
{
    sf_redis_url u;
    cr_assert_eq(sf_redis_parse_url(url, &u, NULL), SF_OK);
    if (u.password[0])
        cr_skip_test("the stack's redis has a password");
    char withpw[320];
    snprintf(withpw, sizeof withpw, "redis://:Wr0ngPw@%s:%d/0", u.host, u.port);
    sf_redis *x = NULL;
    sf_err err = {0};
    cr_assert_neq(sf_redis_open(withpw, NULL, &x, &err), SF_OK);
    cr_assert_null(x);
    cr_assert(strstr(err.msg, "AUTH") != NULL || strstr(err.msg, "auth") != NULL, "%s", err.msg);
    cr_assert_null(strstr(err.msg, "Wr0ngPw"), "%s", err.msg);
}

/* A subscribed connection waits for messages in short turns: a turn with no
 * message is not a timeout (the command timeout is 2 s here, the waits add
 * up to 2.5 s), and a message published meanwhile is read whole. */
Test(redis, read_wait_returns_nothing_in_time_then_the_published_message)
{
    char channel[96];
    key(channel, sizeof channel, "cancel");
    const char *sub[] = {"SUBSCRIBE", channel};
    sf_err err = {0};
    cr_assert_eq(cmd(NULL, &err, 2, sub), SF_OK, "%s", err.msg);
    for (int i = 0; i < 5; i++) {
        sf_redis_reply *rep = NULL;
        int64_t t0 = sf_time_mono_ms();
        cr_assert_eq(sf_redis_read_wait(r, 500, &rep, &err), SF_OK, "%s", err.msg);
        cr_assert_null(rep);
        cr_assert_geq(sf_time_mono_ms() - t0, 450);
    }
    cr_assert(sf_redis_is_ok(r));
    sf_redis *pub = NULL;
    sf_redis_opts opts = {.command_timeout_ms = 2000};
    cr_assert_eq(sf_redis_open(url, &opts, &pub, &err), SF_OK, "%s", err.msg);
    const char *p[] = {"PUBLISH", channel, "job-1"};
    sf_redis_reply *n = NULL;
    cr_assert_eq(sf_redis_cmd(pub, 3, p, NULL, &n, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(sf_redis_reply_int(n), 1, "one subscriber");
    sf_redis_reply_free(n);
    sf_redis_close(pub);
    sf_redis_reply *rep = NULL;
    for (int i = 0; i < 10 && rep == NULL; i++)
        cr_assert_eq(sf_redis_read_wait(r, 500, &rep, &err), SF_OK, "%s", err.msg);
    cr_assert_not_null(rep);
    cr_assert_eq(sf_redis_reply_len(rep), 3);
    cr_assert_str_eq(sf_redis_reply_str(sf_redis_reply_at(rep, 0), NULL), "message");
    cr_assert_str_eq(sf_redis_reply_str(sf_redis_reply_at(rep, 2), NULL), "job-1");
    sf_redis_reply_free(rep);
    sf_redis_close(r); /* subscribed: teardown's EVAL would be refused */
    r = NULL;
}

/* CLIENT GETNAME on c, copied into out ("" for none). */
static void client_name(sf_redis *c, char *out, size_t size)
{
    const char *argv[] = {"CLIENT", "GETNAME"};
    sf_redis_reply *rep = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_cmd(c, 2, argv, NULL, &rep, &err), SF_OK, "%s", err.msg);
    const char *s = sf_redis_reply_str(rep, NULL);
    snprintf(out, size, "%s", s ? s : "");
    sf_redis_reply_free(rep);
}

Test(redis, a_connection_keeps_its_client_name_across_a_reconnect)
{
    char name[40] = "sf-test/";
    snprintf(name + 8, sizeof name - 8, "%d", (int)getpid());
    sf_redis_opts opts = {.client_name = name};
    sf_redis *c = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_redis_open(url, &opts, &c, &err), SF_OK, "%s", err.msg);
    memset(name, 'x', 8); /* the connection keeps its own copy */
    char got[64];
    client_name(c, got, sizeof got);
    cr_assert(strncmp(got, "sf-test/", 8) == 0 && strlen(got) > 8, "CLIENT GETNAME: \"%s\"", got);
    cr_assert_eq(sf_redis_reconnect(c, &err), SF_OK, "%s", err.msg);
    char again[64];
    client_name(c, again, sizeof again);
    cr_assert_str_eq(again, got, "the name was lost on reconnect");
    sf_redis_close(c);

    sf_redis *none = NULL;
    cr_assert_eq(sf_redis_open(url, NULL, &none, &err), SF_OK, "%s", err.msg);
    client_name(none, got, sizeof got);
    cr_assert_str_eq(got, "", "a connection without a name got \"%s\"", got);
    sf_redis_close(none);

    const char *bad[] = {"two words", "a-name-longer-than-sixty-three-bytes-which-redis-would-take-but-we-do-not"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sf_redis *b = NULL;
        opts.client_name = bad[i];
        cr_assert_eq(sf_redis_open(url, &opts, &b, &err), SF_ERR_INVALID, "\"%s\" accepted", bad[i]);
        cr_assert_null(b);
        cr_assert(strstr(err.msg, "redis client name") != NULL, "%s", err.msg);
    }
}
