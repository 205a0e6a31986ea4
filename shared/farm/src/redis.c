/* redis: hiredis adapter; see sf/redis.h. */
#include "sf/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sf/config.h"

#define MAX_ARGS 4096

struct sf_redis {
    redisContext *ctx;
    sf_redis_url url;
    sf_redis_opts opts;
    char name[64]; /* opts.client_name, copied */
};

/* sf_redis_reply is redisReply; the cast keeps hiredis out of the header. */

/* hiredis takes `const char **` for argument vectors it does not modify. */
static const char **argv_cast(const char *const *argv)
{
    union {
        const char *const *c;
        const char **m;
    } u = {argv};
    return u.m;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static struct timeval tv_ms(int ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* The number in text[0..len), all of it: a text too long for any number in
 * range is refused, not cut short to one that parses. */
static sf_status url_int(const char *text, size_t len, int64_t min, int64_t max, int64_t *out, sf_err *err)
{
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)(len < sizeof num ? len : sizeof num - 1), text);
    if (len >= sizeof num)
        return sf_err_set(err, SF_ERR_PARSE, "must be an integer from %lld to %lld, got \"%s...\"", (long long)min,
                          (long long)max, num);
    return sf_config_parse_int(num, min, max, out, err);
}

sf_status sf_redis_parse_url(const char *url, sf_redis_url *out, sf_err *err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return sf_err_set(err, SF_ERR_PARSE, "redis url must start with redis://");
    p += 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof out->password)
            return sf_err_set(err, SF_ERR_PARSE, "redis url: password too long");
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof out->host)
        return sf_err_set(err, SF_ERR_PARSE, "redis url: missing or too long host");
    memcpy(out->host, p, hl);
    p += hl;
    int64_t v;
    if (*p == ':') {
        size_t pl = strcspn(++p, "/");
        if (url_int(p, pl, 1, 65535, &v, err) != SF_OK) {
            sf_err_prefix(err, "redis url: port");
            return SF_ERR_PARSE;
        }
        out->port = (int)v;
        p += pl;
    }
    if (*p == '/' && p[1] != '\0') {
        if (url_int(p + 1, strlen(p + 1), 0, 1000, &v, err) != SF_OK) {
            sf_err_prefix(err, "redis url: database number");
            return SF_ERR_PARSE;
        }
        out->db = (int)v;
    }
    return SF_OK;
}

static sf_status check_reply(sf_redis *r, redisReply *rep, sf_err *err)
{
    if (rep == NULL) {
        const char *why = r->ctx->errstr[0] ? r->ctx->errstr : "connection closed";
        sf_err_set(err, SF_ERR_UNAVAILABLE, "lost connection to redis %s:%d: %s", r->url.host, r->url.port,
                   r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK) ? "timed out" : why);
        return SF_ERR_UNAVAILABLE;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        sf_err_set(err, SF_ERR_REDIS, "redis: %.*s", (int)rep->len, rep->str);
        return SF_ERR_REDIS;
    }
    return SF_OK;
}

/* AUTH, SELECT and CLIENT SETNAME on a fresh context. */
static sf_status handshake(sf_redis *r, sf_err *err)
{
    char db[16];
    snprintf(db, sizeof db, "%d", r->url.db);
    const char *auth[] = {"AUTH", r->url.password};
    const char *sel[] = {"SELECT", db};
    const char *setname[] = {"CLIENT", "SETNAME", r->name};
    sf_redis_reply *rep = NULL;
    sf_status st = SF_OK;
    if (r->url.password[0])
        st = sf_redis_cmd(r, 2, auth, NULL, &rep, err);
    sf_redis_reply_free(rep);
    rep = NULL;
    if (st == SF_OK && r->url.db != 0)
        st = sf_redis_cmd(r, 2, sel, NULL, &rep, err);
    sf_redis_reply_free(rep);
    rep = NULL;
    if (st == SF_OK && r->name[0])
        st = sf_redis_cmd(r, 3, setname, NULL, &rep, err);
    sf_redis_reply_free(rep);
    return st;
}

static sf_status connect_loop(sf_redis *r, sf_err *err)
{
    int attempts = r->opts.connect_attempts > 0 ? r->opts.connect_attempts : 1;
    int backoff = r->opts.backoff_initial_ms > 0 ? r->opts.backoff_initial_ms : 100;
    char why[256] = "";
    for (int i = 0; i < attempts; i++) {
        if (i > 0) {
            sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, tv_ms(r->opts.connect_timeout_ms));
        if (r->ctx && r->ctx->err == 0 && redisSetTimeout(r->ctx, tv_ms(r->opts.command_timeout_ms)) == REDIS_OK) {
            redisEnableKeepAlive(r->ctx);
            sf_status st = handshake(r, err);
            if (st == SF_OK || st == SF_ERR_REDIS)
                return st; /* a refused AUTH will not improve by retrying */
            snprintf(why, sizeof why, "%.200s", err ? err->msg : "handshake failed");
        } else {
            snprintf(why, sizeof why, "%s", r->ctx ? r->ctx->errstr : "out of memory");
        }
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    return sf_err_set(err, SF_ERR_UNAVAILABLE, "could not connect to redis %s:%d after %d attempt%s: %s", r->url.host,
                      r->url.port, attempts, attempts == 1 ? "" : "s", why);
}

sf_status sf_redis_open(const char *url, const sf_redis_opts *opts, sf_redis **out, sf_err *err)
{
    sf_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    sf_status st = sf_redis_parse_url(url, &r->url, err);
    if (st != SF_OK) {
        free(r);
        return st;
    }
    r->opts = opts ? *opts : (sf_redis_opts){0};
    if (r->opts.client_name != NULL) {
        if (strlen(r->opts.client_name) >= sizeof r->name || strchr(r->opts.client_name, ' ') != NULL) {
            sf_err_set(err, SF_ERR_INVALID, "redis client name \"%.64s\": at most %zu bytes, no spaces",
                       r->opts.client_name, sizeof r->name - 1);
            free(r);
            return SF_ERR_INVALID;
        }
        snprintf(r->name, sizeof r->name, "%s", r->opts.client_name);
    }
    r->opts.client_name = NULL; /* the copy in r->name is the one used */
    if (r->opts.connect_timeout_ms <= 0)
        r->opts.connect_timeout_ms = 2000;
    if (r->opts.command_timeout_ms <= 0)
        r->opts.command_timeout_ms = 5000;
    st = connect_loop(r, err);
    if (st != SF_OK) {
        sf_redis_close(r);
        return st;
    }
    *out = r;
    return SF_OK;
}

void sf_redis_close(sf_redis *r)
{
    if (r == NULL)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    memset(r->url.password, 0, sizeof r->url.password);
    free(r);
}

sf_status sf_redis_reconnect(sf_redis *r, sf_err *err)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    return connect_loop(r, err);
}

int sf_redis_is_ok(const sf_redis *r)
{
    return r && r->ctx && r->ctx->err == 0;
}

static sf_status not_connected(sf_redis *r, sf_err *err)
{
    return sf_err_set(err, SF_ERR_UNAVAILABLE, "not connected to redis %s:%d", r->url.host, r->url.port);
}

sf_status sf_redis_cmd(sf_redis *r, int argc, const char *const *argv, const size_t *lens, sf_redis_reply **out,
                       sf_err *err)
{
    *out = NULL;
    if (!sf_redis_is_ok(r))
        return not_connected(r, err);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv_cast(argv), lens);
    sf_status st = check_reply(r, rep, err);
    if (st == SF_ERR_UNAVAILABLE)
        return st;
    *out = (sf_redis_reply *)rep;
    return st;
}

sf_status sf_redis_cmd_blocking(sf_redis *r, int block_ms, int argc, const char *const *argv, const size_t *lens,
                                sf_redis_reply **out, sf_err *err)
{
    *out = NULL;
    if (!sf_redis_is_ok(r))
        return not_connected(r, err);
    redisSetTimeout(r->ctx, tv_ms(block_ms + r->opts.command_timeout_ms));
    sf_status st = sf_redis_cmd(r, argc, argv, lens, out, err);
    if (sf_redis_is_ok(r))
        redisSetTimeout(r->ctx, tv_ms(r->opts.command_timeout_ms));
    return st;
}

sf_status sf_redis_append(sf_redis *r, int argc, const char *const *argv, const size_t *lens, sf_err *err)
{
    if (!sf_redis_is_ok(r))
        return not_connected(r, err);
    if (redisAppendCommandArgv(r->ctx, argc, argv_cast(argv), lens) != REDIS_OK)
        return sf_err_set(err, SF_ERR_NOMEM, "could not queue redis command");
    return SF_OK;
}

sf_status sf_redis_read(sf_redis *r, sf_redis_reply **out, sf_err *err)
{
    *out = NULL;
    if (!sf_redis_is_ok(r))
        return not_connected(r, err);
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    sf_status st = check_reply(r, rep, err);
    if (st == SF_ERR_UNAVAILABLE)
        return st;
    *out = rep;
    return st;
}

sf_status sf_redis_read_wait(sf_redis *r, int wait_ms, sf_redis_reply **out, sf_err *err)
{
    *out = NULL;
    if (!sf_redis_is_ok(r))
        return not_connected(r, err);
    void *rep = NULL;
    if (redisGetReplyFromReader(r->ctx, &rep) != REDIS_OK)
        return check_reply(r, NULL, err);
    if (rep == NULL) {
        struct pollfd p = {.fd = r->ctx->fd, .events = POLLIN};
        int n = poll(&p, 1, wait_ms < 0 ? 0 : wait_ms);
        if (n < 0 && errno != EINTR)
            return sf_err_sys(err, SF_ERR_UNAVAILABLE, errno, "could not wait for redis %s:%d", r->url.host,
                              r->url.port);
        if (n <= 0)
            return SF_OK;
        if (redisBufferRead(r->ctx) != REDIS_OK || redisGetReplyFromReader(r->ctx, &rep) != REDIS_OK)
            return check_reply(r, NULL, err);
        if (rep == NULL)
            return SF_OK; /* part of a message: the rest comes with the next call */
    }
    sf_status st = check_reply(r, rep, err);
    *out = rep;
    return st;
}

static sf_status eval_with(sf_redis *r, const char *verb, const char *body, int nkeys, const char *const *keys,
                           int nargs, const char *const *args, sf_redis_reply **out, sf_err *err)
{
    int argc = 3 + nkeys + nargs;
    if (argc > MAX_ARGS)
        return sf_err_set(err, SF_ERR_LIMIT, "redis script call has more than %d arguments", MAX_ARGS);
    const char **argv = malloc(sizeof *argv * (size_t)argc);
    if (argv == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = verb;
    argv[1] = body;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    sf_status st = sf_redis_cmd(r, argc, argv, NULL, out, err);
    free(argv);
    return st;
}

sf_status sf_redis_eval(sf_redis *r, sf_redis_script *script, int nkeys, const char *const *keys, int nargs,
                        const char *const *args, sf_redis_reply **out, sf_err *err)
{
    if (script->sha[0]) {
        sf_status st = eval_with(r, "EVALSHA", script->sha, nkeys, keys, nargs, args, out, err);
        const char *why = st == SF_ERR_REDIS && *out ? sf_redis_reply_str(*out, NULL) : NULL;
        if (why == NULL || strncmp(why, "NOSCRIPT", 8) != 0) /* from the reply: err may be NULL */
            return st;
        sf_redis_reply_free(*out);
        *out = NULL;
    }
    const char *load[] = {"SCRIPT", "LOAD", script->source};
    sf_redis_reply *rep = NULL;
    sf_status st = sf_redis_cmd(r, 3, load, NULL, &rep, err);
    if (st == SF_OK && rep && ((redisReply *)rep)->type == REDIS_REPLY_STRING)
        snprintf(script->sha, sizeof script->sha, "%s", ((redisReply *)rep)->str);
    sf_redis_reply_free(rep);
    if (st != SF_OK)
        return st;
    return eval_with(r, "EVALSHA", script->sha, nkeys, keys, nargs, args, out, err);
}

sf_redis_type sf_redis_reply_type(const sf_redis_reply *rep)
{
    const redisReply *x = (const redisReply *)rep;
    switch (x->type) {
    case REDIS_REPLY_INTEGER: return SF_REDIS_INT;
    case REDIS_REPLY_STRING: return SF_REDIS_STR;
    case REDIS_REPLY_ARRAY: return SF_REDIS_ARRAY;
    case REDIS_REPLY_STATUS: return SF_REDIS_STATUS;
    case REDIS_REPLY_ERROR: return SF_REDIS_ERROR;
    default: return SF_REDIS_NIL;
    }
}

long long sf_redis_reply_int(const sf_redis_reply *rep)
{
    const redisReply *x = (const redisReply *)rep;
    if (x->type == REDIS_REPLY_INTEGER)
        return x->integer;
    if (x->type == REDIS_REPLY_STRING)
        return strtoll(x->str, NULL, 10);
    return 0;
}

const char *sf_redis_reply_str(const sf_redis_reply *rep, size_t *len)
{
    const redisReply *x = (const redisReply *)rep;
    if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS && x->type != REDIS_REPLY_ERROR)
        return NULL;
    if (len)
        *len = x->len;
    return x->str;
}

size_t sf_redis_reply_len(const sf_redis_reply *rep)
{
    const redisReply *x = (const redisReply *)rep;
    return x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
}

const sf_redis_reply *sf_redis_reply_at(const sf_redis_reply *rep, size_t i)
{
    const redisReply *x = (const redisReply *)rep;
    if (x->type != REDIS_REPLY_ARRAY || i >= x->elements)
        return NULL;
    return (const sf_redis_reply *)x->element[i];
}

void sf_redis_reply_free(sf_redis_reply *rep)
{
    if (rep)
        freeReplyObject(rep);
}
