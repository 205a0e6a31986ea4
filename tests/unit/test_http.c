/* http: redirects. A server on 127.0.0.1 answers /to-http with a redirect to
 * its own http /ok, /loop with a redirect to itself and /to-file with a
 * redirect to file:. A redirect from https to http is refused by the same
 * mechanism (libcurl's allowed redirect protocols, "https" only) that
 * opts.https_only_redirects turns on for an http URL; a local TLS server
 * would need a CA the client trusts, so the https -> http case is shown with
 * the option on an http URL: the http -> http redirect it refuses is the one
 * an https URL refuses without the option. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sf/http.h"

typedef struct redirector {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    atomic_int ok_hits;   /* requests for /ok */
    atomic_int requests;  /* all requests */
} redirector;

/* The reply to a request line "GET <path> ..." into out. */
static int reply_for(const redirector *r, const char *req, char *out, size_t size)
{
    if (strncmp(req, "GET /ok ", 8) == 0)
        return snprintf(out, size, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    const char *to = strncmp(req, "GET /to-http ", 13) == 0 ? "http://127.0.0.1:%d/ok"
                     : strncmp(req, "GET /loop ", 10) == 0   ? "/loop"
                     : strncmp(req, "GET /to-file ", 13) == 0 ? "file:///etc/hostname"
                                                              : NULL;
    if (to == NULL)
        return snprintf(out, size, "HTTP/1.1 404 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    char loc[128];
    snprintf(loc, sizeof loc, to, r->port);
    return snprintf(out, size, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    loc);
}

static void *serve(void *arg)
{
    redirector *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096] = "", out[512];
        size_t got = 0;
        struct pollfd q = {.fd = c, .events = POLLIN};
        while (got < sizeof req - 1 && strstr(req, "\r\n\r\n") == NULL && poll(&q, 1, 5000) > 0) {
            ssize_t n = read(c, req + got, sizeof req - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
        }
        atomic_fetch_add(&r->requests, 1);
        if (strncmp(req, "GET /ok ", 8) == 0)
            atomic_fetch_add(&r->ok_hits, 1);
        int k = reply_for(r, req, out, sizeof out);
        ssize_t w = write(c, out, (size_t)k);
        (void)w;
        close(c);
    }
    return NULL;
}

static void redirector_start(redirector *r)
{
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(r->fd, 16), 0);
    cr_assert_eq(getsockname(r->fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&r->thread, NULL, serve, r), 0);
}

static void redirector_stop(redirector *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->fd);
}

/* GET path on r with a client following redirects (https only when https_only). */
static sf_status get(redirector *r, const char *path, int https_only, sf_http_response *resp, sf_err *err)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    sf_http_opts o = {.connect_timeout_ms = 2000, .timeout_ms = 5000, .follow_redirects = 1,
                      .https_only_redirects = https_only};
    sf_http *h = NULL;
    cr_assert_eq(sf_http_new(&o, &h, NULL), SF_OK);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", r->port, path);
    sf_http_response_init(resp);
    sf_status st = sf_http_request(h, "GET", url, NULL, NULL, 0, resp, err);
    sf_http_free(h);
    return st;
}

Test(http, an_http_redirect_is_followed_when_http_is_allowed)
{
    redirector r;
    redirector_start(&r);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get(&r, "/to-http", 0, &resp, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(sf_buf_str(&resp.body), "ok");
    cr_assert_eq(atomic_load(&r.ok_hits), 1);
    sf_http_response_destroy(&resp);
    redirector_stop(&r);
}

Test(http, an_http_redirect_is_refused_when_only_https_redirects_are_allowed)
{
    redirector r;
    redirector_start(&r);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get(&r, "/to-http", 1, &resp, &err), SF_ERR_INVALID, "%s", err.msg);
    char want[128];
    snprintf(want, sizeof want, "could not follow a redirect from http://127.0.0.1:%d: only https is allowed", r.port);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    cr_assert_eq(atomic_load(&r.ok_hits), 0, "the http target was never asked");
    cr_assert_eq(atomic_load(&r.requests), 1);
    sf_http_response_destroy(&resp);
    redirector_stop(&r);
}

Test(http, redirects_are_capped)
{
    redirector r;
    redirector_start(&r);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get(&r, "/loop", 0, &resp, &err), SF_ERR_INVALID, "%s", err.msg);
    char want[128];
    snprintf(want, sizeof want, "request to http://127.0.0.1:%d was redirected more than %d times", r.port,
             SF_HTTP_MAX_REDIRECTS);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(atomic_load(&r.requests), SF_HTTP_MAX_REDIRECTS + 1);
    sf_http_response_destroy(&resp);
    redirector_stop(&r);
}

Test(http, a_redirect_to_another_scheme_is_refused)
{
    redirector r;
    redirector_start(&r);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get(&r, "/to-file", 0, &resp, &err), SF_ERR_INVALID, "%s", err.msg);
    cr_assert_eq(resp.body.len, 0, "nothing of the file was read");
    cr_assert(strstr(err.msg, "file") != NULL, "%s", err.msg);
    sf_http_response_destroy(&resp);
    redirector_stop(&r);
}
