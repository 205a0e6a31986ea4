/*
 * webhook: signed delivery of a live signal to a schedule's webhook URL.
 *
 * Payload (JSON, one object, keys in this order):
 *   {"schedule_id": 12, "job_id": "<uuid>", "symbol": "BTC-USD",
 *    "timeframe": "1m", "bar_time": "2024-01-02T03:04:00Z",
 *    "signal": "enter", "side": "long", "logic": "sma-cross"}
 * schedule_id is null without a schedule; side is "long", "short" or null
 * (flat). A receiver dedupes by job_id: delivery is at least once.
 *
 * Signature: HMAC-SHA256 (OpenSSL EVP_MAC), keyed with the schedule's secret,
 * over "<timestamp>.<body>" where timestamp is the Unix time in seconds at
 * which the attempt is sent; headers
 *   X-SF-Timestamp: <timestamp>
 *   X-SF-Signature: sha256=<64 lower-case hex digits>
 * Receivers recompute it, compare in constant time and reject old
 * timestamps. Without a secret the request carries no signature header.
 *
 * Delivery: POST with Content-Type application/json through an sf_http
 * (its connect and total timeouts), up to opts.attempts attempts, sleeping
 * backoff_ms, then 2 * backoff_ms, ... between them; each attempt is signed
 * afresh. A network error, a timeout, a 5xx, 408 or 429 is retried; any
 * other non-2xx is final at once (the receiver rejected the request), and so
 * is a URL the sf_http refuses (SF_ERR_INVALID: not http/https, malformed,
 * or an address its policy refuses; see sf/http.h). The outcome is a result
 * in sf_webhook_report, not an error; its error names the URL by its origin
 * only (scheme://host[:port]), never its path or query.
 *
 * Thread safety: pure functions; sf_webhook_deliver uses only the sf_http
 * given (one per thread) and sleeps on the calling thread.
 * Ownership: caller storage throughout; strings are borrowed for the call.
 */
#ifndef SF_WEBHOOK_H
#define SF_WEBHOOK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"
#include "sf/http.h"

#define SF_WEBHOOK_SIG_HEX 65 /* 64 hex digits + NUL */
#define SF_WEBHOOK_ATTEMPTS_MAX 10
#define SF_WEBHOOK_ERROR_MAX 256
#define SF_WEBHOOK_PAYLOAD_MAX 4096 /* bytes of a payload */

typedef struct sf_webhook_signal {
    int64_t schedule_id; /* 0 = none (null) */
    const char *job_id;
    const char *symbol;
    const char *timeframe;
    int64_t bar_time;   /* Unix seconds */
    const char *signal; /* "enter", "exit", "hold", "flat" */
    int side;           /* +1 long, -1 short, 0 none (null) */
    const char *logic;  /* the logic's name */
} sf_webhook_signal;

typedef struct sf_webhook_opts {
    int attempts;           /* 1 .. SF_WEBHOOK_ATTEMPTS_MAX; 0 = 3 */
    int64_t backoff_ms;     /* before the 2nd attempt, doubling; 0 = 500 */
    const atomic_int *stop; /* non-zero: make no further attempt; may be NULL */
} sf_webhook_opts;

typedef struct sf_webhook_report {
    int attempts;                     /* attempts made */
    int delivered;                    /* 1: a 2xx was received */
    long http_status;                 /* status of the last attempt; 0 when none came back */
    char error[SF_WEBHOOK_ERROR_MAX]; /* why not delivered; "" when delivered */
} sf_webhook_report;

/* Append the payload of s to out (SF_ERR_INVALID for a missing string). */
sf_status sf_webhook_payload(const sf_webhook_signal *s, sf_buf *out, sf_err *err);

/* hex = lower-case hex of HMAC-SHA256(secret, "<timestamp>.<body>"). */
sf_status sf_webhook_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                          char hex[SF_WEBHOOK_SIG_HEX], sf_err *err);

/*
 * POST body (len bytes) to url, signed with secret (NULL or "" = unsigned),
 * with retries as above; opts may be NULL. SF_OK whenever attempts were made
 * (see rep); SF_ERR_INVALID for a missing URL, SF_ERR_NOMEM.
 */
sf_status sf_webhook_deliver(sf_http *http, const char *url, const char *secret, const char *body, size_t len,
                             const sf_webhook_opts *opts, sf_webhook_report *rep, sf_err *err);

#endif
