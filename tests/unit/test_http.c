/* http: redirects. A server on 127.0.0.1 (plain, or TLS with a certificate
 * made by `openssl req` for 127.0.0.1 and trusted through opts.ca_file)
 * answers /to-http with a redirect to the plain server's /ok, /to-https with
 * one to the TLS server's /ok, /loop with one to itself and /to-file with one
 * to file:. An https URL's redirect to http is refused, and so is an http
 * URL's with opts.https_only_redirects; https to https and, without the
 * option, http to http are followed. */
#include <criterion/criterion.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sf/http.h"

#include "../support/files.h"

typedef struct redirector {
    int fd, port;
    int plain_port; /* where /to-http points (its own port for a plain server) */
    int tls_port;   /* where /to-https points */
    SSL_CTX *tls;   /* NULL: plain HTTP */
    pthread_t thread;
    atomic_int stop;
    atomic_int ok_hits;  /* requests for /ok */
    atomic_int requests; /* all requests */
} redirector;

/* The reply to a request line "GET <path> ..." into out. */
static int reply_for(const redirector *r, const char *req, char *out, size_t size)
{
    if (strncmp(req, "GET /ok ", 8) == 0)
        return snprintf(out, size, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    char loc[128];
    if (strncmp(req, "GET /to-http ", 13) == 0)
        snprintf(loc, sizeof loc, "http://127.0.0.1:%d/ok", r->plain_port);
    else if (strncmp(req, "GET /to-https ", 14) == 0)
        snprintf(loc, sizeof loc, "https://127.0.0.1:%d/ok", r->tls_port);
    else if (strncmp(req, "GET /loop ", 10) == 0)
        snprintf(loc, sizeof loc, "/loop");
    else if (strncmp(req, "GET /to-file ", 13) == 0)
        snprintf(loc, sizeof loc, "file:///etc/hostname");
    else
        return snprintf(out, size, "HTTP/1.1 404 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return snprintf(out, size, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    loc);
}

static ssize_t conn_read(int c, SSL *ssl, char *buf, size_t n)
{
    return ssl ? SSL_read(ssl, buf, (int)n) : read(c, buf, n);
}

/* Read one request's headers on c (through ssl when not NULL), count it and answer it. */
static void answer(redirector *r, int c, SSL *ssl)
{
    char req[4096] = "", out[512];
    size_t got = 0;
    while (got < sizeof req - 1 && strstr(req, "\r\n\r\n") == NULL) {
        ssize_t n = conn_read(c, ssl, req + got, sizeof req - 1 - got);
        if (n <= 0)
            return;
        got += (size_t)n;
        req[got] = '\0';
    }
    atomic_fetch_add(&r->requests, 1);
    if (strncmp(req, "GET /ok ", 8) == 0)
        atomic_fetch_add(&r->ok_hits, 1);
    int k = reply_for(r, req, out, sizeof out);
    ssize_t w = ssl ? SSL_write(ssl, out, k) : write(c, out, (size_t)k);
    (void)w;
    if (ssl)
        SSL_shutdown(ssl);
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
        struct timeval tv = {.tv_sec = 5}; /* every read and write of a connection is bounded */
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SSL *ssl = r->tls ? SSL_new(r->tls) : NULL;
        if (ssl == NULL || (SSL_set_fd(ssl, c) == 1 && SSL_accept(ssl) == 1))
            answer(r, c, ssl);
        SSL_free(ssl);
        close(c);
    }
    return NULL;
}

/* Bind r (plain when tls is NULL); redirector_run starts its thread. */
static void redirector_listen(redirector *r, SSL_CTX *tls)
{
    memset(r, 0, sizeof *r);
    r->tls = tls;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(r->fd, 16), 0);
    cr_assert_eq(getsockname(r->fd, (struct sockaddr *)&a, &alen), 0);
    r->port = r->plain_port = r->tls_port = ntohs(a.sin_port);
}

static void redirector_run(redirector *r)
{
    cr_assert_eq(pthread_create(&r->thread, NULL, serve, r), 0);
}

static void redirector_start(redirector *r)
{
    redirector_listen(r, NULL);
    redirector_run(r);
}

static void redirector_stop(redirector *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->fd);
}

/* GET path on r with a client following redirects (https only when
 * https_only), trusting ca_file when not NULL (then over https). */
static sf_status get_from(redirector *r, const char *path, int https_only, const char *ca_file, sf_http_response *resp,
                          sf_err *err)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    sf_http_opts o = {.connect_timeout_ms = 2000,
                      .timeout_ms = 5000,
                      .follow_redirects = 1,
                      .https_only_redirects = https_only,
                      .ca_file = ca_file};
    sf_http *h = NULL;
    cr_assert_eq(sf_http_new(&o, &h, NULL), SF_OK);
    char url[96];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", r->tls ? "https" : "http", r->port, path);
    sf_http_response_init(resp);
    sf_status st = sf_http_request(h, "GET", url, NULL, NULL, 0, resp, err);
    sf_http_free(h);
    return st;
}

static sf_status get(redirector *r, const char *path, int https_only, sf_http_response *resp, sf_err *err)
{
    return get_from(r, path, https_only, NULL, resp, err);
}

/* A key and a certificate for 127.0.0.1 in dir (cert.pem, key.pem) and a
 * server context that uses them. */
static SSL_CTX *tls_context(const char *dir)
{
    char cmd[1024], cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null",
             key, cert);
    cr_assert_eq(system(cmd), 0, "openssl req failed: %s", cmd);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    return ctx;
}

/* A TLS server and a plain one that point at each other; ca gets the CA file. */
static void start_pair(redirector *tls, redirector *plain, char *dir, size_t size, char *ca, size_t ca_size)
{
    sf_testenv_tmpdir(dir, size);
    snprintf(ca, ca_size, "%s/cert.pem", dir);
    redirector_listen(tls, tls_context(dir));
    redirector_listen(plain, NULL);
    tls->plain_port = plain->port;
    plain->tls_port = tls->port;
    redirector_run(tls);
    redirector_run(plain);
}

static void stop_pair(redirector *tls, redirector *plain, const char *dir)
{
    redirector_stop(tls);
    redirector_stop(plain);
    SSL_CTX_free(tls->tls);
    sf_testenv_rmtree(dir);
}

Test(http, an_https_redirect_to_https_is_followed)
{
    redirector tls, plain;
    char dir[64], ca[96];
    start_pair(&tls, &plain, dir, sizeof dir, ca, sizeof ca);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get_from(&tls, "/to-https", 0, ca, &resp, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(sf_buf_str(&resp.body), "ok");
    cr_assert_eq(atomic_load(&tls.ok_hits), 1);
    sf_http_response_destroy(&resp);
    stop_pair(&tls, &plain, dir);
}

Test(http, an_https_redirect_to_http_is_refused)
{
    redirector tls, plain;
    char dir[64], ca[96];
    start_pair(&tls, &plain, dir, sizeof dir, ca, sizeof ca);
    sf_http_response resp;
    sf_err err = {0};
    cr_assert_eq(get_from(&tls, "/to-http", 0, ca, &resp, &err), SF_ERR_INVALID, "%s", err.msg);
    char want[160];
    snprintf(want, sizeof want,
             "could not follow a redirect from https://127.0.0.1:%d: only https is allowed after an https URL",
             tls.port);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    cr_assert_eq(atomic_load(&tls.requests), 1);
    cr_assert_eq(atomic_load(&plain.requests), 0, "the http server was never asked");
    sf_http_response_destroy(&resp);
    stop_pair(&tls, &plain, dir);
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
