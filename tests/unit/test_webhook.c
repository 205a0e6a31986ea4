/* webhook: the payload text, the HMAC-SHA256 signature (checked against
 * values from `openssl dgst -sha256 -hmac`), delivery with retries against a
 * receiver on 127.0.0.1 (allowed by the client's address policy, as
 * SF_WEBHOOK_ALLOW_CIDRS=127.0.0.1/32 allows it in the worker), every
 * spelling of a loopback or metadata address refused at once without the
 * policy, invalid URLs final at once, and messages that name only a URL's
 * origin. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sf/time.h"
#include "sf/webhook.h"

#include "../support/hookrecv.h"

Test(webhook, payload_has_every_field_in_order_with_nulls_for_none)
{
    sf_webhook_signal s = {.schedule_id = 12,
                           .job_id = "0b8f4a52-0000-4000-8000-000000000001",
                           .symbol = "BTC-USD",
                           .timeframe = "1m",
                           .bar_time = 1704164640,
                           .signal = "enter",
                           .side = -1,
                           .logic = "sma \"x\"\n"};
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

/* A client whose policy allows the CIDRs of allow (p: its storage). */
static sf_http *client_allowing(const char *allow, sf_netpolicy *p)
{
    cr_assert_eq(sf_netpolicy_parse(allow, p, NULL), SF_OK);
    sf_http *h = NULL;
    sf_http_opts o = {.connect_timeout_ms = 1000, .timeout_ms = 2000, .policy = p};
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
    sf_netpolicy p;
    sf_http *h = client_allowing("127.0.0.1/32", &p);
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
    sf_netpolicy p;
    sf_http *h = client_allowing("127.0.0.1/32", &p);
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
    sf_netpolicy p;
    sf_http *h = client_allowing("127.0.0.1/32", &p);
    sf_webhook_opts o = {.attempts = 2, .backoff_ms = 10};
    sf_webhook_report rep;
    cr_assert_eq(sf_webhook_deliver(h, url, "k", "{}", 2, &o, &rep, NULL), SF_OK);
    cr_assert(!rep.delivered && rep.attempts == 2 && rep.http_status == 0);
    cr_assert_neq(rep.error[0], '\0');
    cr_assert_eq(sf_webhook_deliver(h, "", "k", "{}", 2, &o, &rep, NULL), SF_ERR_INVALID);
    sf_http_free(h);
}

/* Deliver to url with a client that allows allow; the report. */
static sf_webhook_report deliver(const char *allow, const char *url)
{
    sf_netpolicy p;
    sf_http *h = client_allowing(allow, &p);
    sf_webhook_opts o = {.attempts = 3, .backoff_ms = 10};
    sf_webhook_report rep;
    cr_assert_eq(sf_webhook_deliver(h, url, "k", "{}", 2, &o, &rep, NULL), SF_OK);
    sf_http_free(h);
    return rep;
}

/* host:port/path with tokens in the path and the query. */
static void secret_url(char *buf, size_t size, const char *host, int port)
{
    snprintf(buf, size, "http://%s:%d/hooks/tok-PATHSECRET?token=QUERYSECRET", host, port);
}

static const char *const LOOPBACK[] = {"127.0.0.1", "2130706433",         "0x7f000001", "0177.0.0.1",
                                       "127.1",     "[::ffff:127.0.0.1]", "localhost"};

Test(webhook, every_spelling_of_a_loopback_metadata_or_unspecified_address_is_refused_at_once)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv r;
    hookrecv_start(&r, 200);
    const char *hosts[] = {"127.0.0.1",
                           "2130706433",
                           "0x7f000001",
                           "0177.0.0.1",
                           "127.1",
                           "[::ffff:127.0.0.1]",
                           "localhost",
                           "[::1]",
                           "[0:0:0:0:0:0:0:1]",
                           "[::ffff:7f00:1]",
                           "0.0.0.0",
                           "0",
                           "[::]",
                           "169.254.169.254",
                           "2852039166",
                           "[::ffff:169.254.169.254]",
                           "10.0.0.1",
                           "192.168.0.1",
                           "172.16.0.1",
                           "100.64.0.1",
                           "[fe80::1]",
                           "[fd00:ec2::254]",
                           "224.0.0.1"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char url[256];
        secret_url(url, sizeof url, hosts[i], r.port);
        sf_webhook_report rep = deliver("", url);
        cr_expect(!rep.delivered && rep.attempts == 1 && rep.http_status == 0, "%s: %d attempts, %s", url, rep.attempts,
                  rep.error);
        cr_expect(strncmp(rep.error, "could not connect to http://", 28) == 0 && strstr(rep.error, "is not public (") &&
                      strstr(rep.error, ") and not in the allowed CIDRs"),
                  "%s: %s", url, rep.error);
        cr_expect(!strstr(rep.error, "SECRET") && !strstr(rep.error, "/hooks"), "%s: %s", url, rep.error);
    }
    char url[256];
    secret_url(url, sizeof url, "2130706433", r.port);
    sf_webhook_report rep = deliver("", url);
    char want[256];
    snprintf(want, sizeof want,
             "could not connect to http://127.0.0.1:%d: address 127.0.0.1 is not public (loopback) and not in "
             "the allowed CIDRs",
             r.port);
    cr_assert_str_eq(rep.error, want);
    secret_url(url, sizeof url, "169.254.169.254", 80);
    rep = deliver("", url);
    cr_assert_str_eq(rep.error, "could not connect to http://169.254.169.254:80: address 169.254.169.254 is not "
                                "public (cloud metadata) and not in the allowed CIDRs");
    secret_url(url, sizeof url, "[::1]", r.port);
    rep = deliver("127.0.0.1/32", url); /* ::1 is another address */
    cr_assert(!rep.delivered && rep.attempts == 1 && strstr(rep.error, "address ::1 is not public (loopback)"), "%s",
              rep.error);
    cr_assert_eq(hookrecv_count(&r), 0, "nothing reached the receiver");
    hookrecv_stop(&r);
}

Test(webhook, with_127_0_0_1_allowed_every_spelling_of_it_reaches_the_receiver)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv r;
    hookrecv_start(&r, 204);
    size_t n = sizeof LOOPBACK / sizeof LOOPBACK[0];
    for (size_t i = 0; i < n; i++) {
        char url[256];
        secret_url(url, sizeof url, LOOPBACK[i], r.port);
        sf_webhook_report rep = deliver("127.0.0.1/32", url);
        cr_expect(rep.delivered && rep.attempts == 1 && rep.http_status == 204, "%s: %s", url, rep.error);
    }
    cr_assert_eq(hookrecv_count(&r), (int)n);
    char *head, *body;
    hookrecv_get(&r, 0, &head, &body);
    cr_assert(strncmp(head, "POST /hooks/tok-PATHSECRET?token=QUERYSECRET HTTP/1.1\r\n", 55) == 0, "%s", head);
    free(head), free(body);
    /* 127.0.0.2 is loopback too, but not 127.0.0.1/32 */
    char url[256];
    secret_url(url, sizeof url, "127.0.0.2", r.port);
    sf_webhook_report rep = deliver("127.0.0.1/32", url);
    cr_assert(!rep.delivered && rep.attempts == 1 && strstr(rep.error, "address 127.0.0.2 is not public"), "%s",
              rep.error);
    cr_assert_eq(hookrecv_count(&r), (int)n);
    hookrecv_stop(&r);
}

Test(webhook, an_invalid_url_is_final_at_once_and_named_by_its_origin)
{
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    const char *urls[] = {"file:///etc/passwd",
                          "gopher://127.0.0.1:6379/_SET%20k%20v",
                          "ftp://example.com/x",
                          "dict://127.0.0.1:6379/INFO",
                          "http://",
                          "http://exa mple.com/",
                          "ldap://h/?token=SECRET"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        for (int with_policy = 0; with_policy <= 1; with_policy++) {
            sf_http *h = NULL;
            sf_netpolicy p = {0};
            sf_http_opts o = {.connect_timeout_ms = 1000, .timeout_ms = 2000, .policy = with_policy ? &p : NULL};
            cr_assert_eq(sf_http_new(&o, &h, NULL), SF_OK);
            sf_webhook_opts wo = {.attempts = 3, .backoff_ms = 1000};
            sf_webhook_report rep;
            int64_t t0 = sf_time_mono_ms();
            cr_assert_eq(sf_webhook_deliver(h, urls[i], "k", "{}", 2, &wo, &rep, NULL), SF_OK);
            int64_t took = sf_time_mono_ms() - t0;
            cr_expect(!rep.delivered && rep.attempts == 1 && rep.http_status == 0, "%s: %d attempts: %s", urls[i],
                      rep.attempts, rep.error);
            cr_expect(took < 1000, "%s: no backoff, took %lld ms", urls[i], (long long)took);
            cr_expect(strncmp(rep.error, "bad URL ", 8) == 0 && !strstr(rep.error, "SECRET") &&
                          !strstr(rep.error, "passwd"),
                      "%s: %s", urls[i], rep.error);
            sf_http_free(h);
        }
    }
}

Test(webhook, a_url_is_named_by_its_origin_only)
{
    struct {
        const char *url, *want;
    } cases[] = {
        {"https://user:pw@example.com:8443/a/b?token=x#frag", "https://example.com:8443"},
        {"http://example.com/hook/SECRET", "http://example.com"},
        {"HTTP://example.com?k=v", "http://example.com"},
        {"http://[::1]:8080/x", "http://[::1]:8080"},
        {"http://2130706433:6379/x", "http://127.0.0.1:6379"},
        {"127.0.0.1:6379/secret", "http://127.0.0.1:6379"},
        {"file:///etc/passwd", "file://"},
        {"gopher://h:70/_SET", "gopher://h:70"},
        {"", "(invalid URL)"},
        {"http://exa mple.com/", "(invalid URL)"},
        {NULL, "(invalid URL)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[SF_HTTP_ORIGIN_MAX];
        sf_http_url_origin(cases[i].url, out, sizeof out);
        cr_expect_str_eq(out, cases[i].want, "%s", cases[i].url ? cases[i].url : "(null)");
    }
    char small[12];
    sf_http_url_origin("https://example.com/x", small, sizeof small);
    cr_assert_str_eq(small, "https://exa");
}

Test(webhook, a_proxy_from_the_environment_is_not_used_under_a_policy)
{
    /* a proxy would connect on the client's behalf, past the address check */
    cr_assert_eq(sf_http_global_init(NULL), SF_OK);
    hookrecv proxy, target;
    hookrecv_start(&proxy, 200);
    hookrecv_start(&target, 204);
    char env[64], url[256];
    snprintf(env, sizeof env, "http://127.0.0.1:%d", proxy.port);
    setenv("http_proxy", env, 1);
    setenv("HTTP_PROXY", env, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    secret_url(url, sizeof url, "127.0.0.1", target.port);
    sf_webhook_report rep = deliver("127.0.0.1/32", url);
    cr_assert(rep.delivered && rep.http_status == 204, "%s", rep.error);
    cr_assert_eq(hookrecv_count(&target), 1);
    cr_assert_eq(hookrecv_count(&proxy), 0);
    /* without a policy (sfctl) the environment's proxy is used as before */
    sf_http *h = NULL;
    sf_http_opts o = {.connect_timeout_ms = 1000, .timeout_ms = 2000};
    cr_assert_eq(sf_http_new(&o, &h, NULL), SF_OK);
    cr_assert_eq(sf_webhook_deliver(h, url, "k", "{}", 2, NULL, &rep, NULL), SF_OK);
    cr_assert(rep.delivered && rep.http_status == 200, "%s", rep.error);
    cr_assert_eq(hookrecv_count(&proxy), 1);
    sf_http_free(h);
    hookrecv_stop(&proxy);
    hookrecv_stop(&target);
}
