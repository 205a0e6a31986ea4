/*
 * libFuzzer harness for the Redis side: the URL parser (sf_redis_parse_url)
 * and replies as the code reads them (RESP bytes through hiredis' reader,
 * the parser sf_redis uses, then walked with the sf_redis_reply accessors
 * the queue and the scripts' callers use). The input's first line is a URL,
 * the rest RESP.
 *
 * Checks beyond "no crash, no leak, no UB": an accepted URL has a host, a
 * port 1-65535 and a database 0-1000, and its port and database are the
 * whole of their text (nothing after them is dropped unread); a reply's type,
 * string, length and elements read back as hiredis built them, and an index
 * past the end gives NULL. Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "sf/redis.h"

#define MAX_REPLIES 8
#define MAX_ELEMENTS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The text of a number in the URL: digits (with a sign strtoll takes) up to stop. */
static int number_text(const char *s, const char *stop)
{
    size_t n = strcspn(s, stop);
    return n > 0 && strspn(s, "+-0123456789") == n;
}

static void check_url(const char *url)
{
    sf_redis_url u;
    sf_err err = {0};
    if (sf_redis_parse_url(url, &u, &err) != SF_OK) {
        if (err.msg[0] == '\0')
            __builtin_trap();
        return;
    }
    if (u.host[0] == '\0' || u.port < 1 || u.port > 65535 || u.db < 0 || u.db > 1000)
        __builtin_trap();
    const char *at = strrchr(url + 8, '@');
    const char *p = (at ? at + 1 : url + 8) + strlen(u.host);
    if (*p == ':' && !number_text(++p, "/"))
        __builtin_trap();
    p += strcspn(p, "/");
    if (*p == '/' && p[1] != '\0' && !number_text(p + 1, ""))
        __builtin_trap();
}

static void check_reply(const redisReply *x, const sf_redis_reply *rep, int depth)
{
    size_t len = 99;
    const char *s = sf_redis_reply_str(rep, &len);
    switch (sf_redis_reply_type(rep)) {
    case SF_REDIS_INT:
        if (x->type != REDIS_REPLY_INTEGER || sf_redis_reply_int(rep) != x->integer || s != NULL)
            __builtin_trap();
        break;
    case SF_REDIS_STR:
    case SF_REDIS_STATUS:
    case SF_REDIS_ERROR:
        if (s != x->str || len != x->len || s[len] != '\0')
            __builtin_trap();
        if (x->type == REDIS_REPLY_STRING && sf_redis_reply_int(rep) != strtoll(x->str, NULL, 10))
            __builtin_trap();
        break;
    case SF_REDIS_ARRAY:
        if (x->type != REDIS_REPLY_ARRAY || sf_redis_reply_len(rep) != x->elements || s != NULL)
            __builtin_trap();
        for (size_t i = 0; i < x->elements && depth < 16; i++)
            check_reply(x->element[i], sf_redis_reply_at(rep, i), depth + 1);
        if (sf_redis_reply_at(rep, x->elements) != NULL)
            __builtin_trap();
        break;
    case SF_REDIS_NIL:
        if (x->type != REDIS_REPLY_NIL || s != NULL || sf_redis_reply_len(rep) != 0)
            __builtin_trap();
        break;
    }
}

/* hiredis allocates an array reply's element table from its announced
 * count ("*100000000"): trusted from our Redis, but here it would only
 * exhaust memory, so counts above MAX_ELEMENTS are left out. */
static int counts_small(const char *bytes, size_t size)
{
    for (const char *p = bytes; (p = memchr(p, '*', size - (size_t)(p - bytes))) != NULL; p++) {
        long n = 0;
        for (const char *d = p + 1; d < bytes + size && *d >= '0' && *d <= '9' && n <= MAX_ELEMENTS; d++)
            n = n * 10 + (*d - '0');
        if (n > MAX_ELEMENTS)
            return 0;
    }
    return 1;
}

static void check_resp(const char *bytes, size_t size)
{
    if (!counts_small(bytes, size))
        return;
    redisReader *rd = redisReaderCreate();
    if (rd == NULL)
        return;
    if (redisReaderFeed(rd, bytes, size) == REDIS_OK) {
        for (int i = 0; i < MAX_REPLIES; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            check_reply(reply, (const sf_redis_reply *)reply, 0);
            sf_redis_reply_free(reply);
        }
    }
    redisReaderFree(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ulen = nl ? (size_t)(nl - data) : size;
    char *url = malloc(ulen + 1);
    if (url == NULL)
        return 0;
    memcpy(url, data, ulen);
    url[ulen] = '\0';
    check_url(url);
    free(url);
    if (nl)
        check_resp((const char *)nl + 1, size - ulen - 1);
    return 0;
}
