/*
 * opsd: the operations endpoints every program serves to Prometheus and
 * Kubernetes: GET /metrics (Prometheus text format 0.0.4), /health and
 * /ready.
 *
 * sf-api serves them on its own port (its routes call sf_opsd_reply_metrics
 * and sf_opsd_metrics_allowed); sf-worker and sf-scheduler, which have no
 * HTTP server, start a small listener of their own (sf_opsd_start, over
 * sf/httpd.h, one pool thread) on METRICS_PORT:
 *   /health   200 {"status":"ok"} while the process runs;
 *   /ready    200 {"status":"ready","database":"ok","redis":"ok"} when
 *             PostgreSQL answers SELECT 1, Redis answers PING and the
 *             program's own check (opts.ready, e.g. the worker claims) passes;
 *             else 503 {"error":{"code":"not_ready","message":<reason>,...}};
 *   /metrics  opts.refresh(app) (set gauges), then the registry and the
 *             process metrics; with a METRICS_TOKEN, 401 unless the request
 *             carries Authorization: Bearer <token> (compared by SHA-256 in
 *             constant time; the token itself is not kept).
 * The readiness connections are the listener's own, opened on first use and
 * dropped after a failure (the next probe opens them again), with short
 * timeouts (PostgreSQL: 2 s connect, 2 s statement; Redis: 1 s), so a probe
 * answers within a few seconds whatever the outage.
 *
 * Thread safety: the listener's callbacks run on its one pool thread;
 * refresh and ready must only touch state that is safe to read from another
 * thread (the registry has its own mutex). Ownership: opts' strings and the
 * registry are borrowed and must outlive the listener.
 */
#ifndef SF_OPSD_H
#define SF_OPSD_H

#include <stddef.h>

#include "sf/auth.h"
#include "sf/err.h"
#include "sf/httpd.h"
#include "sf/metrics.h"

/* The /metrics token: locked = a token is set. */
typedef struct sf_opsd_token {
    int locked;
    unsigned char hash[SF_AUTH_HASH_BYTES];
} sf_opsd_token;

/* token NULL or "" = /metrics open. */
sf_status sf_opsd_token_init(sf_opsd_token *t, const char *token, sf_err *err);

/* 1 when the request may read /metrics (open, or the right Bearer token). */
int sf_opsd_metrics_allowed(const sf_opsd_token *t, sf_httpd_req *req);

/* Answer GET /metrics: 401 (with WWW-Authenticate: Bearer) when not allowed;
 * else 200 with m rendered (may be NULL), then the process metrics
 * (start_time: Unix seconds). A failure to render is a 500. */
void sf_opsd_reply_metrics(sf_httpd_req *req, const sf_opsd_token *t, sf_metrics *m, double start_time);

typedef struct sf_opsd sf_opsd;

typedef struct sf_opsd_opts {
    const char *bind_address;  /* NULL or "" = "0.0.0.0" */
    int port;                  /* 1..65535 (0: any free port, see sf_opsd_port) */
    const char *metrics_token; /* NULL or "" = /metrics open */
    const char *database_url;  /* /ready pings these */
    const char *redis_url;
    sf_metrics *metrics; /* may be NULL: process metrics only */
    double start_time;   /* Unix seconds, for process_start_time_seconds */
    void (*refresh)(void *app);
    /* 1 when the program itself is ready; else 0 with a short reason in
     * reason (size bytes). May be NULL. */
    int (*ready)(void *app, char *reason, size_t size);
    void *app;
} sf_opsd_opts;

/* Bind and serve. SF_ERR_IO when the port cannot be bound, SF_ERR_INVALID
 * for a bad address or token. */
sf_status sf_opsd_start(const sf_opsd_opts *opts, sf_opsd **out, sf_err *err);

/* The port actually bound. */
int sf_opsd_port(const sf_opsd *o);

/* Stop serving (requests in flight get up to a second) and free everything.
 * Accepts NULL. */
void sf_opsd_stop(sf_opsd *o);

#endif
