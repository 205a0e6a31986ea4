/*
 * httpd: libmicrohttpd adapter; see sf/httpd.h.
 *
 * DESIGN. MHD calls the access handler several times per request: once when
 * the headers are in (we set up an sf_httpd_req and may refuse an announced
 * over-size body at once), once per chunk of body (accumulated into req->body,
 * or discarded once over max_body), and once more with no data, when we route
 * and run the handler. The handler's reply is stored in the request and queued
 * by the adapter, so there is one place that builds MHD responses and adds
 * the request id. MHD's "request completed" notification reports the request
 * (on_done) and frees it, so durations include sending the response.
 *
 * Slow clients. MHD's own timeout counts only silence, so a client sending
 * one header byte a second holds its connection for ever. Every connection is
 * tracked (MHD's connection notifications) with the time it started waiting
 * for a request: its opening, or the end of its previous response. Once the
 * request's headers and body are in, the clock stops until the response has
 * been sent. A watchdog thread looks at the tracked connections a few times a
 * second and shuts down (shutdown(2), which MHD then sees as the peer
 * leaving) every one that has been reading for longer than read_deadline_ms.
 * Time its serving thread spent in callbacks (a handler storing a big sweep
 * for seconds) does not count: a connection waiting behind its own thread is
 * not a slow client. Each MHD thread adds up its busy time (serve_thread,
 * found through a pthread key), and a connection notes that sum when its
 * clock starts.
 * The tracking list and the cut flags are guarded by httpd->mu; a
 * connection's reading clock is an atomic its serving thread writes. MHD
 * closes a socket only after the CLOSED notification, which unlinks it under
 * mu, so the watchdog never shuts down a descriptor that has been reused. With
 * the per-client cap, one address cannot take all the connections either.
 */
#include "sf/httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sf/utf8.h"

/* One MHD serving thread's time in callbacks, for the watchdog. Written by
 * its thread, read by the watchdog. */
typedef struct serve_thread {
    struct serve_thread *next;      /* guarded by sf_httpd.mu */
    atomic_int_fast64_t busy_since; /* monotonic ms; 0 = not in a callback */
    atomic_int_fast64_t busy_total; /* ms spent in finished callbacks */
} serve_thread;

/* One open connection, for the watchdog. */
typedef struct conn_track {
    struct conn_track *prev, *next; /* guarded by sf_httpd.mu */
    int fd;
    int cut;                           /* shut down by the watchdog; guarded by mu */
    serve_thread *owner;               /* the thread serving it; NULL if unknown */
    atomic_int_fast64_t reading_since; /* monotonic ms; 0 = not reading a request */
    atomic_int_fast64_t busy_mark;     /* the owner's busy time when the clock started */
} conn_track;

struct sf_httpd {
    struct MHD_Daemon *mhd;
    const sf_httpd_route *routes;
    size_t n_routes;
    sf_httpd_opts opts;
    int port;
    atomic_int_fast64_t in_flight;
    atomic_int_fast64_t cut; /* connections cut by the watchdog */
    int quiesced;
    pthread_mutex_t mu; /* guards conns, conn_track.cut, threads, stopping */
    pthread_cond_t wake;
    conn_track *conns;
    serve_thread *threads; /* freed once MHD's threads are gone */
    pthread_key_t thread_key;
    int stopping;
    pthread_t watchdog;
};

struct sf_httpd_req {
    sf_httpd *d;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from MHD for the request */
    char *path;         /* copy of the path */
    char *segbuf;       /* path split into segments */
    sf_httpd_match m;   /* the route; captures into route->pattern and segbuf */
    sf_buf body;
    int over; /* body went over max_body */
    struct timespec t0;
    char request_id[SF_HTTPD_REQUEST_ID_MAX];
    /* the reply */
    int status; /* 0 = none yet */
    sf_buf resp;
    char content_type[64];
    int nhdr;
    char *hdr_name[SF_HTTPD_MAX_RESP_HEADERS];
    char *hdr_val[SF_HTTPD_MAX_RESP_HEADERS];
    int queued_status; /* what was sent; 0 = nothing */
    char *allow;       /* no route: the methods the path has, or NULL */
    void *ctx;         /* the application's, see sf_httpd_set_ctx */
    void (*ctx_free)(void *);
};

/* ---- JSON helpers ------------------------------------------------------------ */

sf_status sf_httpd_json_string(sf_buf *out, const char *s, sf_err *err)
{
    static const char HEX[] = "0123456789abcdef";
    sf_status st = sf_buf_append(out, "\"", 1, err);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && st == SF_OK; p++) {
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (*p) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (*p >= 0x80) { /* a client's bytes: invalid UTF-8 becomes U+FFFD, so the body stays JSON */
                size_t len = sf_utf8_len(p);
                st = len ? sf_buf_append(out, p, len, err) : sf_buf_append(out, "\\ufffd", 6, err);
                p += len ? len - 1 : 0;
                continue;
            }
            if (*p >= 0x20) {
                st = sf_buf_append(out, p, 1, err);
                continue;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = HEX[*p >> 4];
            esc[5] = HEX[*p & 15];
            n = 6;
        }
        st = sf_buf_append(out, esc, n, err);
    }
    return st == SF_OK ? sf_buf_append(out, "\"", 1, err) : st;
}

/* ---- replies ------------------------------------------------------------------ */

sf_status sf_httpd_set_header(sf_httpd_req *req, const char *name, const char *value, sf_err *err)
{
    if (req->nhdr >= SF_HTTPD_MAX_RESP_HEADERS)
        return sf_err_set(err, SF_ERR_LIMIT, "more than %d response headers", SF_HTTPD_MAX_RESP_HEADERS);
    char *n = strdup(name), *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    req->hdr_name[req->nhdr] = n;
    req->hdr_val[req->nhdr++] = v;
    return SF_OK;
}

sf_status sf_httpd_reply(sf_httpd_req *req, int status, const char *content_type, const char *body, size_t len,
                         sf_err *err)
{
    sf_buf_reset(&req->resp);
    sf_status st = sf_buf_append(&req->resp, body ? body : "", body ? len : 0, err);
    if (st != SF_OK)
        return st;
    req->status = status;
    snprintf(req->content_type, sizeof req->content_type, "%s", content_type ? content_type : "application/json");
    return SF_OK;
}

sf_status sf_httpd_reply_buf(sf_httpd_req *req, int status, const char *content_type, sf_buf *body, sf_err *err)
{
    (void)err;
    sf_buf_destroy(&req->resp);
    req->resp = *body;
    req->resp.max = SIZE_MAX;
    sf_buf_init(body, body->max);
    req->status = status;
    snprintf(req->content_type, sizeof req->content_type, "%s", content_type ? content_type : "application/json");
    return SF_OK;
}

sf_status sf_httpd_reply_error(sf_httpd_req *req, int status, const char *code, const char *message, const char *field)
{
    sf_buf b;
    sf_buf_init(&b, 64 * 1024);
    sf_status st = sf_buf_puts(&b, "{\"error\":{\"code\":", NULL);
    if (st == SF_OK)
        st = sf_httpd_json_string(&b, code, NULL);
    if (st == SF_OK)
        st = sf_buf_puts(&b, ",\"message\":", NULL);
    if (st == SF_OK)
        st = sf_httpd_json_string(&b, message, NULL);
    if (st == SF_OK && field != NULL) {
        st = sf_buf_puts(&b, ",\"field\":", NULL);
        if (st == SF_OK)
            st = sf_httpd_json_string(&b, field, NULL);
    }
    if (st == SF_OK)
        st = sf_buf_puts(&b, "}}\n", NULL);
    if (st != SF_OK) {
        sf_buf_destroy(&b);
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"error too long\"}}\n";
        return sf_httpd_reply(req, status, "application/json", fallback, sizeof fallback - 1, NULL);
    }
    return sf_httpd_reply_buf(req, status, "application/json", &b, NULL);
}

/* ---- accessors ------------------------------------------------------------------ */

const char *sf_httpd_method(const sf_httpd_req *req)
{
    return req->method;
}
const char *sf_httpd_path(const sf_httpd_req *req)
{
    return req->path;
}
const char *sf_httpd_request_id(const sf_httpd_req *req)
{
    return req->request_id;
}

const char *sf_httpd_route_pattern(const sf_httpd_req *req)
{
    return req->m.route ? req->m.route->pattern : "unmatched";
}

const char *sf_httpd_param(const sf_httpd_req *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->m.nparams; i++)
        if (req->m.pname_len[i] == n && memcmp(req->m.pname[i], name, n) == 0)
            return req->m.pval[i];
    return NULL;
}

const char *sf_httpd_query(const sf_httpd_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *sf_httpd_header(const sf_httpd_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void sf_httpd_set_ctx(sf_httpd_req *req, void *ctx, void (*free_fn)(void *))
{
    if (req->ctx_free != NULL)
        req->ctx_free(req->ctx);
    req->ctx = ctx;
    req->ctx_free = free_fn;
}

void *sf_httpd_ctx(const sf_httpd_req *req)
{
    return req->ctx;
}

const char *sf_httpd_method_label(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; method != NULL && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

const char *sf_httpd_body(const sf_httpd_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return sf_buf_str(&req->body);
}

/* ---- routing ----------------------------------------------------------------------- */

/* Split segbuf (a path) into segments (after the leading '/'). Returns the
 * count, or -1 when there are too many. */
static int split_path(char *segbuf, const char **segs)
{
    char *p = segbuf + 1;
    int n = 0;
    for (;;) {
        if (n >= SF_HTTPD_MAX_SEGMENTS)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            return n;
        *slash = '\0';
        p = slash + 1;
    }
}

/* Does pattern match the segments? Fills the captures of m when it does. */
static int match_pattern(sf_httpd_match *m, const char *pattern, const char *const *segs, int nseg)
{
    const char *p = pattern + 1;
    int np = 0;
    for (int i = 0; i < nseg; i++) {
        if (p == NULL)
            return 0;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            if (segs[i][0] == '\0' || np >= SF_HTTPD_MAX_PARAMS)
                return 0;
            m->pname[np] = p + 1;
            m->pname_len[np] = len - 2;
            m->pval[np++] = segs[i];
        } else if (strlen(segs[i]) != len || memcmp(segs[i], p, len) != 0) {
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    if (p != NULL)
        return 0;
    m->nparams = np;
    return 1;
}

const sf_httpd_route *sf_httpd_route_match(const sf_httpd_route *routes, size_t n_routes, const char *method,
                                           char *segbuf, sf_httpd_match *m, sf_buf *allow)
{
    const char *segs[SF_HTTPD_MAX_SEGMENTS];
    memset(m, 0, sizeof *m);
    int nseg = split_path(segbuf, segs);
    if (nseg < 0)
        return NULL;
    for (size_t i = 0; i < n_routes; i++) {
        const sf_httpd_route *r = &routes[i];
        if (!match_pattern(m, r->pattern, segs, nseg))
            continue;
        if (strcmp(r->method, method) == 0)
            return m->route = r;
        if (allow != NULL && allow->len > 0)
            sf_buf_puts(allow, ", ", NULL);
        if (allow != NULL)
            sf_buf_puts(allow, r->method, NULL);
    }
    m->nparams = 0;
    return NULL;
}

/* Route once the headers are in (the on_headers hook and the metrics see
 * the route); a path that exists only for other methods keeps their list. */
static void route(sf_httpd_req *req)
{
    sf_buf allow;
    sf_buf_init(&allow, 256);
    sf_httpd_route_match(req->d->routes, req->d->n_routes, req->method, req->segbuf, &req->m, &allow);
    if (req->m.route == NULL && allow.len > 0)
        req->allow = sf_buf_steal(&allow, NULL);
    sf_buf_destroy(&allow);
}

static void dispatch(sf_httpd_req *req)
{
    if (req->m.route != NULL) {
        req->m.route->fn(req, req->d->opts.app);
        if (req->status == 0)
            sf_httpd_reply_error(req, 500, "internal", "the handler gave no response", NULL);
    } else if (req->allow != NULL) {
        sf_httpd_set_header(req, "Allow", req->allow, NULL);
        char msg[384];
        snprintf(msg, sizeof msg, "method %s is not allowed here (allowed: %s)", req->method, req->allow);
        sf_httpd_reply_error(req, 405, "method_not_allowed", msg, NULL);
    } else {
        sf_httpd_reply_error(req, 404, "not_found", "no such resource", NULL);
    }
}

/* ---- MHD glue ------------------------------------------------------------------------ */

static int request_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= SF_HTTPD_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static void set_request_id(sf_httpd_req *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (request_id_ok(given)) {
        snprintf(req->request_id, sizeof req->request_id, "%s", given);
        return;
    }
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t t = (uint64_t)req->t0.tv_nsec ^ ((uint64_t)req->t0.tv_sec << 20) ^ (uint64_t)(uintptr_t)req;
        memcpy(r, &t, sizeof r);
    }
    snprintf(req->request_id, sizeof req->request_id, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
             r[5], r[6], r[7]);
}

static void req_free(sf_httpd_req *req)
{
    if (req == NULL)
        return;
    if (req->ctx_free != NULL)
        req->ctx_free(req->ctx);
    free(req->path);
    free(req->segbuf);
    free(req->allow);
    sf_buf_destroy(&req->body);
    sf_buf_destroy(&req->resp);
    for (int i = 0; i < req->nhdr; i++) {
        free(req->hdr_name[i]);
        free(req->hdr_val[i]);
    }
    free(req);
}

static sf_httpd_req *req_new(sf_httpd *d, struct MHD_Connection *conn, const char *url, const char *method)
{
    sf_httpd_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &req->t0);
    req->d = d;
    req->conn = conn;
    req->method = method;
    req->path = strdup(url);
    req->segbuf = strdup(url);
    sf_buf_init(&req->body, d->opts.max_body);
    sf_buf_init(&req->resp, SIZE_MAX);
    if (req->path == NULL || req->segbuf == NULL || url[0] != '/') {
        req_free(req);
        return NULL;
    }
    set_request_id(req);
    return req;
}

static enum MHD_Result queue_reply(sf_httpd_req *req)
{
    size_t len = 0;
    char *data = sf_buf_steal(&req->resp, &len);
    struct MHD_Response *r = data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)
                                  : MHD_create_response_from_buffer(0, (void *)(uintptr_t) "", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", req->content_type);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    for (int i = 0; i < req->nhdr; i++)
        MHD_add_response_header(r, req->hdr_name[i], req->hdr_val[i]);
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned int)req->status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        req->queued_status = req->status;
    return ret;
}

static void reply_too_large(sf_httpd_req *req)
{
    char msg[128];
    snprintf(msg, sizeof msg, "request body is larger than %zu bytes", req->d->opts.max_body);
    sf_httpd_reply_error(req, 413, "body_too_large", msg, NULL);
}

/* First call: set up; refuse an announced over-size body at once. */
static enum MHD_Result on_first(sf_httpd *d, struct MHD_Connection *conn, const char *url, const char *method,
                                void **con_cls)
{
    sf_httpd_req *req = req_new(d, conn, url, method);
    if (req == NULL)
        return MHD_NO;
    *con_cls = req;
    atomic_fetch_add(&d->in_flight, 1);
    route(req);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL && strtoull(cl, NULL, 10) > d->opts.max_body) {
        req->over = 1;
        reply_too_large(req);
        return queue_reply(req);
    }
    if (d->opts.on_headers != NULL) {
        d->opts.on_headers(req, d->opts.app);
        if (req->status != 0) /* refused before its body was read */
            return queue_reply(req);
    }
    return MHD_YES;
}

static conn_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1; /* never 0 */
}

/* The calling MHD thread's record, made on its first callback (NULL when
 * memory is short: its connections are then timed as before). */
static serve_thread *serve_thread_of(sf_httpd *d)
{
    serve_thread *s = pthread_getspecific(d->thread_key);
    if (s != NULL)
        return s;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    atomic_init(&s->busy_since, 0);
    atomic_init(&s->busy_total, 0);
    if (pthread_setspecific(d->thread_key, s) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&d->mu);
    s->next = d->threads;
    d->threads = s;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* Milliseconds the thread has spent in callbacks, the current one included. */
static int64_t busy_ms(serve_thread *s, int64_t now)
{
    int64_t since = atomic_load(&s->busy_since);
    return atomic_load(&s->busy_total) + (since != 0 && now > since ? now - since : 0);
}

/* The connection starts waiting for a request: its read clock starts. */
static void start_reading(conn_track *t)
{
    int64_t now = mono_ms();
    atomic_store(&t->busy_mark, t->owner ? busy_ms(t->owner, now) : 0);
    atomic_store(&t->reading_since, now);
}

/* The request is whole: its connection's read clock stops. */
static void stop_reading(struct MHD_Connection *conn)
{
    conn_track *t = track_of(conn);
    if (t != NULL)
        atomic_store(&t->reading_since, 0);
}

static enum MHD_Result serve(sf_httpd *d, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    sf_httpd_req *req = *con_cls;
    if (req == NULL)
        return on_first(d, conn, url, method, con_cls);
    if (*upload_data_size > 0) {
        if (!req->over && sf_buf_append(&req->body, upload_data, *upload_data_size, NULL) != SF_OK)
            req->over = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->queued_status != 0)
        return MHD_YES;
    stop_reading(conn);
    if (req->over)
        reply_too_large(req);
    else
        dispatch(req);
    return queue_reply(req);
}

/* MHD's request callback: serve, with the thread's time in it added up. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    sf_httpd *d = cls;
    serve_thread *s = serve_thread_of(d);
    int64_t t0 = mono_ms();
    if (s != NULL)
        atomic_store(&s->busy_since, t0);
    enum MHD_Result r = serve(d, conn, url, method, upload_data, upload_data_size, con_cls);
    if (s != NULL) {
        atomic_fetch_add(&s->busy_total, mono_ms() - t0);
        atomic_store(&s->busy_since, 0);
    }
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    sf_httpd *d = cls;
    conn_track *t = track_of(conn);
    if (t != NULL) /* waiting for the next request on this connection */
        start_reading(t);
    sf_httpd_req *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (req->queued_status != 0 && d->opts.on_done != NULL) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sf_httpd_done done = {
            .method = sf_httpd_method_label(req->method),
            .route = sf_httpd_route_pattern(req),
            .path = req->path,
            .request_id = req->request_id,
            .status = req->queued_status,
            .duration_s = (double)(t1.tv_sec - req->t0.tv_sec) + (double)(t1.tv_nsec - req->t0.tv_nsec) / 1e9,
        };
        d->opts.on_done(&done, d->opts.app);
    }
    req_free(req);
    atomic_fetch_sub(&d->in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    sf_httpd *d = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track *t = calloc(1, sizeof *t);
        if (t == NULL || ci == NULL) { /* untracked: MHD's idle timeout still applies */
            free(t);
            return;
        }
        t->fd = ci->connect_fd;
        t->owner = serve_thread_of(d); /* MHD notifies in the thread that serves it */
        atomic_init(&t->reading_since, 0);
        atomic_init(&t->busy_mark, 0);
        start_reading(t);
        pthread_mutex_lock(&d->mu);
        t->next = d->conns;
        if (d->conns)
            d->conns->prev = t;
        d->conns = t;
        pthread_mutex_unlock(&d->mu);
        *socket_context = t;
        return;
    }
    conn_track *t = *socket_context;
    if (t == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        d->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&d->mu);
    free(t);
    *socket_context = NULL;
}

/* Cut every connection that has been reading a request for too long, not
 * counting the time its thread was busy in callbacks. Called with d->mu held. */
static void cut_slow(sf_httpd *d, int64_t now)
{
    for (conn_track *t = d->conns; t != NULL; t = t->next) {
        int64_t since = atomic_load(&t->reading_since);
        if (since == 0 || t->cut)
            continue;
        int64_t waited = now - since;
        if (t->owner != NULL)
            waited -= busy_ms(t->owner, now) - atomic_load(&t->busy_mark);
        if (waited > (int64_t)d->opts.read_deadline_ms) {
            shutdown(t->fd, SHUT_RDWR);
            t->cut = 1;
            atomic_fetch_add(&d->cut, 1);
        }
    }
}

static void *watchdog_main(void *arg)
{
    sf_httpd *d = arg;
    int64_t tick = d->opts.read_deadline_ms / 4 < 250 ? d->opts.read_deadline_ms / 4 : 250;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(tick > 0 ? tick : 1) * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!d->stopping && pthread_cond_timedwait(&d->wake, &d->mu, &until) == 0) {
        }
        if (!d->stopping)
            cut_slow(d, mono_ms());
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static sf_status watchdog_start(sf_httpd *d, sf_err *err)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return sf_err_set(err, SF_ERR_NOMEM, "could not create the connection watchdog");
    pthread_mutex_init(&d->mu, NULL);
    if (pthread_create(&d->watchdog, NULL, watchdog_main, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->mu);
        return sf_err_set(err, SF_ERR_NOMEM, "could not start the connection watchdog");
    }
    pthread_setname_np(d->watchdog, "httpd-watchdog");
    return SF_OK;
}

static void watchdog_stop(sf_httpd *d)
{
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->watchdog, NULL);
}

/* Once the watchdog and MHD's threads are gone: the threads' records, the
 * key and the lock. */
static void free_threads(sf_httpd *d)
{
    for (serve_thread *s = d->threads, *next; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    d->threads = NULL;
    pthread_key_delete(d->thread_key);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->mu);
}

int64_t sf_httpd_cut_connections(const sf_httpd *httpd)
{
    return atomic_load(&httpd->cut);
}

/* ---- daemon ------------------------------------------------------------------------------ */

static sf_status check_routes(const sf_httpd_route *routes, size_t n, sf_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const sf_httpd_route *r = &routes[i];
        if (r->method == NULL || r->pattern == NULL || r->fn == NULL || r->pattern[0] != '/')
            return sf_err_set(err, SF_ERR_INVALID, "route %zu: method, pattern (from /) and handler required", i);
        int captures = 0;
        for (const char *p = r->pattern; *p; p++)
            captures += *p == '{';
        if (captures > SF_HTTPD_MAX_PARAMS)
            return sf_err_set(err, SF_ERR_INVALID, "route %s: more than %d captures", r->pattern, SF_HTTPD_MAX_PARAMS);
    }
    return SF_OK;
}

static void apply_defaults(sf_httpd_opts *o)
{
    if (o->bind_address == NULL)
        o->bind_address = "0.0.0.0";
    if (o->threads == 0)
        o->threads = 4;
    if (o->max_body == 0)
        o->max_body = SF_HTTPD_MAX_BODY_DEFAULT;
    if (o->connection_limit == 0)
        o->connection_limit = 256;
    if (o->timeout_s == 0)
        o->timeout_s = 30;
    if (o->connection_memory == 0)
        o->connection_memory = 64 * 1024;
    if (o->per_client_limit == 0)
        o->per_client_limit = 32;
    if (o->read_deadline_ms == 0)
        o->read_deadline_ms = 10000;
}

/* The bind address as a sockaddr; *v6 set for IPv6. */
static sf_status make_addr(const sf_httpd_opts *o, struct sockaddr_storage *ss, int *v6, sf_err *err)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (o->port < 0 || o->port > 65535)
        return sf_err_set(err, SF_ERR_INVALID, "port %d out of range", o->port);
    *v6 = strchr(o->bind_address, ':') != NULL;
    if (!*v6 && inet_pton(AF_INET, o->bind_address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)o->port);
        return SF_OK;
    }
    if (*v6 && inet_pton(AF_INET6, o->bind_address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)o->port);
        return SF_OK;
    }
    return sf_err_set(err, SF_ERR_INVALID, "bind address \"%s\" is not an IP address", o->bind_address);
}

sf_status sf_httpd_start(const sf_httpd_route *routes, size_t n_routes, const sf_httpd_opts *opts, sf_httpd **out,
                         sf_err *err)
{
    sf_status st = check_routes(routes, n_routes, err);
    if (st != SF_OK)
        return st;
    sf_httpd *d = calloc(1, sizeof *d);
    if (d == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    d->routes = routes;
    d->n_routes = n_routes;
    d->opts = opts ? *opts : (sf_httpd_opts){0};
    apply_defaults(&d->opts);
    atomic_init(&d->in_flight, 0);
    atomic_init(&d->cut, 0);
    struct sockaddr_storage ss;
    int v6 = 0;
    if ((st = make_addr(&d->opts, &ss, &v6, err)) != SF_OK)
        goto fail;
    if (pthread_key_create(&d->thread_key, NULL) != 0) {
        st = sf_err_set(err, SF_ERR_NOMEM, "could not create the serving threads' key");
        goto fail;
    }
    if ((st = watchdog_start(d, err)) != SF_OK) {
        pthread_key_delete(d->thread_key);
        goto fail;
    }
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | (v6 ? MHD_USE_IPv6 : 0);
    d->mhd = MHD_start_daemon(flags, (uint16_t)d->opts.port, NULL, NULL, on_access, d, MHD_OPTION_SOCK_ADDR, &ss,
                              MHD_OPTION_THREAD_POOL_SIZE, d->opts.threads, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              d->opts.connection_memory, MHD_OPTION_CONNECTION_LIMIT, d->opts.connection_limit,
                              MHD_OPTION_CONNECTION_TIMEOUT, d->opts.timeout_s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, d->opts.per_client_limit, MHD_OPTION_NOTIFY_COMPLETED,
                              on_completed, d, MHD_OPTION_NOTIFY_CONNECTION, on_connection, d, MHD_OPTION_END);
    if (d->mhd == NULL) {
        watchdog_stop(d);
        free_threads(d);
        st = sf_err_set(err, SF_ERR_IO, "could not listen on %s port %d",
                        opts && opts->bind_address ? opts->bind_address : "0.0.0.0", opts ? opts->port : 0);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? (int)info->port : d->opts.port;
    *out = d;
    return SF_OK;
fail:
    free(d);
    return st;
}

int sf_httpd_port(const sf_httpd *httpd)
{
    return httpd->port;
}

void sf_httpd_quiesce(sf_httpd *httpd)
{
    if (httpd->quiesced)
        return;
    httpd->quiesced = 1;
    MHD_socket s = MHD_quiesce_daemon(httpd->mhd);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

int64_t sf_httpd_in_flight(const sf_httpd *httpd)
{
    return atomic_load(&httpd->in_flight);
}

void sf_httpd_stop(sf_httpd *httpd, int grace_ms)
{
    if (httpd == NULL)
        return;
    sf_httpd_quiesce(httpd);
    for (int waited = 0; waited < grace_ms && sf_httpd_in_flight(httpd) > 0; waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    watchdog_stop(httpd);
    MHD_stop_daemon(httpd->mhd);
    free_threads(httpd);
    free(httpd);
}
