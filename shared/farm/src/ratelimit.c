/* ratelimit: token buckets in Redis; see sf/ratelimit.h. */
#include "sf/ratelimit.h"

#include <stdio.h>

/* KEYS[1] the bucket (hash: t = tokens, ts = ms of the last refill);
 * ARGV rate (tokens a second), burst. Returns {allowed, remaining,
 * retry_ms, full_ms}. */
const char SF_RATELIMIT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
    "local tokens, ts = tonumber(v[1]), tonumber(v[2])\n"
    "if tokens == nil or ts == nil then tokens, ts = burst, now end\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end\n"
    "local allowed, retry = 0, 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1\n"
    "else retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "local full = math.ceil((burst - tokens) * 1000 / rate)\n"
    "redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%.0f', math.max(now, ts)))\n"
    "redis.call('PEXPIRE', KEYS[1], full + 1000)\n"
    "return {allowed, math.floor(tokens), retry, full}\n";

sf_status sf_ratelimit_take(sf_redis *r, sf_redis_script *script, const char *queue, int64_t key_id, int64_t rate,
                            int64_t burst, sf_ratelimit_result *out, sf_err *err)
{
    if (rate < 1 || burst < 1)
        return sf_err_set(err, SF_ERR_INVALID, "rate and burst must be at least 1");
    char key[160], rs[24], bs[24];
    snprintf(key, sizeof key, "sf:{%s}:rate:%lld", queue, (long long)key_id);
    snprintf(rs, sizeof rs, "%lld", (long long)rate);
    snprintf(bs, sizeof bs, "%lld", (long long)burst);
    const char *keys[] = {key}, *args[] = {rs, bs};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_eval(r, script, 1, keys, 2, args, &rep, err);
    if (st == SF_OK && (sf_redis_reply_type(rep) != SF_REDIS_ARRAY || sf_redis_reply_len(rep) != 4))
        st = sf_err_set(err, SF_ERR_REDIS, "could not read the rate limit script's answer");
    if (st == SF_OK) {
        out->allowed = sf_redis_reply_int(sf_redis_reply_at(rep, 0)) == 1;
        out->remaining = sf_redis_reply_int(sf_redis_reply_at(rep, 1));
        out->retry_ms = sf_redis_reply_int(sf_redis_reply_at(rep, 2));
        out->full_ms = sf_redis_reply_int(sf_redis_reply_at(rep, 3));
    }
    sf_redis_reply_free(rep);
    return st;
}
