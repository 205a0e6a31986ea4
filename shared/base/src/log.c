/* log: JSON lines to stdout and optional files; see sf/log.h. */
#include "sf/log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf/time.h"
#include "sf/utf8.h"

#define NAME_MAX_LEN 64

struct sf_log {
    char service[NAME_MAX_LEN];
    char environment[NAME_MAX_LEN];
    sf_log_level level;
    int out_fd;
    int combined_fd; /* -1 when no LOG_DIR */
    int error_fd;
    pthread_mutex_t write_mu; /* guards the writes to all three fds */
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static const char *const secret_words[] = {"password", "secret", "token", "api_key", "authorization", "key_hash", NULL};

/* A log file opened for appending, created SF_LOG_FILE_MODE; an existing
 * file that others may read or write loses those bits (a file made 0644 by an
 * older version). */
static int open_log_file(const char *dir, const char *name, sf_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, SF_LOG_FILE_MODE);
    if (fd < 0) {
        sf_err_sys(err, SF_ERR_IO, errno, "could not open log file \"%s\": %s", path, sf_err_errno_text(errno).text);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || ((st.st_mode & 07) && fchmod(fd, st.st_mode & 07770) != 0)) {
        int e = errno;
        close(fd);
        sf_err_sys(err, SF_ERR_IO, e, "could not restrict log file \"%s\" to its owner: %s", path,
                   sf_err_errno_text(e).text);
        return -1;
    }
    return fd;
}

sf_status sf_log_open(const char *service, const char *environment, sf_log_level level, const char *log_dir, int out_fd,
                      sf_log **out, sf_err *err)
{
    sf_log *lg = calloc(1, sizeof *lg);
    if (lg == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    snprintf(lg->service, sizeof lg->service, "%s", service);
    snprintf(lg->environment, sizeof lg->environment, "%s", environment ? environment : "");
    lg->level = level;
    lg->out_fd = out_fd;
    lg->combined_fd = lg->error_fd = -1;
    pthread_mutex_init(&lg->write_mu, NULL);
    if (log_dir && *log_dir) {
        lg->combined_fd = open_log_file(log_dir, "combined.log", err);
        lg->error_fd = lg->combined_fd < 0 ? -1 : open_log_file(log_dir, "error.log", err);
        if (lg->error_fd < 0) {
            sf_log_close(lg);
            return SF_ERR_IO;
        }
    }
    *out = lg;
    return SF_OK;
}

void sf_log_close(sf_log *lg)
{
    if (lg == NULL)
        return;
    if (lg->combined_fd >= 0)
        close(lg->combined_fd);
    if (lg->error_fd >= 0)
        close(lg->error_fd);
    pthread_mutex_destroy(&lg->write_mu);
    free(lg);
}

int sf_log_enabled(const sf_log *lg, sf_log_level level)
{
    return lg != NULL && level >= lg->level;
}

/* Bounded writer into a fixed buffer; keeps room for the closing "}\n". */
typedef struct line {
    char *p;
    size_t len, cap;
    int overflow; /* a put did not fit (strings truncate themselves instead) */
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len) {
        n = l->cap - l->len;
        l->overflow = 1;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

/* The JSON text for the character at c into esc; *adv gets the bytes used.
 * Invalid UTF-8 becomes U+FFFD so the line stays valid JSON. */
static size_t escape_one(const unsigned char *c, char esc[8], size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    static const char simple[][2] = {{'"', '"'}, {'\\', '\\'}, {'\n', 'n'}, {'\r', 'r'}, {'\t', 't'}};
    *adv = 1;
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (*c == (unsigned char)simple[i][0]) {
            esc[0] = '\\';
            esc[1] = simple[i][1];
            return 2;
        }
    if (*c < 0x20 || *c == 0x7f) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[*c >> 4];
        esc[5] = hex[*c & 15];
        return 6;
    }
    size_t n = sf_utf8_len(c);
    if (n == 0) {
        memcpy(esc, "\\ufffd", 6);
        return 6;
    }
    memcpy(esc, c, n);
    *adv = n;
    return n;
}

static void put_json_string(line *l, const char *s)
{
    put(l, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        char esc[8];
        size_t adv;
        size_t n = escape_one(c, esc, &adv);
        if (l->cap - l->len < n + 1) /* never split an escape or a character; room for the quote */
            break;
        put(l, esc, n);
        c += adv;
    }
    put(l, "\"", 1);
}

static int is_secret_key(const char *key)
{
    for (int i = 0; secret_words[i]; i++)
        if (strcasestr(key, secret_words[i]))
            return 1;
    return 0;
}

/* Replace [from, to) in buf with "***", cutting the tail if it no longer fits. */
static void mask_span(char *buf, size_t size, char *from, const char *to)
{
    size_t room = size - 1 - (size_t)(from - buf); /* bytes from `from` up to the NUL */
    if (room < 3) {
        *from = '\0';
        return;
    }
    size_t tail = strlen(to);
    size_t keep = tail < room - 3 ? tail : room - 3;
    memmove(from + 3, to, keep);
    memcpy(from, "***", 3);
    from[3 + keep] = '\0';
}

void sf_log_mask_url(const char *s, char *buf, size_t size)
{
    if (size == 0)
        return;
    snprintf(buf, size, "%s", s ? s : "");
    for (char *scheme = strstr(buf, "://"); scheme; scheme = strstr(scheme + 3, "://")) {
        char *auth = scheme + 3;
        size_t alen = strcspn(auth, "/?# \t\r\n\"'<>"); /* the authority ends here */
        char *at = memrchr(auth, '@', alen);
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon && at - colon > 1)
            mask_span(buf, size, colon + 1, at);
    }
}

static void put_field(line *l, const sf_log_field *f)
{
    char num[64];
    put(l, ",", 1);
    put_json_string(l, f->key);
    put(l, ":", 1);
    if (is_secret_key(f->key)) {
        put_json_string(l, "[redacted]");
        return;
    }
    switch (f->type) {
    case SF_LF_STR_: {
        char masked[SF_LOG_LINE_MAX];
        sf_log_mask_url(f->v.s ? f->v.s : "", masked, sizeof masked);
        put_json_string(l, masked);
        return;
    }
    case SF_LF_INT_: snprintf(num, sizeof num, "%lld", (long long)f->v.i); break;
    case SF_LF_DBL_:
        if (isfinite(f->v.d))
            snprintf(num, sizeof num, "%.17g", f->v.d);
        else
            snprintf(num, sizeof num, "null");
        break;
    case SF_LF_BOOL_: snprintf(num, sizeof num, "%s", f->v.i ? "true" : "false"); break;
    default: snprintf(num, sizeof num, "null");
    }
    put(l, num, strlen(num));
}

size_t sf_log_format(const sf_log *lg, sf_log_level level, int64_t now_ms, const char *message,
                     const sf_log_field *fields, char *buf, size_t size)
{
    if (size < 3)
        return 0;
    line l = {buf, 0, size - 2, 0}; /* room for "}\n" */
    char ts[SF_TIME_ISO_MAX];
    sf_time_format_iso8601_ms(now_ms, ts, sizeof ts);
    char masked[SF_LOG_LINE_MAX];
    sf_log_mask_url(message ? message : "", masked, sizeof masked);
    put(&l, "{\"timestamp\":", 13);
    put_json_string(&l, ts);
    put(&l, ",\"level\":", 9);
    put_json_string(&l, level_names[level]);
    put(&l, ",\"service\":", 11);
    put_json_string(&l, lg->service);
    put(&l, ",\"environment\":", 15);
    put_json_string(&l, lg->environment);
    put(&l, ",\"message\":", 11);
    put_json_string(&l, masked);
    for (const sf_log_field *f = fields; f && f->type != SF_LF_END_; f++) {
        size_t before = l.len;
        put_field(&l, f);
        if (l.overflow) { /* out of room: drop the partial field */
            l.len = before;
            break;
        }
    }
    buf[l.len++] = '}';
    buf[l.len++] = '\n';
    return l.len;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* a log that cannot be written is dropped, never fatal */
        p += w;
        n -= (size_t)w;
    }
}

void sf_log_emit(sf_log *lg, sf_log_level level, const char *message, const sf_log_field *fields)
{
    if (!sf_log_enabled(lg, level))
        return;
    char buf[SF_LOG_LINE_MAX];
    size_t n = sf_log_format(lg, level, sf_time_now_ms(), message, fields, buf, sizeof buf);
    pthread_mutex_lock(&lg->write_mu);
    if (lg->out_fd >= 0)
        write_all(lg->out_fd, buf, n);
    if (lg->combined_fd >= 0)
        write_all(lg->combined_fd, buf, n);
    if (lg->error_fd >= 0 && level == SF_LOG_ERROR)
        write_all(lg->error_fd, buf, n);
    pthread_mutex_unlock(&lg->write_mu);
}
