/*
 * httpd against real sockets on loopback: slow and greedy clients cannot
 * take the server away from others (per-client cap, read deadline), a hook
 * can refuse a request before its body is read, a connection waiting behind
 * its thread's long handler is not taken for a slow client, metrics labels
 * come from a closed set, every response carries the safety headers.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/rawhttp.h"
#include "sf/httpd.h"

typedef struct seen {
    pthread_mutex_t mu;
    char method[32];
    int handled;
} seen;

static seen g_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void h_health(sf_httpd_req *req, void *app)
{
    (void)app;
    pthread_mutex_lock(&g_seen.mu);
    g_seen.handled++;
    pthread_mutex_unlock(&g_seen.mu);
    sf_httpd_reply(req, 200, "application/json", "{\"ok\":true}\n", 12, NULL);
}

static void on_done(const sf_httpd_done *d, void *app)
{
    (void)app;
    pthread_mutex_lock(&g_seen.mu);
    snprintf(g_seen.method, sizeof g_seen.method, "%s", d->method);
    pthread_mutex_unlock(&g_seen.mu);
}

/* Refuse any request without "Authorization: Bearer good" before its body. */
static void need_key(sf_httpd_req *req, void *app)
{
    (void)app;
    const char *a = sf_httpd_header(req, "Authorization");
    if (a == NULL || strcmp(a, "Bearer good") != 0)
        sf_httpd_reply_error(req, 401, "unauthorized", "invalid API key", NULL);
}

#define SLOW_MS 3000 /* h_slow's time: three read deadlines of the test below */

/* A handler that holds its thread, as storing a 100,000-member sweep does. */
static void h_slow(sf_httpd_req *req, void *app)
{
    (void)app;
    pthread_mutex_lock(&g_seen.mu);
    g_seen.handled++;
    pthread_mutex_unlock(&g_seen.mu);
    struct timespec ts = {SLOW_MS / 1000, (SLOW_MS % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    sf_httpd_reply(req, 200, "application/json", "{\"ok\":true}\n", 12, NULL);
}

static const sf_httpd_route ROUTES[] = {
    {"GET", "/health", h_health},
    {"POST", "/v1/things", h_health},
    {"GET", "/slow", h_slow},
};

static sf_httpd *start_threads(unsigned threads, unsigned per_client, unsigned deadline_ms, sf_httpd_handler_fn hook)
{
    sf_httpd_opts o = {.bind_address = "127.0.0.1",
                       .port = 0,
                       .threads = threads,
                       .per_client_limit = per_client,
                       .read_deadline_ms = deadline_ms,
                       .on_headers = hook,
                       .on_done = on_done};
    sf_httpd *d = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_httpd_start(ROUTES, sizeof ROUTES / sizeof ROUTES[0], &o, &d, &err), SF_OK, "%s", err.msg);
    return d;
}

static sf_httpd *start(unsigned per_client, unsigned deadline_ms, sf_httpd_handler_fn hook)
{
    return start_threads(2, per_client, deadline_ms, hook);
}

static int handled(void)
{
    pthread_mutex_lock(&g_seen.mu);
    int n = g_seen.handled;
    pthread_mutex_unlock(&g_seen.mu);
    return n;
}

/* One serving thread, a 1 s read deadline. A connection is accepted and sends
 * half its headers; a second one's request holds the thread for 3 s; the
 * first then finishes its request at once. Its clock ran for over 3 s, all
 * but milliseconds of them while its thread was busy: it is served, not cut
 * (before, the watchdog cut it at 1 s, and a client storing a sweep behind
 * another one got its connection reset). */
Test(httpd, a_connection_waiting_behind_its_threads_long_handler_is_not_cut)
{
    sf_httpd *d = start_threads(1, 4, 1000, NULL);
    int port = sf_httpd_port(d);
    int waiting = rawhttp_dial("127.0.0.1", port);
    cr_assert(waiting >= 0);
    const char head[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
    cr_assert(rawhttp_send(waiting, head, sizeof head - 1));
    int slow = rawhttp_dial("127.0.0.1", port); /* accepted after `waiting` (the backlog is in order) */
    cr_assert(slow >= 0);
    const char slow_req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    int before = handled();
    cr_assert(rawhttp_send(slow, slow_req, sizeof slow_req - 1));
    for (int i = 0; i < 1000 && handled() == before; i++) { /* the slow handler has started */
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_gt(handled(), before, "the slow handler never started");
    cr_assert(rawhttp_send(waiting, "\r\n", 2), "the waiting connection was closed while its thread was busy");
    char resp[4096];
    cr_assert_gt(rawhttp_read(slow, resp, sizeof resp, 5 * SLOW_MS), 0);
    cr_assert(strstr(resp, "200 OK") != NULL, "%s", resp);
    cr_assert_gt(rawhttp_read(waiting, resp, sizeof resp, 5000), 0, "the waiting connection got no answer");
    cr_assert(strstr(resp, "200 OK") != NULL, "%s", resp);
    cr_assert_eq(sf_httpd_cut_connections(d), 0);
    close(waiting);
    close(slow);
    sf_httpd_stop(d, 1000);
}

Test(httpd, slow_and_idle_clients_from_one_address_leave_health_answered_and_are_cut_at_the_deadline)
{
    enum { SLOW = 300, CAP = 16, DEADLINE = 1500 };
    sf_httpd *d = start(CAP, DEADLINE, NULL);
    int port = sf_httpd_port(d);
    /* One address opens far more connections than the server's limit of 256:
     * half of them trickle a header byte, the others say nothing. */
    int fds[SLOW];
    int open_ = rawhttp_slow_open("127.0.0.1", port, fds, SLOW);
    char resp[4096];
    const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int k = 0; k < 3; k++) {
        rawhttp_slow_trickle(fds, SLOW);
        int64_t ms = rawhttp_timed("127.0.0.2", port, health, resp, sizeof resp, 1000);
        cr_log_info("GET /health from another address with %d slow connections open: %lld ms", open_, (long long)ms);
        cr_assert(ms >= 0 && ms < 1000, "/health not answered within a second (%lld): %s", (long long)ms, resp);
        cr_assert(strstr(resp, "200 OK") != NULL, "%s", resp);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* The address itself got no more than its cap: the rest were refused. */
    int alive = 0;
    for (int i = 0; i < SLOW; i++)
        if (fds[i] >= 0 && !rawhttp_closed(fds[i], 0))
            alive++;
    cr_assert_leq(alive, CAP, "%d connections from one address are still open (cap %d)", alive, CAP);
    /* Past the deadline every slow or idle connection has been cut. */
    int64_t t0 = rawhttp_now_ms();
    for (int i = 0; i < SLOW; i++) {
        if (fds[i] < 0)
            continue;
        int left = (int)(DEADLINE + 1500 - (rawhttp_now_ms() - t0));
        cr_assert(rawhttp_closed(fds[i], left > 0 ? left : 0), "connection %d still open past the read deadline", i);
        close(fds[i]);
    }
    cr_assert_geq(sf_httpd_cut_connections(d), 1);
    sf_httpd_stop(d, 1000);
}

Test(httpd, a_complete_request_is_not_cut_and_keeps_alive_within_the_deadline)
{
    sf_httpd *d = start(4, 1000, NULL);
    int fd = rawhttp_dial("127.0.0.1", sf_httpd_port(d));
    cr_assert(fd >= 0);
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    char resp[4096];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        cr_assert_gt(rawhttp_read(fd, resp, sizeof resp, 2000), 0);
        cr_assert(strstr(resp, "200 OK") != NULL, "request %d on one connection: %s", i, resp);
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
    }
    close(fd);
    cr_assert_eq(sf_httpd_cut_connections(d), 0);
    sf_httpd_stop(d, 1000);
}

Test(httpd, a_hook_refuses_a_request_before_its_body_is_read)
{
    sf_httpd *d = start(4, 5000, need_key);
    int handled0 = g_seen.handled;
    int fd = rawhttp_dial("127.0.0.1", sf_httpd_port(d));
    /* Announce 500 KB and send none of it: the 401 comes without waiting. */
    const char req[] = "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\n"
                       "Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n";
    int64_t t0 = rawhttp_now_ms();
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char resp[4096];
    cr_assert_gt(rawhttp_read(fd, resp, sizeof resp, 2000), 0);
    cr_log_info("401 after %lld ms with no body sent", (long long)(rawhttp_now_ms() - t0));
    cr_assert(strstr(resp, "HTTP/1.1 401") == resp, "%s", resp);
    cr_assert(strstr(resp, "invalid API key") != NULL, "%s", resp);
    cr_assert_eq(g_seen.handled, handled0, "the handler ran");
    close(fd);
    /* The right key goes through to the handler. */
    fd = rawhttp_dial("127.0.0.1", sf_httpd_port(d));
    const char ok[] = "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
                      "Connection: close\r\nContent-Length: 2\r\n\r\n{}";
    cr_assert_eq(write(fd, ok, sizeof ok - 1), (ssize_t)(sizeof ok - 1));
    cr_assert_gt(rawhttp_read(fd, resp, sizeof resp, 2000), 0);
    cr_assert(strstr(resp, "HTTP/1.1 200") == resp, "%s", resp);
    close(fd);
    sf_httpd_stop(d, 1000);
}

Test(httpd, made_up_methods_are_labelled_other_and_responses_carry_the_safety_headers)
{
    cr_assert_str_eq(sf_httpd_method_label("GET"), "GET");
    cr_assert_str_eq(sf_httpd_method_label("DELETE"), "DELETE");
    cr_assert_str_eq(sf_httpd_method_label("get"), "other");
    cr_assert_str_eq(sf_httpd_method_label("FOO1"), "other");
    cr_assert_str_eq(sf_httpd_method_label(NULL), "other");
    sf_httpd *d = start(4, 5000, NULL);
    int fd = rawhttp_dial("127.0.0.1", sf_httpd_port(d));
    const char req[] = "BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char resp[4096];
    cr_assert_gt(rawhttp_read(fd, resp, sizeof resp, 2000), 0);
    close(fd);
    cr_assert(strstr(resp, "HTTP/1.1 405") == resp, "%s", resp);
    cr_assert(strstr(resp, "X-Content-Type-Options: nosniff\r\n") != NULL, "%s", resp);
    cr_assert(strstr(resp, "Cache-Control: no-store\r\n") != NULL, "%s", resp);
    /* on_done runs once the response is sent */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&g_seen.mu);
        int done = strcmp(g_seen.method, "other") == 0;
        pthread_mutex_unlock(&g_seen.mu);
        if (done)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_str_eq(g_seen.method, "other");
    sf_httpd_stop(d, 1000);
}

/* sf_httpd_route_match, the routing every request goes through (and what
 * fuzz_api drives over sf-api's table): first match wins, captures point
 * into the path, a path of another method's route lists the methods. */
Test(httpd, route_match_captures_segments_and_lists_other_methods)
{
    static const sf_httpd_route routes[] = {
        {"GET", "/v1/jobs/{id}", h_health},
        {"GET", "/v1/jobs/{id}/result", h_health},
        {"POST", "/v1/jobs/{id}/cancel", h_health},
        {"DELETE", "/v1/jobs/{id}", h_health},
        {"GET", "/", h_health},
    };
    sf_httpd_match m;
    sf_buf allow;
    sf_buf_init(&allow, 256);
    char path[64] = "/v1/jobs/abc/result";
    cr_assert_eq(sf_httpd_route_match(routes, 5, "GET", path, &m, &allow), &routes[1]);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(m.pname_len[0], 2);
    cr_assert_eq(strncmp(m.pname[0], "id", 2), 0);
    cr_assert_str_eq(m.pval[0], "abc");
    snprintf(path, sizeof path, "/v1/jobs/abc");
    cr_assert_null(sf_httpd_route_match(routes, 5, "PUT", path, &m, &allow));
    cr_assert_eq(m.nparams, 0);
    cr_assert_str_eq(sf_buf_str(&allow), "GET, DELETE");
    sf_buf_reset(&allow);
    snprintf(path, sizeof path, "/v1/jobs//cancel");
    cr_assert_null(sf_httpd_route_match(routes, 5, "POST", path, &m, &allow), "an empty capture is no match");
    cr_assert_str_eq(sf_buf_str(&allow), "");
    snprintf(path, sizeof path, "/");
    cr_assert_eq(sf_httpd_route_match(routes, 5, "GET", path, &m, NULL), &routes[4]);
    snprintf(path, sizeof path, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q");
    cr_assert_null(sf_httpd_route_match(routes, 5, "GET", path, &m, &allow), "more than 16 segments");
    sf_buf_destroy(&allow);
}

Test(httpd, a_json_string_of_any_bytes_is_valid_json_with_u_fffd_for_invalid_utf8)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "\"plain\""},
        {"q\"b\\n\n\r\t\x01", "\"q\\\"b\\\\n\\n\\r\\t\\u0001\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        {"a\xff\xfe"
         "b",
         "\"a\\ufffd\\ufffdb\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"cut \xe2\x82", "\"cut \\ufffd\\ufffd\""},               /* cut short by the end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sf_buf b;
        sf_buf_init(&b, 1024);
        cr_assert_eq(sf_httpd_json_string(&b, cases[i].in, NULL), SF_OK);
        cr_expect_str_eq(sf_buf_str(&b), cases[i].want, "case %zu", i);
        sf_buf_destroy(&b);
    }
}
