/*
 * log: structured logging, one JSON object a line.
 *
 * Every line has timestamp (ISO-8601 UTC with milliseconds), level, service,
 * environment and message, then the caller's fields in order. Lines go to
 * stdout and, when a directory is given, to combined.log (every line) and
 * error.log (level error) there. The files are created SF_LOG_FILE_MODE
 * (0600, whatever the umask: the mode is passed to open and the umask can
 * only take bits away), close-on-exec; an existing one that others may read or
 * write has those bits removed at open. A line longer than SF_LOG_LINE_MAX has its
 * message and string fields truncated, never split.
 *
 * Secrets never reach a line: a field whose key names a secret (password,
 * secret, token, api_key, authorization, key_hash) is written as
 * "[redacted]", and a password inside a URL ("redis://:pw@host") is masked in
 * any string value and in the message.
 *
 * Thread safety: sf_log_emit may be called from any thread; each line is
 * written with one write() under a mutex, so lines never interleave.
 * Ownership: sf_log_open returns a new logger freed by sf_log_close.
 */
#ifndef SF_LOG_H
#define SF_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define SF_LOG_LINE_MAX 8192
#define SF_LOG_FILE_MODE 0600 /* combined.log and error.log: the owner only */

typedef enum sf_log_level { SF_LOG_DEBUG, SF_LOG_INFO, SF_LOG_WARN, SF_LOG_ERROR } sf_log_level;

typedef enum sf_log_ftype { SF_LF_END_, SF_LF_STR_, SF_LF_INT_, SF_LF_DBL_, SF_LF_BOOL_ } sf_log_ftype;

typedef struct sf_log_field {
    sf_log_ftype type; /* SF_LF_END_ terminates a list */
    const char *key;
    union {
        const char *s;
        int64_t i;
        double d;
    } v;
} sf_log_field;

#define SF_LF_STR(k, x) ((sf_log_field){.type = SF_LF_STR_, .key = (k), .v.s = (x)})
#define SF_LF_INT(k, x) ((sf_log_field){.type = SF_LF_INT_, .key = (k), .v.i = (int64_t)(x)})
#define SF_LF_DBL(k, x) ((sf_log_field){.type = SF_LF_DBL_, .key = (k), .v.d = (double)(x)})
#define SF_LF_BOOL(k, x) ((sf_log_field){.type = SF_LF_BOOL_, .key = (k), .v.i = !!(x)})

typedef struct sf_log sf_log;

/* out_fd: where lines go (normally 1, stdout; -1 for none); log_dir: NULL or "" for none. */
sf_status sf_log_open(const char *service, const char *environment, sf_log_level level, const char *log_dir, int out_fd,
                      sf_log **out, sf_err *err);
void sf_log_close(sf_log *lg);

int sf_log_enabled(const sf_log *lg, sf_log_level level);

/* fields: terminated by an entry of type SF_LF_END_ (may be NULL). */
void sf_log_emit(sf_log *lg, sf_log_level level, const char *message, const sf_log_field *fields);

/* Format one line into buf (for tests and for sf_log_emit); returns its length
 * including the final newline. */
size_t sf_log_format(const sf_log *lg, sf_log_level level, int64_t now_ms, const char *message,
                     const sf_log_field *fields, char *buf, size_t size);

/* Copy s into buf with any URL password replaced by "***". */
void sf_log_mask_url(const char *s, char *buf, size_t size);

#define SF_LOG_(lg, lvl, msg, ...)                                                                                     \
    sf_log_emit((lg), (lvl), (msg), (const sf_log_field[]){__VA_ARGS__ __VA_OPT__(, ){.type = SF_LF_END_}})
#define sf_log_debug(lg, msg, ...) SF_LOG_(lg, SF_LOG_DEBUG, msg, __VA_ARGS__)
#define sf_log_info(lg, msg, ...) SF_LOG_(lg, SF_LOG_INFO, msg, __VA_ARGS__)
#define sf_log_warn(lg, msg, ...) SF_LOG_(lg, SF_LOG_WARN, msg, __VA_ARGS__)
#define sf_log_error(lg, msg, ...) SF_LOG_(lg, SF_LOG_ERROR, msg, __VA_ARGS__)

#endif
