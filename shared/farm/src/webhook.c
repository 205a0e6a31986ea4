/* webhook: payload, HMAC-SHA256 signature and delivery with retries; see
 * sf/webhook.h. The HMAC is OpenSSL's EVP_MAC; no hand-written crypto. */
#include "sf/webhook.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sf/time.h"

#define DEFAULT_ATTEMPTS 3
#define DEFAULT_BACKOFF_MS 500
#define HEADER_MAX 128

/* ---- payload ------------------------------------------------------------ */

/* A JSON string: quotes, backslashes and control characters escaped. */
static sf_status json_string(sf_buf *out, const char *s, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "\"", err);
    for (const unsigned char *p = (const unsigned char *)s; *p && st == SF_OK; p++) {
        if (*p == '"' || *p == '\\')
            st = sf_buf_printf(out, err, "\\%c", *p);
        else if (*p < 0x20)
            st = sf_buf_printf(out, err, "\\u%04x", *p);
        else
            st = sf_buf_append(out, p, 1, err);
    }
    return st == SF_OK ? sf_buf_puts(out, "\"", err) : st;
}

static sf_status key_string(sf_buf *out, const char *key, const char *value, sf_err *err)
{
    sf_status st = sf_buf_printf(out, err, ",\"%s\":", key);
    return st == SF_OK ? json_string(out, value, err) : st;
}

sf_status sf_webhook_payload(const sf_webhook_signal *s, sf_buf *out, sf_err *err)
{
    if (!s->job_id || !s->symbol || !s->timeframe || !s->signal || !s->logic)
        return sf_err_set(err, SF_ERR_INVALID, "webhook payload: a field is missing");
    char bar[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(s->bar_time, bar, sizeof bar);
    sf_status st = s->schedule_id > 0 ? sf_buf_printf(out, err, "{\"schedule_id\":%" PRId64, s->schedule_id)
                                      : sf_buf_puts(out, "{\"schedule_id\":null", err);
    if (st == SF_OK)
        st = key_string(out, "job_id", s->job_id, err);
    if (st == SF_OK)
        st = key_string(out, "symbol", s->symbol, err);
    if (st == SF_OK)
        st = key_string(out, "timeframe", s->timeframe, err);
    if (st == SF_OK)
        st = key_string(out, "bar_time", bar, err);
    if (st == SF_OK)
        st = key_string(out, "signal", s->signal, err);
    if (st == SF_OK)
        st = s->side == 0 ? sf_buf_puts(out, ",\"side\":null", err)
                          : key_string(out, "side", s->side > 0 ? "long" : "short", err);
    if (st == SF_OK)
        st = key_string(out, "logic", s->logic, err);
    return st == SF_OK ? sf_buf_puts(out, "}", err) : st;
}

/* ---- signature ---------------------------------------------------------- */

static sf_status hmac_sha256(const char *key, const char *prefix, const char *body, size_t len, unsigned char mac[32],
                             sf_err *err)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t out_len = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, strlen(prefix)) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 && EVP_MAC_final(ctx, mac, &out_len, 32) == 1 &&
             out_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    return ok ? SF_OK : sf_err_set(err, SF_ERR_INTERNAL, "could not compute HMAC-SHA256");
}

sf_status sf_webhook_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                          char hex[SF_WEBHOOK_SIG_HEX], sf_err *err)
{
    static const char digits[] = "0123456789abcdef";
    char prefix[32];
    unsigned char mac[32];
    snprintf(prefix, sizeof prefix, "%" PRId64 ".", timestamp);
    hex[0] = '\0';
    sf_status st = hmac_sha256(secret ? secret : "", prefix, body ? body : "", body ? len : 0, mac, err);
    if (st != SF_OK)
        return st;
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[64] = '\0';
    return SF_OK;
}

/* ---- delivery ----------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int retryable(long status)
{
    return status >= 500 || status == 408 || status == 429;
}

/* One signed POST; fills rep->http_status / rep->error. 1 = delivered, 0 =
 * retry, -1 = final failure. */
static int attempt(sf_http *http, const char *url, const char *secret, const char *body, size_t len,
                   sf_webhook_report *rep, sf_err *err)
{
    int64_t now = sf_time_now_ms() / 1000;
    char ts_h[HEADER_MAX], sig_h[HEADER_MAX], hex[SF_WEBHOOK_SIG_HEX];
    snprintf(ts_h, sizeof ts_h, "X-SF-Timestamp: %" PRId64, now);
    const char *headers[4] = {"Content-Type: application/json", ts_h, NULL, NULL};
    if (secret && secret[0]) {
        if (sf_webhook_sign(secret, now, body, len, hex, err) != SF_OK)
            return snprintf(rep->error, sizeof rep->error, "%.200s", err ? err->msg : "hmac"), -1;
        snprintf(sig_h, sizeof sig_h, "X-SF-Signature: sha256=%s", hex);
        headers[2] = sig_h;
    }
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err herr = {0};
    sf_status st = sf_http_request(http, "POST", url, headers, body, len, &resp, &herr);
    rep->http_status = resp.status;
    sf_http_response_destroy(&resp);
    long code = rep->http_status;
    if (st == SF_OK && code >= 200 && code < 300)
        return 1;
    if (st != SF_OK && st != SF_ERR_LIMIT)
        snprintf(rep->error, sizeof rep->error, "%.200s", herr.msg);
    else
        snprintf(rep->error, sizeof rep->error, "receiver answered HTTP %ld", code);
    if (st == SF_ERR_NOMEM || st == SF_ERR_INVALID) /* a bad URL or a refused address stays so */
        return -1;
    return st != SF_OK && st != SF_ERR_LIMIT ? 0 : (retryable(code) ? 0 : -1);
}

sf_status sf_webhook_deliver(sf_http *http, const char *url, const char *secret, const char *body, size_t len,
                             const sf_webhook_opts *opts, sf_webhook_report *rep, sf_err *err)
{
    memset(rep, 0, sizeof *rep);
    if (url == NULL || url[0] == '\0' || http == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "webhook: no URL");
    int max = opts && opts->attempts > 0 ? opts->attempts : DEFAULT_ATTEMPTS;
    if (max > SF_WEBHOOK_ATTEMPTS_MAX)
        max = SF_WEBHOOK_ATTEMPTS_MAX;
    int64_t backoff = opts && opts->backoff_ms > 0 ? opts->backoff_ms : DEFAULT_BACKOFF_MS;
    const atomic_int *stop = opts ? opts->stop : NULL;
    for (;;) {
        rep->attempts++;
        int r = attempt(http, url, secret, body, len, rep, err);
        if (r > 0) {
            rep->delivered = 1;
            rep->error[0] = '\0';
            return SF_OK;
        }
        if (r < 0 || rep->attempts >= max || (stop && atomic_load(stop)))
            return SF_OK;
        sleep_ms(backoff);
        backoff *= 2;
    }
}
