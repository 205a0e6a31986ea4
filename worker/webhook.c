/*
 * webhook: the worker's delivery thread for the webhooks of live signals.
 *
 * DESIGN. The signals table is the outbox. A logic execution's completion
 * (one fenced transaction, sf_job_complete) inserts the signals row with
 * webhook_status 'pending' and webhook_due_at = now() when the schedule has a
 * webhook_url. This thread, woken by the completer after such a commit or
 * every HOOK_IDLE_MS, claims due rows (FOR UPDATE SKIP LOCKED, pushing
 * webhook_due_at forward by a lease longer than a whole delivery, so no other
 * worker takes them meanwhile), POSTs each one signed (sf_webhook_deliver:
 * timeouts, bounded retries with backoff), and records delivered or failed
 * with the attempts, the last HTTP status and the error. A worker that dies
 * between the POST and the record leaves the row pending: once its lease has
 * passed, any worker delivers it again (at least once; receivers dedupe by
 * job_id). The job's own status never depends on the webhook.
 *
 * The URL and secret are read from the schedule at delivery time. The
 * client's address policy (SF_WEBHOOK_ALLOW_CIDRS, sf/netpolicy.h) is checked
 * on the exact address of every connection: a schedule cannot aim the worker
 * at loopback, private, link-local or metadata addresses; such a URL, or one
 * that is not http/https, fails at once, and the recorded and logged error
 * names the URL by its origin only (tokens in its path or query stay out of
 * the log). On drain, after the completer's last commit, the thread makes
 * one last pass of at most HOOK_BATCH rows and returns; rows left pending go
 * to other workers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/http.h"
#include "sf/webhook.h"

#include "worker.h"

#define HOOK_BATCH 16
#define HOOK_IDLE_MS 5000
#define HOOK_LEASE_MARGIN_MS 30000

typedef struct hooker {
    wrk *w;
    sf_db *db;
    sf_http *http;
    sf_webhook_opts opts;
    int64_t lease_ms; /* longer than one row's whole delivery */
} hooker;

static const char CLAIM_SQL[] =
    "WITH c AS (SELECT job_id FROM signals WHERE webhook_status = 'pending' AND webhook_due_at <= now() "
    "ORDER BY webhook_due_at LIMIT $1::int FOR UPDATE SKIP LOCKED) "
    "UPDATE signals s SET webhook_due_at = now() + $2::bigint * interval '1 millisecond' "
    "FROM c JOIN jobs j ON j.id = c.job_id LEFT JOIN schedules sc ON sc.id = j.schedule_id "
    "WHERE s.job_id = c.job_id RETURNING s.job_id::text, coalesce(s.schedule_id, 0), s.symbol, "
    "j.timeframe, floor(extract(epoch FROM s.bar_time))::bigint, s.signal, coalesce(s.side, ''), "
    "coalesce(j.logic->>'name', ''), sc.webhook_url, sc.webhook_secret";

enum { H_JOB, H_SCHED, H_SYMBOL, H_TF, H_BAR, H_SIGNAL, H_SIDE, H_LOGIC, H_URL, H_SECRET };

static const char RECORD_SQL[] =
    "UPDATE signals SET webhook_status = $2, webhook_attempts = webhook_attempts + $3::int, "
    "webhook_http_status = nullif($4::int, 0), webhook_error = nullif($5, ''), "
    "webhook_done_at = now(), webhook_due_at = NULL "
    "WHERE job_id = $1::uuid AND webhook_status = 'pending'";

static void record(hooker *h, const char *job_id, const sf_webhook_report *rep)
{
    char attempts[16], status[24];
    snprintf(attempts, sizeof attempts, "%d", rep->attempts);
    snprintf(status, sizeof status, "%ld", rep->http_status);
    const char *params[] = {job_id, rep->delivered ? "delivered" : "failed", attempts, status, rep->error};
    sf_err err = {0};
    if (sf_db_query(h->db, RECORD_SQL, 5, params, NULL, &err) != SF_OK) /* stays pending: redelivered */
        sf_log_warn(h->w->log, "could not record a webhook delivery", SF_LF_STR("job_id", job_id),
                    SF_LF_STR("error", err.msg));
    if (rep->delivered)
        sf_log_info(h->w->log, "webhook delivered", SF_LF_STR("job_id", job_id), SF_LF_INT("attempts", rep->attempts),
                    SF_LF_INT("http_status", rep->http_status));
    else
        sf_log_warn(h->w->log, "webhook delivery failed", SF_LF_STR("job_id", job_id),
                    SF_LF_INT("attempts", rep->attempts), SF_LF_INT("http_status", rep->http_status),
                    SF_LF_STR("error", rep->error));
}

static int side_of(const char *s)
{
    return strcmp(s, "long") == 0 ? 1 : strcmp(s, "short") == 0 ? -1 : 0;
}

/* Build, sign and POST row r of a claim; record the outcome. */
static void deliver_row(hooker *h, const sf_db_res *res, int r)
{
    const char *job_id = sf_db_get(res, r, H_JOB), *url = sf_db_get(res, r, H_URL);
    sf_webhook_signal s = {
        .schedule_id = strtoll(sf_db_get(res, r, H_SCHED), NULL, 10),
        .job_id = job_id,
        .symbol = sf_db_get(res, r, H_SYMBOL),
        .timeframe = sf_db_get(res, r, H_TF),
        .bar_time = strtoll(sf_db_get(res, r, H_BAR), NULL, 10),
        .signal = sf_db_get(res, r, H_SIGNAL),
        .side = side_of(sf_db_get(res, r, H_SIDE)),
        .logic = sf_db_get(res, r, H_LOGIC),
    };
    sf_webhook_report rep;
    memset(&rep, 0, sizeof rep);
    sf_buf body;
    sf_buf_init(&body, SF_WEBHOOK_PAYLOAD_MAX);
    sf_err err = {0};
    sf_status st = sf_webhook_payload(&s, &body, &err);
    if (st == SF_OK && (url == NULL || url[0] == '\0'))
        snprintf(rep.error, sizeof rep.error, "the schedule has no webhook URL any more");
    else if (st == SF_OK)
        st = sf_webhook_deliver(h->http, url, sf_db_get(res, r, H_SECRET), sf_buf_str(&body), body.len, &h->opts, &rep,
                                &err);
    if (st != SF_OK)
        snprintf(rep.error, sizeof rep.error, "%.200s", err.msg);
    sf_buf_destroy(&body);
    record(h, job_id, &rep);
}

/* Claim and deliver one batch; the number of rows claimed. */
static int deliver_batch(hooker *h)
{
    char limit[16], lease[24];
    snprintf(limit, sizeof limit, "%d", HOOK_BATCH);
    snprintf(lease, sizeof lease, "%" PRId64, h->lease_ms);
    const char *params[] = {limit, lease};
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_status st = sf_db_query(h->db, CLAIM_SQL, 2, params, &res, &err);
    if (st == SF_ERR_UNAVAILABLE) {
        wrk_db_recover(h->w, h->db, "webhook", &err, NULL);
        return 0;
    }
    if (st != SF_OK) {
        sf_log_error(h->w->log, "could not claim webhook deliveries", SF_LF_STR("error", err.msg));
        return 0;
    }
    int n = sf_db_nrows(res);
    for (int r = 0; r < n; r++)
        deliver_row(h, res, r);
    sf_db_res_free(res);
    return n;
}

/* Sleep until hinted or HOOK_IDLE_MS; 1 when this is the last pass. */
static int wait_hint(wrk *w)
{
    pthread_mutex_lock(&w->mu);
    if (!w->hook_hint && !w->hook_stop)
        wrk_timed_wait(&w->hook_cv, &w->mu, HOOK_IDLE_MS);
    int last = w->hook_stop;
    w->hook_hint = 0;
    pthread_mutex_unlock(&w->mu);
    return last;
}

static int hooker_open(hooker *h, wrk *w)
{
    const wrk_config *cfg = w->cfg;
    h->w = w;
    h->opts.attempts = (int)cfg->webhook_attempts;
    h->opts.backoff_ms = cfg->webhook_backoff_ms;
    /* attempts * timeout + the backoffs (b * (2^(attempts-1) - 1) < b * 2^attempts) + margin */
    h->lease_ms = cfg->webhook_attempts * cfg->webhook_timeout_ms + (cfg->webhook_backoff_ms << cfg->webhook_attempts) +
                  HOOK_LEASE_MARGIN_MS;
    sf_http_opts o = {.connect_timeout_ms = cfg->webhook_timeout_ms,
                      .timeout_ms = cfg->webhook_timeout_ms,
                      .max_body = 64 * 1024,
                      .user_agent = "signal-factory-webhook",
                      .policy = &cfg->webhook_policy};
    sf_err err = {0};
    if (sf_http_new(&o, &h->http, &err) != SF_OK) {
        sf_log_error(w->log, "webhooks disabled: no http client", SF_LF_STR("error", err.msg));
        return 0;
    }
    h->db = wrk_db_connect(w, "webhook", NULL);
    return h->db != NULL;
}

void *wrk_webhook_main(void *arg)
{
    wrk *w = arg;
    pthread_setname_np(pthread_self(), "sf-webhook");
    hooker h;
    memset(&h, 0, sizeof h);
    int ok = hooker_open(&h, w);
    for (int last = 0; !last;) {
        last = wait_hint(w);
        while (ok && deliver_batch(&h) == HOOK_BATCH && !last) {
        }
    }
    sf_http_free(h.http);
    sf_db_close(h.db);
    return NULL;
}
