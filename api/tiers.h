/*
 * sf-api: tiers, quotas and the per-key rate limit (issue 13, item 5).
 *
 * Each user has a tier (users.tier: free, premium, enterprise) whose limits
 * come from sf-api's configuration (api_config.tier, TIER_<T>_RUNNING,
 * TIER_<T>_QUEUED, TIER_<T>_SWEEP_MEMBERS, RATE_LIMIT_<T>_PER_SECOND,
 * RATE_LIMIT_<T>_BURST; 0 = unlimited):
 *
 * - quotas, at submission (backtests, sweeps, reruns): inside the
 *   submission's transaction the user's row is locked (SELECT ... FOR NO KEY
 *   UPDATE: one user's submissions take turns, anyone else's do not wait,
 *   and the statement-level key checks of jobs, FOR KEY SHARE, are not
 *   blocked), then the user's unfinished jobs are counted through the
 *   partial index jobs_user_active, reading at most limit + 1 entries. A
 *   submission of n jobs is refused when waiting (pending + queued) + n >
 *   the queued quota, or unfinished (waiting + running) + n > the running
 *   quota + the queued quota: 429 quota_exceeded naming the quota, its limit
 *   and the usage, with Retry-After. Nothing is inserted (the transaction
 *   rolls back). An Idempotency-Key replay is answered as before, whatever
 *   the usage.
 * - a sweep larger than its tier's member cap: 413 quota_exceeded (waiting
 *   does not help, so no Retry-After).
 * - priority "high" is for paying tiers: 400 priority_not_allowed (field
 *   priority) for a free user.
 * - the request rate of each API key: a token bucket in Redis
 *   (sf/ratelimit.h), checked when a /v1/ request's headers are in, before
 *   its body is read: 429 rate_limited with Retry-After, and X-RateLimit-
 *   Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds until the
 *   bucket is full) on every answer to a limited key. Fails open: a Redis
 *   error lets the request through (logged at most every 10 s) and the
 *   limiter rests for 5 s.
 *
 * Thread safety: as the handlers (api.h).
 */
#ifndef API_TIERS_H
#define API_TIERS_H

#include "api.h"

/* A user's limits (0 = unlimited). */
typedef struct api_tier_limits {
    int64_t running, queued, members, rate, burst;
} api_tier_limits;

/* The limits of tier (an unknown name gets free's). */
void api_tier_limits_of(const api_config *cfg, const char *tier, api_tier_limits *out);

/* The outcome of a quota check. */
typedef struct api_quota {
    int refused;       /* 1: over a quota */
    const char *quota; /* "queued" or "running+queued" */
    int64_t limit, usage, requested;
    int64_t retry_after_s;
} api_quota;

/* Inside the caller's transaction: lock the user's row, count their
 * unfinished jobs and decide whether n more fit. q->refused says; the caller
 * rolls back and answers with api_quota_reply. */
sf_status api_quota_check(api_app *app, sf_db *db, const sf_auth_user *user, int64_t n, api_quota *q, sf_err *err);

/* 429 quota_exceeded with Retry-After. */
void api_quota_reply(api_app *app, sf_httpd_req *req, const api_quota *q);

/* 413 quota_exceeded when members exceed the tier's sweep member cap;
 * returns 0 then. */
int api_tier_members_ok(api_app *app, sf_httpd_req *req, const sf_auth_user *user, int64_t members);

/* 400 priority_not_allowed for priority 0 (high) on the free tier; returns
 * 0 then. */
int api_tier_priority_ok(sf_httpd_req *req, const sf_auth_user *user, int priority);

/* The key's rate limit (on_headers): sets the X-RateLimit-* headers;
 * answers 429 and returns 0 when the bucket is empty. */
int api_rate_limit(api_app *app, sf_httpd_req *req, const sf_auth_user *user);

/* GET /v1/me */
void api_me(sf_httpd_req *req, void *app);

#endif
