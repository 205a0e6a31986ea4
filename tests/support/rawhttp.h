/*
 * rawhttp: HTTP/1.1 over plain sockets for tests that play a client no
 * library would be (slow, greedy, lying about its body) on loopback, from a
 * chosen source address of 127.0.0.0/8 (header-only).
 *
 * Thread safety: none needed (each call owns its socket). Failures of the
 * test's own set-up fail the test; a refused connection returns -1.
 */
#ifndef SF_TEST_RAWHTTP_H
#define SF_TEST_RAWHTTP_H

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline int64_t rawhttp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP connection to 127.0.0.1:port from source address src; -1 if refused. */
static inline int rawhttp_dial(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %d", src, errno);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send all of text (no SIGPIPE); 1 when it was sent. */
static inline int rawhttp_send(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, text, len, MSG_NOSIGNAL);
        if (w <= 0)
            return 0;
        text += w;
        len -= (size_t)w;
    }
    return 1;
}

/* Read a response (until its headers and a JSON body's last "}\n", the peer
 * closing, or timeout_ms); NUL-terminated into buf. */
static inline size_t rawhttp_read(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t end = rawhttp_now_ms() + timeout_ms;
    buf[0] = '\0';
    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - rawhttp_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n") && strstr(buf, "}\n"))
            break;
    }
    buf[n] = '\0';
    return n;
}

/* One whole request (its full text) from src; the milliseconds to a response
 * within timeout_ms, or -1 when none came. */
static inline int64_t rawhttp_timed(const char *src, int port, const char *request, char *resp, size_t size,
                                    int timeout_ms)
{
    int64_t t0 = rawhttp_now_ms();
    int fd = rawhttp_dial(src, port);
    if (fd < 0)
        return -1;
    int sent = rawhttp_send(fd, request, strlen(request));
    size_t n = sent ? rawhttp_read(fd, resp, size, timeout_ms) : 0;
    close(fd);
    return n > 0 && strncmp(resp, "HTTP/1.1 ", 9) == 0 ? rawhttp_now_ms() - t0 : -1;
}

/* Is fd closed by the server (EOF or reset) within timeout_ms? */
static inline int rawhttp_closed(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    char c;
    return read(fd, &c, 1) <= 0;
}

/* n connections from src that each send the first bytes of a request and
 * then nothing (half are idle: not a byte); fds[i] = -1 when refused. */
static inline int rawhttp_slow_open(const char *src, int port, int *fds, int n)
{
    int open_ = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = rawhttp_dial(src, port);
        if (fds[i] >= 0 && (i % 2 == 1 || rawhttp_send(fds[i], "GE", 2)))
            open_++;
    }
    return open_;
}

/* One more header byte on every slow (even) connection still open. */
static inline void rawhttp_slow_trickle(int *fds, int n)
{
    for (int i = 0; i < n; i += 2)
        if (fds[i] >= 0 && !rawhttp_send(fds[i], "T", 1)) {
            close(fds[i]);
            fds[i] = -1;
        }
}

#endif
