/* http: libcurl client; see sf/http.h. */
#include "sf/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/socket.h>

struct sf_http {
    CURL *curl;
    sf_http_opts opts;
    char errbuf[CURL_ERROR_SIZE];
    /* per request, from the opensocket callback (the request's thread) */
    int opened;                   /* sockets opened */
    int https_only;               /* redirects may go to https only */
    char refused[SF_ERR_MSG_MAX]; /* why the first refused address was refused; "" = none */
};

/* Per-request write state. */
typedef struct sink {
    sf_buf *body;
    int over; /* the body went over its maximum */
} sink;

sf_status sf_http_global_init(sf_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not initialise libcurl");
    return SF_OK;
}

void sf_http_global_cleanup(void)
{
    curl_global_cleanup();
}

sf_status sf_http_new(const sf_http_opts *opts, sf_http **out, sf_err *err)
{
    sf_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    h->opts = opts ? *opts : (sf_http_opts){0};
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = 5000;
    if (h->opts.timeout_ms <= 0)
        h->opts.timeout_ms = 30000;
    if (h->opts.max_body == 0)
        h->opts.max_body = SF_HTTP_MAX_BODY_DEFAULT;
    if (h->opts.user_agent == NULL)
        h->opts.user_agent = "signal-factory";
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        free(h);
        return sf_err_set(err, SF_ERR_NOMEM, "could not create a curl handle");
    }
    *out = h;
    return SF_OK;
}

void sf_http_free(sf_http *http)
{
    if (http == NULL)
        return;
    curl_easy_cleanup(http->curl);
    free(http);
}

void sf_http_response_init(sf_http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    sf_buf_init(&resp->body, 0);
}

void sf_http_response_destroy(sf_http_response *resp)
{
    if (resp)
        sf_buf_destroy(&resp->body);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    sink *s = user;
    size_t n = size * nmemb;
    if (sf_buf_append(s->body, ptr, n, NULL) != SF_OK) {
        s->over = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

/* libcurl's opensocket callback under a policy: a socket only for an
 * allowed address, so nothing connects to any other. */
static curl_socket_t open_checked(void *user, curlsocktype purpose, struct curl_sockaddr *a)
{
    sf_http *h = user;
    sf_err err = {0};
    sf_status st = purpose == CURLSOCKTYPE_IPCXN
                       ? sf_netpolicy_check(h->opts.policy, &a->addr, a->addrlen, &err)
                       : sf_err_set(&err, SF_ERR_INVALID, "a socket other than an IP connection");
    if (st == SF_OK) {
        curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        h->opened += fd != CURL_SOCKET_BAD;
        return fd;
    }
    if (h->refused[0] == '\0')
        snprintf(h->refused, sizeof h->refused, "%s", err.msg);
    return CURL_SOCKET_BAD;
}

/* The address policy, when there is one: checked sockets, no proxy. */
static int set_policy(sf_http *h)
{
    if (h->opts.policy == NULL)
        return 1;
    CURL *c = h->curl;
    int ok = curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, h) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK;
    return ok;
}

/* url's scheme, lower case, into out ("" when url does not parse; a URL
 * without a scheme is read as http, as a request does). */
static void url_scheme(const char *url, char *out, size_t size)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int ok = u != NULL &&
             curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME | CURLU_GUESS_SCHEME) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK && scheme != NULL;
    snprintf(out, size, "%s", ok ? scheme : "");
    curl_free(scheme);
    curl_url_cleanup(u);
}

static int is_https(const char *url)
{
    char scheme[16];
    url_scheme(url, scheme, sizeof scheme);
    return strcasecmp(scheme, "https") == 0;
}

static sf_status set_common(sf_http *h, const char *method, const char *url, sink *s, struct curl_slist *hdrs,
                            const char *body, size_t body_len)
{
    CURL *c = h->curl;
    curl_easy_reset(c);
    int ok = curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->opts.timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_USERAGENT, h->opts.user_agent) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    h->https_only = h->opts.https_only_redirects || is_https(url);
    ok &= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, h->https_only ? "https" : "http,https") == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, h->opts.follow_redirects ? 1L : 0L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)SF_HTTP_MAX_REDIRECTS) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opts.max_body) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEDATA, s) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
    if (body != NULL) {
        ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK;
        ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) == CURLE_OK;
    } else if (strcmp(method, "GET") == 0) {
        ok &= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    }
    if (h->opts.ca_file != NULL)
        ok &= curl_easy_setopt(c, CURLOPT_CAINFO, h->opts.ca_file) == CURLE_OK;
    ok &= set_policy(h);
    return ok ? SF_OK : SF_ERR_INTERNAL;
}

/* curl's result as an sf_status with a message naming the URL's origin. */
static sf_status map_result(sf_http *h, CURLcode rc, const sink *s, const char *full_url, sf_err *err)
{
    const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
    char url[SF_HTTP_ORIGIN_MAX];
    sf_http_url_origin(full_url, url, sizeof url);
    if (h->refused[0] && h->opened == 0 && rc == CURLE_COULDNT_CONNECT)
        return sf_err_set(err, SF_ERR_INVALID, "could not connect to %s: %s", url, h->refused);
    if (s->over || rc == CURLE_FILESIZE_EXCEEDED)
        return sf_err_set(err, SF_ERR_LIMIT, "response from %s is larger than %zu bytes", url, h->opts.max_body);
    char scheme[16];
    url_scheme(full_url, scheme, sizeof scheme);
    int own_scheme_ok = strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0;
    if (rc == CURLE_UNSUPPORTED_PROTOCOL && h->opts.follow_redirects && h->https_only && own_scheme_ok)
        return sf_err_set(err, SF_ERR_INVALID, "could not follow a redirect from %s: only https is allowed%s (%s)", url,
                          h->opts.https_only_redirects ? "" : " after an https URL", why);
    if (rc == CURLE_TOO_MANY_REDIRECTS)
        return sf_err_set(err, SF_ERR_INVALID, "request to %s was redirected more than %d times", url,
                          SF_HTTP_MAX_REDIRECTS);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return sf_err_set(err, SF_ERR_TIMEOUT, "request to %s timed out: %s", url, why);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT: return sf_err_set(err, SF_ERR_INVALID, "bad URL %s: %s", url, why);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return sf_err_set(err, SF_ERR_UNAVAILABLE, "could not connect to %s: %s", url, why);
    default: return sf_err_set(err, SF_ERR_HTTP, "request to %s failed: %s", url, why);
    }
}

static sf_status build_headers(const char *const *headers, struct curl_slist **out, sf_err *err)
{
    *out = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (i >= SF_HTTP_MAX_HEADERS) {
            curl_slist_free_all(*out);
            *out = NULL;
            return sf_err_set(err, SF_ERR_LIMIT, "more than %d request headers", SF_HTTP_MAX_HEADERS);
        }
        struct curl_slist *next = curl_slist_append(*out, headers[i]);
        if (next == NULL) {
            curl_slist_free_all(*out);
            *out = NULL;
            return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        }
        *out = next;
    }
    return SF_OK;
}

static void take_content_type(sf_http *h, sf_http_response *resp)
{
    char *ct = NULL;
    if (curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
}

sf_status sf_http_request(sf_http *http, const char *method, const char *url, const char *const *headers,
                          const char *body, size_t body_len, sf_http_response *resp, sf_err *err)
{
    sf_buf_destroy(&resp->body);
    sf_http_response_init(resp);
    sf_buf_init(&resp->body, http->opts.max_body);
    struct curl_slist *hdrs = NULL;
    sf_status st = build_headers(headers, &hdrs, err);
    if (st != SF_OK)
        return st;
    sink s = {&resp->body, 0};
    http->errbuf[0] = '\0';
    http->refused[0] = '\0';
    http->opened = 0;
    if (set_common(http, method, url, &s, hdrs, body, body_len) != SF_OK) {
        curl_slist_free_all(hdrs);
        char origin[SF_HTTP_ORIGIN_MAX];
        sf_http_url_origin(url, origin, sizeof origin);
        return sf_err_set(err, SF_ERR_INTERNAL, "could not set up a request to %s", origin);
    }
    CURLcode rc = curl_easy_perform(http->curl);
    curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    take_content_type(http, resp);
    curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc == CURLE_OK ? SF_OK : map_result(http, rc, &s, url, err);
}

/* One part of u ("" when absent); 1 when there. */
static int url_part(CURLU *u, CURLUPart what, char *out, size_t size)
{
    char *part = NULL;
    int ok = curl_url_get(u, what, &part, 0) == CURLUE_OK && part != NULL;
    snprintf(out, size, "%s", ok ? part : "");
    curl_free(part);
    return ok;
}

void sf_http_url_origin(const char *url, char *out, size_t size)
{
    if (size == 0)
        return;
    CURLU *u = curl_url();
    char scheme[32], host[SF_HTTP_ORIGIN_MAX], port[16];
    if (u == NULL || url == NULL ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME | CURLU_GUESS_SCHEME) != CURLUE_OK ||
        !url_part(u, CURLUPART_SCHEME, scheme, sizeof scheme)) {
        curl_url_cleanup(u);
        snprintf(out, size, "(invalid URL)");
        return;
    }
    url_part(u, CURLUPART_HOST, host, sizeof host);
    int has_port = url_part(u, CURLUPART_PORT, port, sizeof port);
    curl_url_cleanup(u);
    snprintf(out, size, "%s://%s%s%s", scheme, host, has_port ? ":" : "", has_port ? port : "");
}

/* Every address host resolves to is allowed by p; SF_OK when it does not resolve. */
static sf_status host_allowed(const char *host, const char *origin, const sf_netpolicy *p, sf_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return SF_OK;
    sf_status st = SF_OK;
    for (struct addrinfo *a = res; a != NULL && st == SF_OK; a = a->ai_next) {
        sf_err why = {0};
        if (sf_netpolicy_check(p, a->ai_addr, a->ai_addrlen, &why) != SF_OK)
            st = sf_err_set(err, SF_ERR_INVALID, "%s: %s", origin, why.msg);
    }
    freeaddrinfo(res);
    return st;
}

sf_status sf_http_url_check(const char *url, const sf_netpolicy *p, sf_err *err)
{
    char origin[SF_HTTP_ORIGIN_MAX], scheme[16], host[SF_HTTP_ORIGIN_MAX];
    CURLU *u = curl_url();
    int ok = u != NULL && url != NULL && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
             url_part(u, CURLUPART_SCHEME, scheme, sizeof scheme) && url_part(u, CURLUPART_HOST, host, sizeof host);
    curl_url_cleanup(u);
    sf_http_url_origin(url, origin, sizeof origin);
    if (!ok || host[0] == '\0')
        return sf_err_set(err, SF_ERR_INVALID, "not an absolute URL with a host (http://host/path)");
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
        return sf_err_set(err, SF_ERR_INVALID, "%s: only http and https URLs are allowed", origin);
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') { /* an IPv6 literal, without its brackets */
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    return host_allowed(host, origin, p, err);
}
