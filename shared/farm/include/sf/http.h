/*
 * http: an HTTP(S) client over libcurl (the only module that includes curl.h).
 *
 * One sf_http wraps one CURL easy handle, reused across requests (keep-alive)
 * by one thread at a time. Every request has a connect timeout and a total
 * timeout, and a response body larger than max_body is cut off with
 * SF_ERR_LIMIT. The HTTP status is a result, not an error: a 404 or 500 comes
 * back as SF_OK with status set; only transport failures are errors.
 *
 * Address policy: with opts.policy set, every connection (redirects
 * included) is checked by sf_netpolicy_check on the exact socket address
 * libcurl is about to connect to, after resolution, in libcurl's
 * opensocket callback: a refused address gets no socket, so no DNS answer,
 * rebinding or numeric spelling of a host can reach it. Proxies from the
 * environment are then ignored (a proxy would connect on the client's
 * behalf).
 *
 * Redirects (opts.follow_redirects): at most SF_HTTP_MAX_REDIRECTS, to http
 * or https only; from an https URL (or with opts.https_only_redirects) to
 * https only, so a redirect never downgrades to plain http. A refused
 * redirect fails with SF_ERR_INVALID ("could not follow a redirect from
 * ...: only https is allowed ..."), too many with SF_ERR_INVALID too.
 *
 * Messages name a URL by its origin only, scheme://host[:port] (see
 * sf_http_url_origin): the user info, path and query may hold tokens.
 *
 * Errors: SF_ERR_TIMEOUT (a deadline passed), SF_ERR_UNAVAILABLE (could not
 * resolve or connect), SF_ERR_LIMIT (body over max_body), SF_ERR_INVALID (a
 * malformed URL, a scheme other than http/https, a refused redirect, too
 * many redirects, or every address tried refused by the policy: none of them
 * is worth a retry), SF_ERR_HTTP (any
 * other transport failure: TLS, protocol), SF_ERR_NOMEM.
 *
 * Thread safety: call sf_http_global_init once in main before threads start.
 * An sf_http is used by one thread at a time; different handles are
 * independent. Ownership: sf_http_new / sf_http_free; an sf_http_response is
 * caller storage (_init/_destroy) whose body the caller owns; opts.policy is
 * borrowed and must outlive the sf_http.
 */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include <stddef.h>

#include "sf/buf.h"
#include "sf/err.h"
#include "sf/netpolicy.h"

#define SF_HTTP_MAX_BODY_DEFAULT ((size_t)64 << 20)
#define SF_HTTP_MAX_HEADERS 16
#define SF_HTTP_MAX_REDIRECTS 5
#define SF_HTTP_CONTENT_TYPE_MAX 128
#define SF_HTTP_ORIGIN_MAX 320 /* "https://" + a 253-byte host + ":65535" */

typedef struct sf_http sf_http;

typedef struct sf_http_opts {
    long connect_timeout_ms;    /* 0 = 5000 */
    long timeout_ms;            /* whole request; 0 = 30000 */
    size_t max_body;            /* response bytes; 0 = SF_HTTP_MAX_BODY_DEFAULT */
    const char *user_agent;     /* NULL = "signal-factory" */
    int follow_redirects;       /* follow up to SF_HTTP_MAX_REDIRECTS redirects, see "Redirects" */
    int https_only_redirects;   /* redirects to https only, even from an http URL */
    const char *ca_file;        /* PEM file of the CAs to trust instead of the system's; NULL = the system's */
    const sf_netpolicy *policy; /* NULL = connect anywhere; else see "Address policy" */
} sf_http_opts;

typedef struct sf_http_response {
    long status;                                 /* 200, 404, ...; 0 before a reply */
    char content_type[SF_HTTP_CONTENT_TYPE_MAX]; /* "" when none */
    sf_buf body;                                 /* NUL-terminated; len excludes it */
} sf_http_response;

/* curl_global_init; once, before threads. */
sf_status sf_http_global_init(sf_err *err);
void sf_http_global_cleanup(void);

sf_status sf_http_new(const sf_http_opts *opts, sf_http **out, sf_err *err);
void sf_http_free(sf_http *http);

void sf_http_response_init(sf_http_response *resp);
void sf_http_response_destroy(sf_http_response *resp);

/*
 * One request. method "GET", "POST", ...; headers NULL or up to
 * SF_HTTP_MAX_HEADERS "Name: value" strings, NULL-terminated; body may be
 * NULL (no body). resp is reset first; on SF_ERR_LIMIT it keeps the status and
 * the first max_body bytes.
 */
sf_status sf_http_request(sf_http *http, const char *method, const char *url, const char *const *headers,
                          const char *body, size_t body_len, sf_http_response *resp, sf_err *err);

/*
 * The origin of url for messages and logs: "scheme://host[:port]" (the port
 * only when the URL names one; no user info, path, query or fragment),
 * lower-case scheme; a URL without a scheme is read as http, as a request
 * does. "(invalid URL)" when url does not parse. Always NUL-terminates out
 * (size > 0), truncating a longer origin.
 */
void sf_http_url_origin(const char *url, char *out, size_t size);

/*
 * Check, before it is stored, a URL a connection will later be made to on
 * a user's behalf (a schedule's webhook): an absolute http or https URL
 * with a host, whose host is an address policy p allows (sf_netpolicy_check)
 * or a name every address of which p allows. A literal address in any
 * spelling (127.1, 2130706433, 0x7f000001, [::ffff:127.0.0.1]) is judged
 * by the address it is; a name is resolved (getaddrinfo, on the calling
 * thread) and one that does not resolve now is accepted (the connection's
 * own check, at each connect, is what keeps DNS answers honest).
 * SF_ERR_INVALID with a message naming the URL by its origin only.
 */
sf_status sf_http_url_check(const char *url, const sf_netpolicy *p, sf_err *err);

#endif
