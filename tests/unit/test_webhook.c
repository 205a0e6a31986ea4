/* webhook: the payload text, the HMAC-SHA256 signature (checked against
 * values from `openssl dgst -sha256 -hmac`), and delivery with retries
 * against a receiver on 127.0.0.1. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sf/time.h"
#include "sf/webhook.h"

#include "../support/hookrecv.h"

Test(webhook, payload_has_every_field_in_order_with_nulls_for_none)
{
    sf_webhook_signal s = {.schedule_id = 12, .job_id = "0b8f4a52-0000-4000-8000-000000000001",
                           .symbol = "BTC-USD", .timeframe = "1m", .bar_time = 1704164640,
                           .signal = "enter", .side = -1, .logic = "sma \"x\"\n"};
    sf_buf b;
    sf_buf_init(&b, 4096);
    cr_assert_eq(sf_webhook_payload(&s, &b, NULL), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b),
                     "{\"schedule_id\":12,\"job_id\":\"0b8f4a52-0000-4000-8000-000000000001\","
                     "\"symbol\":\"BTC-USD\",\"timeframe\":\"1m\",\"bar_time\":\"2024-01-02T03:04:00Z\","
                     "\"signal\":\"enter\",\"side\":\"short\",\"logic\":\"sma \\\"x\\\"\\u000a\"}");
    sf_buf_reset(&b);
    s.schedule_id = 0;
    s.side = 0;
    s.logic = "l";
    cr_assert_eq(sf_webhook_payload(&s, &b, NULL), SF_OK);
    cr_assert(strstr(sf_buf_str(&b), "{\"schedule_id\":null,") == sf_buf_str(&b));
    cr_assert_not_null(strstr(sf_buf_str(&b), "\"side\":null,"));
    s.symbol = NULL;
    cr_assert_eq(sf_webhook_payload(&s, &b, NULL), SF_ERR_INVALID);
    sf_buf_destroy(&b);
}

Test(webhook, signature_is_hmac_sha256_of_timestamp_dot_body)
{
    char hex[SF_WEBHOOK_SIG_HEX];
    cr_assert_eq(sf_webhook_sign("s3cret", 1700000000, "{\"a\":1}", 7, hex, NULL), SF_OK);
    cr_assert_str_eq(hex, "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940");
    cr_assert_eq(sf_webhook_sign("s3cret", 1700000000, "", 0, hex, NULL), SF_OK);
    cr_assert_str_eq(hex, "21948100f1d7a89f3338f6b1106fc4f7a702fbe1493b833a3382f80193bde3fe");
}

static sf_http *client(void)
{
    sf_http *h = NULL;
    sf_http_opts o = {.connect_timeout_ms = 1000, .timeout_ms = 2000};
    cr_assert_eq(sf_http_new(&o, &h, NULL), SF_OK);
    return h;
}

static void url_of(const hookrecv *r, char *buf, size_t size)
{
    snprintf(buf, size, "http://127.0.0.1:%d/hook", r->port);
}

Test(webhook, delivered_request_carries_a_verifiable_signature)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv r;
    hookrecv_start(&r, 204);
    char url[64];
    url_of(&r, url, sizeof url);
    sf_http *h = client();
    const char *body = "{\"signal\":\"enter\"}";
    sf_webhook_report rep;
    int64_t before = sf_time_now_ms() / 1000;
    cr_assert_eq(sf_webhook_deliver(h, url, "k3y", body, strlen(body), NULL, &rep, NULL), SF_OK);
    cr_assert(rep.delivered && rep.attempts == 1 && rep.http_status == 204, "%s", rep.error);
    char *head, *got, ts[32], sig[128], ctype[64], want[128], hex[SF_WEBHOOK_SIG_HEX];
    hookrecv_get(&r, 0, &head, &got);
    cr_assert_str_eq(got, body);
    cr_assert(strncmp(head, "POST /hook HTTP/1.1\r\n", 21) == 0, "%s", head);
    hookrecv_header(head, "X-SF-Timestamp", ts, sizeof ts);
    hookrecv_header(head, "X-SF-Signature", sig, sizeof sig);
    hookrecv_header(head, "Content-Type", ctype, sizeof ctype);
    cr_assert_str_eq(ctype, "application/json");
    long long t = strtoll(ts, NULL, 10);
    cr_assert(t >= before && t <= before + 5, "timestamp %s", ts);
    cr_assert_eq(sf_webhook_sign("k3y", t, body, strlen(body), hex, NULL), SF_OK);
    snprintf(want, sizeof want, "sha256=%s", hex);
    cr_assert_str_eq(sig, want);
    free(head);
    free(got);
    sf_http_free(h);
    hookrecv_stop(&r);
}

Test(webhook, server_errors_are_retried_with_backoff_then_reported)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv r;
    hookrecv_start(&r, 500);
    char url[64];
    url_of(&r, url, sizeof url);
    sf_http *h = client();
    sf_webhook_opts o = {.attempts = 3, .backoff_ms = 100};
    sf_webhook_report rep;
    int64_t t0 = sf_time_mono_ms();
    cr_assert_eq(sf_webhook_deliver(h, url, NULL, "{}", 2, &o, &rep, NULL), SF_OK);
    int64_t took = sf_time_mono_ms() - t0;
    cr_assert(!rep.delivered);
    cr_assert_eq(rep.attempts, 3);
    cr_assert_eq(rep.http_status, 500);
    cr_assert_str_eq(rep.error, "receiver answered HTTP 500");
    cr_assert_eq(hookrecv_count(&r), 3);
    cr_assert(took >= 300, "backoffs of 100 + 200 ms, took %lld ms", (long long)took);
    char *head, *got, sig[128];
    hookrecv_get(&r, 0, &head, &got);
    hookrecv_header(head, "X-SF-Signature", sig, sizeof sig);
    cr_assert_str_eq(sig, "", "no secret, no signature");
    free(head);
    free(got);
    /* a 4xx is the receiver's final answer: no retry */
    atomic_store(&r.status, 400);
    cr_assert_eq(sf_webhook_deliver(h, url, "k", "{}", 2, &o, &rep, NULL), SF_OK);
    cr_assert(!rep.delivered && rep.attempts == 1 && rep.http_status == 400);
    cr_assert_eq(hookrecv_count(&r), 4);
    sf_http_free(h);
    hookrecv_stop(&r);
}

Test(webhook, a_refused_connection_is_retried_and_reported_without_a_status)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv r;
    hookrecv_start(&r, 200);
    char url[64];
    url_of(&r, url, sizeof url);
    hookrecv_stop(&r); /* nothing listens on the port now */
    sf_http *h = client();
    sf_webhook_opts o = {.attempts = 2, .backoff_ms = 10};
    sf_webhook_report rep;
    cr_assert_eq(sf_webhook_deliver(h, url, "k", "{}", 2, &o, &rep, NULL), SF_OK);
    cr_assert(!rep.delivered && rep.attempts == 2 && rep.http_status == 0);
    cr_assert_neq(rep.error[0], '\0');
    cr_assert_eq(sf_webhook_deliver(h, "", "k", "{}", 2, &o, &rep, NULL), SF_ERR_INVALID);
    sf_http_free(h);
}
