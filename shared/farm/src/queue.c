/*
 * queue: Redis dispatch (see sf/queue.h for the keys and the contract).
 *
 * DESIGN. Each operation that touches more than one key is one Lua script, so
 * a crash or a lost connection never leaves half a change: an id is either
 * ready (in `ready` and in `ids`, both or neither) or leased, and a tenant is
 * in `tenants` (and `tset`) while it may have ready work. Every script gets
 * every key it touches in KEYS: the keys are fixed per queue, none is built
 * from a tenant. A tenant's ready ids are the lexicographic range
 * [<tenant> NUL, <tenant> \1) of the one `ready` set, whose members all have
 * score 0 and sort by tenant, then the score in 16 digits (band, then age),
 * then the id; the claim reads the head of a range with ZRANGEBYLEX. NUL
 * cannot occur in a tenant, so no tenant's range holds another's ids. `ids`
 * maps each ready id to its score: ZADD NX on it decides whether an id is
 * new (idempotence per id), ZCOUNT on it counts a band, ZSCORE on it rebuilds
 * the member to remove. Times come from Redis TIME inside the scripts. The C
 * side only validates, builds argument vectors (bounded by
 * SF_QUEUE_BATCH_MAX) and reads replies.
 *
 * WHY NOT ONE SCORE-ORDERED SET. Start-time fair queuing (a virtual time per
 * tenant, each job scored band + max(vt[tenant], V) + 1, claims by ZPOPMIN)
 * also needs no per-tenant keys, but its band offset orders priority across
 * tenants: a tenant's high-priority 100,000-job sweep would hold back every
 * other tenant's normal job, and priority is the submitter's choice. Keeping
 * priority within a tenant there would mean rescoring a tenant's backlog
 * whenever a job of a better band arrives. The rotation below keeps both
 * guarantees as they were, for one command more per claim (the index).
 */
#include "sf/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SF_QUEUE_NAME_MAX + 32)
#define SCORE_TEXT 32
/* Digits of a score in a `ready` member; the claim script skips
 * #tenant + 1 + SCORE_DIGITS bytes to reach the id (the literal 18 there). */
#define SCORE_DIGITS 16

/* KEYS: ready ids tenants tset wake leases. ARGV: wake max, requeue flag, then
 * (id, tenant, 16-digit score) per entry. The requeue flag drops the ids'
 * leases first. Which ids are in `ids` already is asked in chunks of 500
 * (ZMSCORE; one ZSCORE per id on a Redis older than 6.2, which lacks it); the
 * new ones go to `ids` and `ready` in chunks (1,000 arguments stay well
 * inside Lua's unpack limit), and their tenants join the rotation in the
 * order they first appear. An id twice in one call counts once. */
static const char ENQUEUE_LUA[] =
    "local function known(ids, s, e)\n"
    "  local r = redis.pcall('ZMSCORE', KEYS[2], unpack(ids, s, e))\n"
    "  if type(r) == 'table' and not r.err then return r end\n"
    "  r = {}\n"
    "  for i = s, e do r[#r + 1] = redis.call('ZSCORE', KEYS[2], ids[i]) end\n"
    "  return r\n"
    "end\n"
    "local ids = {}\n"
    "for i = 3, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end\n"
    "if ARGV[2] == '1' then\n"
    "  for s = 1, #ids, 500 do redis.call('ZREM', KEYS[6], unpack(ids, s, math.min(s + 499, #ids))) end\n"
    "end\n"
    "local scores, members, order, listed, seen = {}, {}, {}, {}, {}\n"
    "for s = 1, #ids, 500 do\n"
    "  local e = math.min(s + 499, #ids)\n"
    "  local got = known(ids, s, e)\n"
    "  for j = s, e do\n"
    "    local id, tenant, score = ids[j], ARGV[3 * j + 1], ARGV[3 * j + 2]\n"
    "    if not got[j - s + 1] and not seen[id] then\n"
    "      seen[id] = true\n"
    "      scores[#scores + 1] = score; scores[#scores + 1] = id\n"
    "      members[#members + 1] = '0'; members[#members + 1] = tenant .. '\\0' .. score .. id\n"
    "      if not listed[tenant] then listed[tenant] = true; order[#order + 1] = tenant end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for s = 1, #members, 1000 do\n"
    "  redis.call('ZADD', KEYS[2], unpack(scores, s, math.min(s + 999, #scores)))\n"
    "  redis.call('ZADD', KEYS[1], unpack(members, s, math.min(s + 999, #members)))\n"
    "end\n"
    "for _, tenant in ipairs(order) do\n"
    "  if redis.call('SADD', KEYS[4], tenant) == 1 then redis.call('RPUSH', KEYS[3], tenant) end\n"
    "end\n"
    "local added = #members / 2\n"
    "local push = math.min(added, tonumber(ARGV[1]) - redis.call('LLEN', KEYS[5]))\n"
    "while push > 0 do\n"
    "  local k = math.min(push, 500)\n"
    "  local t = {}\n"
    "  for j = 1, k do t[j] = '1' end\n"
    "  redis.call('LPUSH', KEYS[5], unpack(t))\n"
    "  push = push - k\n"
    "end\n"
    "return added\n";

/* KEYS: ready ids tenants tset leases wake. ARGV: max, lease ms.
 * One id per tenant per turn, round robin; a tenant alone in the rotation
 * (nobody else has ready work: the script is atomic) gives everything still
 * wanted in one range. Reading one member more than wanted tells whether the
 * tenant has work left. The leases are added in one ZADD. */
static const char CLAIM_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local deadline = string.format('%.0f', now + tonumber(ARGV[2]))\n"
    "local max = tonumber(ARGV[1])\n"
    "local ids, lease = {}, {}\n"
    "local guard = redis.call('LLEN', KEYS[3]) + max\n"
    "while #ids < max and guard > 0 do\n"
    "  guard = guard - 1\n"
    "  local tenant = redis.call('LPOP', KEYS[3])\n"
    "  if not tenant then break end\n"
    "  local want = 1\n"
    "  if redis.call('LLEN', KEYS[3]) == 0 then want = max - #ids end\n"
    "  local got = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. tenant .. '\\0', '(' .. tenant .. '\\1',\n"
    "                         'LIMIT', 0, want + 1)\n"
    "  local take = math.min(#got, want)\n"
    "  for k = 1, take do\n"
    "    local id = string.sub(got[k], #tenant + 18)\n"
    "    ids[#ids + 1] = id\n"
    "    lease[#lease + 1] = deadline; lease[#lease + 1] = id\n"
    "  end\n"
    "  if take > 0 then redis.call('ZREM', KEYS[1], unpack(got, 1, take)) end\n"
    "  if #got > want then redis.call('RPUSH', KEYS[3], tenant)\n"
    "  else redis.call('SREM', KEYS[4], tenant) end\n"
    "end\n"
    "for s = 1, #ids, 500 do\n"
    "  redis.call('ZREM', KEYS[2], unpack(ids, s, math.min(s + 499, #ids)))\n"
    "end\n"
    "for s = 1, #lease, 1000 do\n"
    "  redis.call('ZADD', KEYS[5], unpack(lease, s, math.min(s + 999, #lease)))\n"
    "end\n"
    "if #ids > 0 then redis.call('LTRIM', KEYS[6], #ids, -1) end\n"
    "return ids\n";

/* KEYS: leases. ARGV: lease ms, ids. */
static const char EXTEND_LUA[] = "local t = redis.call('TIME')\n"
                                 "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                 "local deadline = string.format('%.0f', now + tonumber(ARGV[1]))\n"
                                 "local n = 0\n"
                                 "for i = 2, #ARGV do\n"
                                 "  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then\n"
                                 "    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])\n"
                                 "    n = n + 1\n"
                                 "  end\n"
                                 "end\n"
                                 "return n\n";

/* KEYS: leases. ARGV: max. */
static const char EXPIRED_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now),\n"
    "                  'LIMIT', 0, tonumber(ARGV[1]))\n";

/* KEYS: ready ids. ARGV: (id, tenant) pairs. The member is rebuilt from the
 * tenant and the score in `ids` (%016.0f, as the C side writes it: scores
 * are integers below 2^53, exact in a double both ways); an id removed from
 * `ready` leaves `ids` too, an id given with the wrong tenant stays in both. */
static const char REMOVE_LUA[] =
    "local n = 0\n"
    "for i = 1, #ARGV, 2 do\n"
    "  local s = redis.call('ZSCORE', KEYS[2], ARGV[i])\n"
    "  if s then\n"
    "    local m = ARGV[i + 1] .. '\\0' .. string.format('%016.0f', tonumber(s)) .. ARGV[i]\n"
    "    if redis.call('ZREM', KEYS[1], m) == 1 then\n"
    "      redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n\n";

/* KEYS: ids leases tset wake. ARGV: band. Read only. */
static const char DEPTH_LUA[] =
    "local band = tonumber(ARGV[1])\n"
    "local r = {}\n"
    "for p = 0, 2 do\n"
    "  r[p + 1] = redis.call('ZCOUNT', KEYS[1], string.format('%.0f', p * band),\n"
    "                        '(' .. string.format('%.0f', (p + 1) * band))\n"
    "end\n"
    "return {r[1], r[2], r[3], redis.call('ZCARD', KEYS[2]), redis.call('SCARD', KEYS[3]),\n"
    "        redis.call('LLEN', KEYS[4])}\n";

/* KEYS: workers. ARGV: name, ttl_ms (0 = remove). */
static const char WORKER_BEAT_LUA[] = "local ttl = tonumber(ARGV[2])\n"
                                      "if ttl <= 0 then return redis.call('ZREM', KEYS[1], ARGV[1]) end\n"
                                      "local t = redis.call('TIME')\n"
                                      "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                      "return redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])\n";

/* KEYS: workers. Workers whose deadline passed are removed; the rest counted. */
static const char WORKERS_LIVE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))\n"
    "return redis.call('ZCARD', KEYS[1])\n";

enum { S_ENQUEUE, S_CLAIM, S_EXTEND, S_EXPIRED, S_REMOVE, S_DEPTH, S_WBEAT, S_WLIVE, S_COUNT };

static const char *const SCRIPT_SOURCES[S_COUNT] = {
    ENQUEUE_LUA, CLAIM_LUA, EXTEND_LUA, EXPIRED_LUA, REMOVE_LUA, DEPTH_LUA, WORKER_BEAT_LUA, WORKERS_LIVE_LUA,
};

struct sf_queue {
    sf_redis *r; /* borrowed */
    char prefix[SF_QUEUE_NAME_MAX + 8];
    char ready[KEY_MAX];
    char ids[KEY_MAX];
    char tenants[KEY_MAX];
    char tset[KEY_MAX];
    char wake[KEY_MAX];
    char leases[KEY_MAX];
    char incarnation[KEY_MAX];
    char cancel[KEY_MAX];
    char auth[KEY_MAX];
    char workers[KEY_MAX];
    sf_redis_script scripts[S_COUNT];
};

static int name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= SF_QUEUE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                 c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static void make_key(char *dst, const sf_queue *q, const char *suffix)
{
    snprintf(dst, KEY_MAX, "%s%s", q->prefix, suffix);
}

sf_status sf_queue_new(const char *name, sf_redis *r, sf_queue **out, sf_err *err)
{
    if (name == NULL || !name_ok(name))
        return sf_err_set(err, SF_ERR_INVALID, "queue name: must be 1 to %d characters of [A-Za-z0-9_.-]",
                          SF_QUEUE_NAME_MAX - 1);
    sf_queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    q->r = r;
    snprintf(q->prefix, sizeof q->prefix, "sf:{%s}:", name);
    make_key(q->ready, q, "ready");
    make_key(q->ids, q, "ids");
    make_key(q->tenants, q, "tenants");
    make_key(q->tset, q, "tset");
    make_key(q->wake, q, "wake");
    make_key(q->leases, q, "leases");
    make_key(q->incarnation, q, "incarnation");
    make_key(q->cancel, q, "cancel");
    make_key(q->auth, q, "auth");
    make_key(q->workers, q, "workers");
    for (int i = 0; i < S_COUNT; i++)
        q->scripts[i].source = SCRIPT_SOURCES[i];
    *out = q;
    return SF_OK;
}

void sf_queue_free(sf_queue *q)
{
    free(q);
}

const char *sf_queue_prefix(const sf_queue *q)
{
    return q->prefix;
}

const char *sf_queue_cancel_channel(const sf_queue *q)
{
    return q->cancel;
}

const char *sf_queue_auth_channel(const sf_queue *q)
{
    return q->auth;
}

double sf_queue_score(int priority, int64_t created_at_ms)
{
    return (double)priority * SF_QUEUE_PRIORITY_BAND + (double)created_at_ms;
}

/* ---- argument vectors --------------------------------------------------- */

/* A bounded argument vector: fixed leading args plus per-id args, and room
 * for the score texts that entries need. */
typedef struct argv_t {
    const char **v;
    char (*num)[SCORE_TEXT];
    int n;
} argv_t;

static sf_status argv_init(argv_t *a, size_t cap, size_t nums, sf_err *err)
{
    a->n = 0;
    a->v = malloc(sizeof *a->v * cap);
    a->num = nums ? malloc(sizeof *a->num * nums) : NULL;
    if (a->v == NULL || (nums && a->num == NULL)) {
        free(a->v);
        free(a->num);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    return SF_OK;
}

static void argv_destroy(argv_t *a)
{
    free(a->v);
    free(a->num);
}

static sf_status check_count(size_t n, sf_err *err)
{
    if (n > SF_QUEUE_BATCH_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "queue call has %zu ids; the limit is %d", n, SF_QUEUE_BATCH_MAX);
    return SF_OK;
}

static sf_status check_text(const char *what, const char *s, size_t max, sf_err *err)
{
    size_t len = strnlen(s, max);
    if (len == 0 || len >= max)
        return sf_err_set(err, SF_ERR_INVALID, "%s: must be 1 to %zu bytes", what, max - 1);
    return SF_OK;
}

/* with_score: the score matters (enqueue, requeue), not for remove. */
static sf_status check_entries(const sf_queue_entry *e, size_t n, int with_score, sf_err *err)
{
    sf_status st = check_count(n, err);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        st = check_text("job id", e[i].id, SF_QUEUE_ID_MAX, err);
        if (st == SF_OK)
            st = check_text("tenant", e[i].tenant, SF_QUEUE_TENANT_MAX, err);
        if (st == SF_OK && with_score &&
            !(isfinite(e[i].score) && e[i].score >= 0 && e[i].score < SF_QUEUE_SCORE_LIMIT))
            st = sf_err_set(err, SF_ERR_INVALID, "queue score %g: must be in [0, %.0f)", e[i].score,
                            SF_QUEUE_SCORE_LIMIT);
    }
    return st;
}

static sf_status check_ids(const char *const *ids, size_t n, sf_err *err)
{
    sf_status st = check_count(n, err);
    for (size_t i = 0; i < n && st == SF_OK; i++)
        st = check_text("job id", ids[i], SF_QUEUE_ID_MAX, err);
    return st;
}

static sf_status int_reply(sf_redis_reply *rep, size_t *out, sf_err *err)
{
    if (sf_redis_reply_type(rep) != SF_REDIS_INT) {
        sf_redis_reply_free(rep);
        return sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply type");
    }
    if (out)
        *out = (size_t)sf_redis_reply_int(rep);
    sf_redis_reply_free(rep);
    return SF_OK;
}

static sf_status run_script(sf_queue *q, int script, int nkeys, const char *const *keys, int nargs,
                            const char *const *args, sf_redis_reply **rep, sf_err *err)
{
    sf_err local;
    sf_err *e = err ? err : &local; /* sf_redis_eval needs the message for NOSCRIPT */
    return sf_redis_eval(q->r, &q->scripts[script], nkeys, keys, nargs, args, rep, e);
}

/* ---- enqueue / requeue -------------------------------------------------- */

static sf_status add_entries(sf_queue *q, const sf_queue_entry *e, size_t n, int requeue, size_t *added, sf_err *err)
{
    if (added)
        *added = 0;
    sf_status st = check_entries(e, n, 1, err);
    if (st != SF_OK || n == 0)
        return st;
    argv_t a;
    if ((st = argv_init(&a, 2 + 3 * n, n + 1, err)) != SF_OK)
        return st;
    snprintf(a.num[n], SCORE_TEXT, "%d", SF_QUEUE_WAKE_MAX);
    a.v[a.n++] = a.num[n];
    a.v[a.n++] = requeue ? "1" : "0";
    for (size_t i = 0; i < n; i++) {
        snprintf(a.num[i], SCORE_TEXT, "%0*.0f", SCORE_DIGITS, e[i].score + 0.0); /* no -0 */
        a.v[a.n++] = e[i].id;
        a.v[a.n++] = e[i].tenant;
        a.v[a.n++] = a.num[i];
    }
    const char *keys[] = {q->ready, q->ids, q->tenants, q->tset, q->wake, q->leases};
    sf_redis_reply *rep = NULL;
    st = run_script(q, S_ENQUEUE, 6, keys, a.n, a.v, &rep, err);
    argv_destroy(&a);
    if (st != SF_OK) {
        sf_redis_reply_free(rep);
        return st;
    }
    return int_reply(rep, added, err);
}

sf_status sf_queue_enqueue(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *added, sf_err *err)
{
    return add_entries(q, e, n, 0, added, err);
}

sf_status sf_queue_requeue(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *requeued, sf_err *err)
{
    return add_entries(q, e, n, 1, requeued, err);
}

/* ---- claim, wait, leases ------------------------------------------------ */

/* Copy an array reply of ids into ids[0..max). */
static sf_status ids_reply(sf_redis_reply *rep, size_t max, sf_queue_id *ids, size_t *n, sf_err *err)
{
    *n = 0;
    if (sf_redis_reply_type(rep) != SF_REDIS_ARRAY) {
        sf_redis_reply_free(rep);
        return sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply type");
    }
    size_t len = sf_redis_reply_len(rep);
    for (size_t i = 0; i < len && *n < max; i++) {
        size_t sl = 0;
        const char *s = sf_redis_reply_str(sf_redis_reply_at(rep, i), &sl);
        if (s == NULL || sl == 0 || sl >= SF_QUEUE_ID_MAX)
            continue; /* not one of ours; cannot be a job id */
        memcpy(ids[*n].id, s, sl);
        ids[*n].id[sl] = '\0';
        (*n)++;
    }
    sf_redis_reply_free(rep);
    return SF_OK;
}

sf_status sf_queue_claim(sf_queue *q, size_t max, int64_t lease_ms, sf_queue_id *ids, size_t *n, sf_err *err)
{
    *n = 0;
    sf_status st = check_count(max, err);
    if (st != SF_OK || max == 0)
        return st;
    char smax[24], slease[24];
    snprintf(smax, sizeof smax, "%zu", max);
    snprintf(slease, sizeof slease, "%lld", (long long)lease_ms);
    const char *keys[] = {q->ready, q->ids, q->tenants, q->tset, q->leases, q->wake};
    const char *args[] = {smax, slease};
    sf_redis_reply *rep = NULL;
    st = run_script(q, S_CLAIM, 6, keys, 2, args, &rep, err);
    if (st != SF_OK) {
        sf_redis_reply_free(rep);
        return st;
    }
    return ids_reply(rep, max, ids, n, err);
}

sf_status sf_queue_wait(sf_queue *q, int timeout_ms, int *woken, sf_err *err)
{
    *woken = 0;
    if (timeout_ms < 1)
        timeout_ms = 1;
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", timeout_ms / 1000.0);
    const char *argv[] = {"BLPOP", q->wake, secs};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd_blocking(q->r, timeout_ms, 3, argv, NULL, &rep, err);
    if (st == SF_OK && sf_redis_reply_type(rep) == SF_REDIS_ARRAY)
        *woken = 1;
    sf_redis_reply_free(rep);
    return st;
}

/* One command: verb key ids... */
static sf_status key_ids_cmd(sf_queue *q, const char *verb, const char *key, const char *const *ids, size_t n,
                             sf_err *err)
{
    sf_status st = check_ids(ids, n, err);
    if (st != SF_OK || n == 0)
        return st;
    argv_t a;
    if ((st = argv_init(&a, n + 2, 0, err)) != SF_OK)
        return st;
    a.v[a.n++] = verb;
    a.v[a.n++] = key;
    for (size_t i = 0; i < n; i++)
        a.v[a.n++] = ids[i];
    sf_redis_reply *rep = NULL;
    st = sf_redis_cmd(q->r, a.n, a.v, NULL, &rep, err);
    sf_redis_reply_free(rep);
    argv_destroy(&a);
    return st;
}

sf_status sf_queue_ack(sf_queue *q, const char *const *ids, size_t n, sf_err *err)
{
    return key_ids_cmd(q, "ZREM", q->leases, ids, n, err);
}

sf_status sf_queue_extend(sf_queue *q, const char *const *ids, size_t n, int64_t lease_ms, size_t *extended,
                          sf_err *err)
{
    if (extended)
        *extended = 0;
    sf_status st = check_ids(ids, n, err);
    if (st != SF_OK || n == 0)
        return st;
    argv_t a;
    if ((st = argv_init(&a, n + 1, 1, err)) != SF_OK)
        return st;
    snprintf(a.num[0], SCORE_TEXT, "%lld", (long long)lease_ms);
    a.v[a.n++] = a.num[0];
    for (size_t i = 0; i < n; i++)
        a.v[a.n++] = ids[i];
    const char *keys[] = {q->leases};
    sf_redis_reply *rep = NULL;
    st = run_script(q, S_EXTEND, 1, keys, a.n, a.v, &rep, err);
    argv_destroy(&a);
    if (st != SF_OK) {
        sf_redis_reply_free(rep);
        return st;
    }
    return int_reply(rep, extended, err);
}

sf_status sf_queue_expired(sf_queue *q, size_t max, sf_queue_id *ids, size_t *n, sf_err *err)
{
    *n = 0;
    sf_status st = check_count(max, err);
    if (st != SF_OK || max == 0)
        return st;
    char smax[24];
    snprintf(smax, sizeof smax, "%zu", max);
    const char *keys[] = {q->leases};
    const char *args[] = {smax};
    sf_redis_reply *rep = NULL;
    st = run_script(q, S_EXPIRED, 1, keys, 1, args, &rep, err);
    if (st != SF_OK) {
        sf_redis_reply_free(rep);
        return st;
    }
    return ids_reply(rep, max, ids, n, err);
}

/* ---- cancel, depth, incarnation, purge ---------------------------------- */

sf_status sf_queue_remove(sf_queue *q, const sf_queue_entry *e, size_t n, size_t *removed, sf_err *err)
{
    if (removed)
        *removed = 0;
    sf_status st = check_entries(e, n, 0, err);
    if (st != SF_OK || n == 0)
        return st;
    argv_t a;
    if ((st = argv_init(&a, 2 * n, 0, err)) != SF_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        a.v[a.n++] = e[i].id;
        a.v[a.n++] = e[i].tenant;
    }
    const char *keys[] = {q->ready, q->ids};
    sf_redis_reply *rep = NULL;
    st = run_script(q, S_REMOVE, 2, keys, a.n, a.v, &rep, err);
    argv_destroy(&a);
    if (st != SF_OK) {
        sf_redis_reply_free(rep);
        return st;
    }
    return int_reply(rep, removed, err);
}

sf_status sf_queue_get_depth(sf_queue *q, sf_queue_depth *out, sf_err *err)
{
    memset(out, 0, sizeof *out);
    char band[32];
    snprintf(band, sizeof band, "%.0f", SF_QUEUE_PRIORITY_BAND);
    const char *keys[] = {q->ids, q->leases, q->tset, q->wake};
    const char *args[] = {band};
    sf_redis_reply *rep = NULL;
    sf_status st = run_script(q, S_DEPTH, 4, keys, 1, args, &rep, err);
    if (st == SF_OK && (sf_redis_reply_type(rep) != SF_REDIS_ARRAY || sf_redis_reply_len(rep) != 6))
        st = sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply to the depth script");
    if (st == SF_OK) {
        for (int p = 0; p < SF_QUEUE_PRIORITIES; p++) {
            out->ready[p] = sf_redis_reply_int(sf_redis_reply_at(rep, (size_t)p));
            out->ready_total += out->ready[p];
        }
        out->leased = sf_redis_reply_int(sf_redis_reply_at(rep, 3));
        out->tenants = sf_redis_reply_int(sf_redis_reply_at(rep, 4));
        out->wake = sf_redis_reply_int(sf_redis_reply_at(rep, 5));
    }
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_worker_beat(sf_queue *q, const char *name, int64_t ttl_ms, sf_err *err)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= SF_QUEUE_ID_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "worker name: 1 to %d bytes", SF_QUEUE_ID_MAX - 1);
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    const char *keys[] = {q->workers};
    const char *args[] = {name, ttl};
    sf_redis_reply *rep = NULL;
    sf_status st = run_script(q, S_WBEAT, 1, keys, 2, args, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_workers_live(sf_queue *q, int64_t *n, sf_err *err)
{
    *n = 0;
    const char *keys[] = {q->workers};
    sf_redis_reply *rep = NULL;
    sf_status st = run_script(q, S_WLIVE, 1, keys, 0, NULL, &rep, err);
    if (st == SF_OK && sf_redis_reply_type(rep) != SF_REDIS_INT)
        st = sf_err_set(err, SF_ERR_REDIS, "redis: unexpected reply to the workers script");
    if (st == SF_OK)
        *n = sf_redis_reply_int(rep);
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_incarnation_get(sf_queue *q, char *value, size_t size, int *found, sf_err *err)
{
    *found = 0;
    if (size)
        value[0] = '\0';
    const char *argv[] = {"GET", q->incarnation};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(q->r, 2, argv, NULL, &rep, err);
    size_t len = 0;
    const char *s = st == SF_OK && sf_redis_reply_type(rep) == SF_REDIS_STR ? sf_redis_reply_str(rep, &len) : NULL;
    if (s != NULL) {
        *found = 1;
        if (size)
            snprintf(value, size, "%.*s", (int)len, s);
    }
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_incarnation_set(sf_queue *q, const char *value, sf_err *err)
{
    const char *argv[] = {"SET", q->incarnation, value};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(q->r, 3, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_publish_cancel(sf_queue *q, const char *const *ids, size_t n, sf_err *err)
{
    sf_status st = check_ids(ids, n, err);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        const char *argv[] = {"PUBLISH", q->cancel, ids[i]};
        st = sf_redis_append(q->r, 3, argv, NULL, err);
    }
    if (st != SF_OK)
        return st; /* an unread pipeline is only possible on a broken connection */
    sf_status first = SF_OK;
    for (size_t i = 0; i < n; i++) {
        sf_redis_reply *rep = NULL;
        sf_status rs = sf_redis_read(q->r, &rep, first == SF_OK ? err : NULL);
        sf_redis_reply_free(rep);
        if (rs == SF_ERR_UNAVAILABLE)
            return rs;
        if (first == SF_OK)
            first = rs;
    }
    return first;
}

sf_status sf_queue_publish_auth(sf_queue *q, const char *what, sf_err *err)
{
    const char *argv[] = {"PUBLISH", q->auth, what};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(q->r, 3, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

sf_status sf_queue_purge(sf_queue *q, sf_err *err)
{
    const char *argv[] = {"DEL", q->ready, q->ids, q->tenants, q->tset, q->wake, q->leases, q->incarnation, q->workers};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(q->r, 9, argv, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}
