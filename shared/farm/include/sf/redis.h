/*
 * redis: the Redis adapter (the only module that includes hiredis.h; Debian's
 * hiredis 0.14, so RESP2 only).
 *
 * One sf_redis is one connection, used by one thread at a time. URLs are
 * redis://[[user]:password@]host[:port][/db]. Every command has a socket
 * timeout (command_timeout_ms); a blocking command (BLMOVE, BRPOP ...) goes
 * through sf_redis_cmd_blocking, which raises the socket timeout above the
 * block time for that call, since hiredis kills a context whose read times out.
 *
 * Errors: a connection that cannot be made, or breaks (after which the
 * connection must be reopened with sf_redis_reconnect), is SF_ERR_UNAVAILABLE;
 * an error reply ("-ERR ...") is SF_ERR_REDIS and the connection stays usable.
 *
 * Ownership: sf_redis_open/close; every reply from a call is freed by
 * sf_redis_reply_free (accepts NULL); nested replies are borrowed from their
 * parent. Messages never contain the password.
 */
#ifndef SF_REDIS_H
#define SF_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

typedef struct sf_redis sf_redis;
typedef struct sf_redis_reply sf_redis_reply;

typedef enum sf_redis_type {
    SF_REDIS_NIL,
    SF_REDIS_INT,
    SF_REDIS_STR,
    SF_REDIS_ARRAY,
    SF_REDIS_STATUS,
    SF_REDIS_ERROR
} sf_redis_type;

typedef struct sf_redis_url {
    char host[256];
    int port;
    char password[256];
    int db;
} sf_redis_url;

typedef struct sf_redis_opts {
    int connect_timeout_ms; /* per attempt; 0 = 2000 */
    int command_timeout_ms; /* socket timeout of ordinary commands; 0 = 5000 */
    int connect_attempts;   /* 0 = 1 */
    int backoff_initial_ms; /* 0 = 100; doubles up to 5 s */
    /* CLIENT SETNAME on every (re)connection, so CLIENT LIST tells the
     * programs' connections apart ("sf-worker/claimer", like PostgreSQL's
     * application_name); NULL or "" = none. Copied; at most 63 bytes, no
     * spaces (Redis refuses them). */
    const char *client_name;
} sf_redis_opts;

/* A Lua script, run by EVALSHA with a fallback to EVAL on NOSCRIPT (so a
 * flushed or restarted Redis is handled). sha is filled on first use. */
typedef struct sf_redis_script {
    const char *source;
    char sha[41];
} sf_redis_script;

sf_status sf_redis_parse_url(const char *url, sf_redis_url *out, sf_err *err);

sf_status sf_redis_open(const char *url, const sf_redis_opts *opts, sf_redis **out, sf_err *err);
void sf_redis_close(sf_redis *r);
/* Drop the connection and make a new one (bounded attempts as at open). */
sf_status sf_redis_reconnect(sf_redis *r, sf_err *err);
int sf_redis_is_ok(const sf_redis *r);

/* One command from an argument vector (lens may be NULL for C strings). */
sf_status sf_redis_cmd(sf_redis *r, int argc, const char *const *argv, const size_t *lens, sf_redis_reply **out,
                       sf_err *err);
/* Same, with block_ms the longest the server may block (BLMOVE timeout). */
sf_status sf_redis_cmd_blocking(sf_redis *r, int block_ms, int argc, const char *const *argv, const size_t *lens,
                                sf_redis_reply **out, sf_err *err);

/* Pipelining: queue commands, then read their replies in order. */
sf_status sf_redis_append(sf_redis *r, int argc, const char *const *argv, const size_t *lens, sf_err *err);
sf_status sf_redis_read(sf_redis *r, sf_redis_reply **out, sf_err *err);
/* A subscribed connection's next message (SUBSCRIBE first, with sf_redis_cmd):
 * waits at most wait_ms for it; SF_OK with *out NULL when none came (the
 * connection stays usable: no socket timeout is involved). */
sf_status sf_redis_read_wait(sf_redis *r, int wait_ms, sf_redis_reply **out, sf_err *err);

/* EVALSHA script numkeys keys... args... */
sf_status sf_redis_eval(sf_redis *r, sf_redis_script *script, int nkeys, const char *const *keys, int nargs,
                        const char *const *args, sf_redis_reply **out, sf_err *err);

sf_redis_type sf_redis_reply_type(const sf_redis_reply *rep);
long long sf_redis_reply_int(const sf_redis_reply *rep);
/* String, status or error text; NULL for other types. */
const char *sf_redis_reply_str(const sf_redis_reply *rep, size_t *len);
size_t sf_redis_reply_len(const sf_redis_reply *rep); /* array elements */
const sf_redis_reply *sf_redis_reply_at(const sf_redis_reply *rep, size_t i);
void sf_redis_reply_free(sf_redis_reply *rep);

#endif
