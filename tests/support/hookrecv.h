/*
 * hookrecv: a tiny HTTP receiver on 127.0.0.1 for webhook tests
 * (header-only: CMake builds each tests/<kind>/test_*.c as its own executable).
 *
 * hookrecv_start binds an ephemeral port and runs one thread that accepts one
 * connection at a time, reads one request (headers, then Content-Length
 * bytes of body), records it, and answers with the status set in `status`
 * (Connection: close). Waits are bounded (poll with 100 ms ticks, a 5 s read
 * deadline per request).
 *
 * Thread safety: the recorded requests are guarded by mu; read them through
 * hookrecv_count / hookrecv_get. Ownership: hookrecv_stop joins the thread
 * and frees the recorded requests.
 */
#ifndef SF_HOOKRECV_H
#define SF_HOOKRECV_H

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sf/err.h"

#define HOOKRECV_MAX 64        /* requests recorded */
#define HOOKRECV_REQ_MAX 65536 /* bytes of one request */

typedef struct hookrecv_req {
    char *head; /* request line and headers */
    char *body;
    size_t body_len;
} hookrecv_req;

typedef struct hookrecv {
    int fd;
    int port;
    pthread_t thread;
    atomic_int stop;
    atomic_int status; /* answered to every request */
    pthread_mutex_t mu;
    hookrecv_req reqs[HOOKRECV_MAX]; /* guarded by mu */
    int n;                           /* guarded by mu */
} hookrecv;

static inline int64_t hookrecv_now_ms_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read until the headers and Content-Length bytes of body arrived; length read or -1. */
static inline ssize_t hookrecv_read_(int c, char *buf, size_t max, size_t *head_len)
{
    size_t got = 0, need = 0;
    int64_t end = hookrecv_now_ms_() + 5000;
    *head_len = 0;
    while (hookrecv_now_ms_() < end && got < max - 1) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(c, buf + got, max - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *sep = strstr(buf, "\r\n\r\n");
        if (sep && *head_len == 0) {
            *head_len = (size_t)(sep - buf) + 4;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = *head_len + (cl && cl < sep ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (*head_len && got >= need)
            return (ssize_t)got;
    }
    return -1;
}

static inline void hookrecv_record_(hookrecv *h, const char *buf, size_t len, size_t head_len)
{
    pthread_mutex_lock(&h->mu);
    if (h->n < HOOKRECV_MAX) {
        hookrecv_req *q = &h->reqs[h->n++];
        q->head = strndup(buf, head_len);
        q->body_len = len - head_len;
        q->body = malloc(q->body_len + 1);
        memcpy(q->body, buf + head_len, q->body_len);
        q->body[q->body_len] = '\0';
    }
    pthread_mutex_unlock(&h->mu);
}

static inline void *hookrecv_main_(void *arg)
{
    hookrecv *h = arg;
    char *buf = malloc(HOOKRECV_REQ_MAX);
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        size_t head_len = 0;
        ssize_t len = hookrecv_read_(c, buf, HOOKRECV_REQ_MAX, &head_len);
        if (len > 0) {
            hookrecv_record_(h, buf, (size_t)len, head_len);
            char reply[128];
            int k = snprintf(reply, sizeof reply, "HTTP/1.1 %d Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                             atomic_load(&h->status));
            ssize_t w = write(c, reply, (size_t)k);
            (void)w;
        }
        close(c);
    }
    free(buf);
    return NULL;
}

static inline void hookrecv_start(hookrecv *h, int status)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->stop, 0);
    atomic_init(&h->status, status);
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(h->fd >= 0, "socket: %s", sf_err_errno_text(errno).text);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(bind(h->fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", sf_err_errno_text(errno).text);
    cr_assert(listen(h->fd, 16) == 0);
    cr_assert(getsockname(h->fd, (struct sockaddr *)&a, &alen) == 0);
    h->port = ntohs(a.sin_port);
    cr_assert(pthread_create(&h->thread, NULL, hookrecv_main_, h) == 0);
}

static inline void hookrecv_stop(hookrecv *h)
{
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    for (int i = 0; i < h->n; i++) {
        free(h->reqs[i].head);
        free(h->reqs[i].body);
    }
    h->n = 0;
    pthread_mutex_destroy(&h->mu);
}

static inline int hookrecv_count(hookrecv *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* A copy of request i (heap strings, free both). */
static inline void hookrecv_get(hookrecv *h, int i, char **head, char **body)
{
    pthread_mutex_lock(&h->mu);
    cr_assert(i < h->n, "request %d not received (%d)", i, h->n);
    *head = strdup(h->reqs[i].head);
    *body = strdup(h->reqs[i].body);
    pthread_mutex_unlock(&h->mu);
}

/* The value of header name in head ("" when absent), into buf. */
static inline void hookrecv_header(const char *head, const char *name, char *buf, size_t size)
{
    char key[96];
    snprintf(key, sizeof key, "\r\n%s:", name);
    const char *p = strcasestr(head, key);
    buf[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(buf, size, "%.*s", (int)n, p);
}

#endif
