/*
 * httpd: an HTTP server over libmicrohttpd (the only module that includes
 * microhttpd.h), driven by a route table.
 *
 * The daemon runs an epoll listener with a pool of worker threads; each
 * connection has a memory limit (headers and read buffer; MHD answers 431
 * over it), the number of connections and their idle time are bounded. A
 * request body is accumulated up to max_body bytes (413 with a JSON body over
 * it, decided from Content-Length when given, else while reading). Then the
 * path is matched against the routes: patterns are literal segments and
 * "{name}" segments, each capturing one non-empty path segment; no match is
 * 404, a path that matches only with another method is 405 with an Allow
 * header, both with JSON bodies {"error": {"code", "message"}}. A handler
 * answers with one of the sf_httpd_reply* calls; one that does not reply gets
 * a 500.
 *
 * Slow and greedy clients: one address may hold at most per_client_limit
 * connections (more are refused at accept), and a connection must deliver a
 * whole request (headers and body) within read_deadline_ms of its opening or
 * of the end of its previous response, else it is cut; the handler's own time
 * and the sending of the response do not count. An on_headers hook runs once
 * a request's headers are in, before any body is read: it may answer (an
 * invalid API key, say), and then the body is never read and the route's
 * handler never runs.
 *
 * Every response carries X-Request-Id: the client's X-Request-Id when it is
 * 1..64 characters of [A-Za-z0-9._-], else 16 random hex digits, and
 * X-Content-Type-Options: nosniff and Cache-Control: no-store. When the
 * response has been sent (or the connection dropped after one was queued),
 * on_done reports method, route pattern, status and duration, on the thread
 * that served the request.
 *
 * Thread safety: handlers run on the pool threads, several at once; an
 * sf_httpd_req belongs to the one thread serving it. Ownership: strings from
 * the request accessors are borrowed until the handler returns; reply bodies
 * are copied (sf_httpd_reply) or taken over (sf_httpd_reply_buf).
 */
#ifndef SF_HTTPD_H
#define SF_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"

#define SF_HTTPD_MAX_PARAMS 4       /* "{name}" segments in one pattern */
#define SF_HTTPD_MAX_SEGMENTS 16    /* path segments matched */
#define SF_HTTPD_MAX_RESP_HEADERS 8 /* extra response headers */
#define SF_HTTPD_REQUEST_ID_MAX 65
#define SF_HTTPD_MAX_BODY_DEFAULT ((size_t)1 << 20)

typedef struct sf_httpd sf_httpd;
typedef struct sf_httpd_req sf_httpd_req;

typedef void (*sf_httpd_handler_fn)(sf_httpd_req *req, void *app);

typedef struct sf_httpd_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/jobs/{id}/result"; also the metrics label */
    sf_httpd_handler_fn fn;
} sf_httpd_route;

/* What on_done reports; strings borrowed for the call. */
typedef struct sf_httpd_done {
    const char *method; /* sf_httpd_method_label: a closed set */
    const char *route;  /* the matched pattern, or "unmatched" */
    const char *path;
    const char *request_id;
    int status;
    double duration_s; /* first byte of the request to the end of the response */
} sf_httpd_done;

typedef void (*sf_httpd_done_fn)(const sf_httpd_done *done, void *app);

typedef struct sf_httpd_opts {
    const char *bind_address;       /* IPv4 or IPv6 literal; NULL = "0.0.0.0" */
    int port;                       /* 0 = any free port (see sf_httpd_port) */
    unsigned threads;               /* pool threads; 0 = 4 */
    size_t max_body;                /* 0 = SF_HTTPD_MAX_BODY_DEFAULT */
    unsigned connection_limit;      /* 0 = 256 */
    unsigned timeout_s;             /* idle connection timeout; 0 = 30 */
    size_t connection_memory;       /* per connection; 0 = 64 KiB */
    unsigned per_client_limit;      /* connections from one IP address; 0 = 32 */
    unsigned read_deadline_ms;      /* to deliver a whole request; 0 = 10,000 */
    sf_httpd_handler_fn on_headers; /* headers in, body not read yet; may answer; may be NULL */
    sf_httpd_done_fn on_done;       /* may be NULL */
    void *app;                      /* passed to handlers and on_done */
} sf_httpd_opts;

/*
 * Validate the routes (method and pattern present, at most
 * SF_HTTPD_MAX_PARAMS captures, pattern starting with '/'), bind and start
 * serving. routes must outlive the daemon. SF_ERR_INVALID for a bad route or
 * address, SF_ERR_IO when the port cannot be bound.
 */
sf_status sf_httpd_start(const sf_httpd_route *routes, size_t n_routes, const sf_httpd_opts *opts, sf_httpd **out,
                         sf_err *err);

/* The port actually bound. */
int sf_httpd_port(const sf_httpd *httpd);

/* Stop accepting new connections; requests in flight go on. */
void sf_httpd_quiesce(sf_httpd *httpd);

/* Requests accepted and not yet finished. */
int64_t sf_httpd_in_flight(const sf_httpd *httpd);

/* Connections cut so far for reading a request past read_deadline_ms. */
int64_t sf_httpd_cut_connections(const sf_httpd *httpd);

/* Quiesce, wait up to grace_ms for requests in flight, then stop the threads
 * and free everything. Accepts NULL. */
void sf_httpd_stop(sf_httpd *httpd, int grace_ms);

/* What routing found for one path: the route (NULL: none) and its "{name}"
 * captures (names point into the route's pattern, values into the caller's
 * segment buffer). */
typedef struct sf_httpd_match {
    const sf_httpd_route *route;
    int nparams;
    const char *pname[SF_HTTPD_MAX_PARAMS];
    size_t pname_len[SF_HTTPD_MAX_PARAMS];
    const char *pval[SF_HTTPD_MAX_PARAMS];
} sf_httpd_match;

/*
 * Route method and path as the server does (pure; the server calls it for
 * every request). segbuf: a writable copy of the path, starting with '/',
 * split in place into at most SF_HTTPD_MAX_SEGMENTS segments (more: no
 * route). The first route whose pattern matches and whose method is method
 * wins; when none does, allow (may be NULL) gets the methods of the routes
 * whose pattern matches, ", "-separated, and m->nparams is 0. Returns
 * m->route.
 */
const sf_httpd_route *sf_httpd_route_match(const sf_httpd_route *routes, size_t n_routes, const char *method,
                                           char *segbuf, sf_httpd_match *m, sf_buf *allow);

/* ---- inside a handler ------------------------------------------------------ */

const char *sf_httpd_method(const sf_httpd_req *req);
const char *sf_httpd_path(const sf_httpd_req *req);
const char *sf_httpd_route_pattern(const sf_httpd_req *req);
const char *sf_httpd_request_id(const sf_httpd_req *req);

/* A "{name}" capture of the matched pattern; NULL when the pattern has none. */
const char *sf_httpd_param(const sf_httpd_req *req, const char *name);
/* A query-string argument (decoded); NULL when absent. */
const char *sf_httpd_query(const sf_httpd_req *req, const char *name);
/* The method as a metrics label: GET, HEAD, POST, PUT, DELETE, PATCH,
 * OPTIONS, or "other" for anything else a client sends (a closed set). */
const char *sf_httpd_method_label(const char *method);

/* Attach the application's data to the request (an on_headers hook hands
 * what it learnt to the handler this way); free_fn (may be NULL) is called on
 * it when the request ends or another ctx replaces it. */
void sf_httpd_set_ctx(sf_httpd_req *req, void *ctx, void (*free_fn)(void *));
void *sf_httpd_ctx(const sf_httpd_req *req);

/* A request header (case-insensitive name); NULL when absent. */
const char *sf_httpd_header(const sf_httpd_req *req, const char *name);
/* The request body (NUL-terminated; len may be NULL); "" when none. */
const char *sf_httpd_body(const sf_httpd_req *req, size_t *len);

/* Add a response header (copied); SF_ERR_LIMIT past SF_HTTPD_MAX_RESP_HEADERS. */
sf_status sf_httpd_set_header(sf_httpd_req *req, const char *name, const char *value, sf_err *err);

/* Answer with a copy of body. A second reply replaces the first. */
sf_status sf_httpd_reply(sf_httpd_req *req, int status, const char *content_type, const char *body, size_t len,
                         sf_err *err);
/* Answer with application/json, taking over body's memory (body is reset). */
sf_status sf_httpd_reply_buf(sf_httpd_req *req, int status, const char *content_type, sf_buf *body, sf_err *err);
/* Answer {"error": {"code": code, "message": message, "field": field}}
 * (field left out when NULL), as application/json. */
sf_status sf_httpd_reply_error(sf_httpd_req *req, int status, const char *code, const char *message, const char *field);

/* Append s to out as a JSON string literal, quotes included. A byte that
 * does not start a valid UTF-8 sequence (sf/utf8.h) becomes \ufffd, so the
 * literal is JSON whatever bytes s holds (a client's query value, say). */
sf_status sf_httpd_json_string(sf_buf *out, const char *s, sf_err *err);

#endif
