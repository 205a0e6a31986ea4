/*
 * err: the one status enum of failures and the error detail that goes with it.
 *
 * Every fallible function in shared/ returns an sf_status (SF_OK = 0, failures
 * negative) and, when given a non-NULL sf_err *, fills in the detail: the code,
 * the errno if a system call failed, a lower-case message with the reason after
 * a colon, and where it was raised. "No job available" or "lease lost" are
 * results, never errors.
 *
 * Thread safety: the functions touch only the sf_err they are given.
 * Ownership: sf_err is caller storage; nothing in it needs freeing.
 */
#ifndef SF_ERR_H
#define SF_ERR_H

#include <stddef.h>

typedef enum sf_status {
    SF_OK = 0,
    SF_ERR_NOMEM = -1,       /* out of memory */
    SF_ERR_INVALID = -2,     /* invalid input (user-caused) */
    SF_ERR_PARSE = -3,       /* malformed text: JSON, CSV, URL, number */
    SF_ERR_LIMIT = -4,       /* a configured maximum was exceeded */
    SF_ERR_IO = -5,          /* file or socket I/O failed */
    SF_ERR_NOTFOUND = -6,    /* the named thing does not exist */
    SF_ERR_CONFLICT = -7,    /* the state forbids it (already exists, changed) */
    SF_ERR_TIMEOUT = -8,     /* a deadline passed */
    SF_ERR_UNAVAILABLE = -9, /* a dependency (database, redis) is unreachable */
    SF_ERR_DB = -10,         /* the database rejected a statement */
    SF_ERR_REDIS = -11,      /* redis rejected a command */
    SF_ERR_HTTP = -12,       /* an HTTP exchange failed */
    SF_ERR_CONFIG = -13,     /* bad configuration */
    SF_ERR_CANCELLED = -14,  /* cancelled on request */
    SF_ERR_AUTH = -15,       /* missing or bad credentials */
    SF_ERR_INTERNAL = -16,   /* a bug: an internal invariant failed */
} sf_status;

#define SF_ERR_MSG_MAX 512

typedef struct sf_err {
    sf_status code;
    int sys_errno;            /* errno of the failed system call, or 0 */
    char msg[SF_ERR_MSG_MAX]; /* "could not open \"x\": No such file" */
    const char *file;         /* where it was raised (static string) */
    int line;
} sf_err;

/* "SF_ERR_NOMEM" and "out of memory"; unknown codes give "SF_ERR_UNKNOWN". */
const char *sf_status_name(sf_status code);
const char *sf_status_str(sf_status code);

void sf_err_clear(sf_err *err);

/* Fill err (if not NULL) and return code, so callers can `return sf_err_set(...)`. */
sf_status sf_err_set_at(sf_err *err, sf_status code, int sys_errno, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define sf_err_set(err, code, ...) sf_err_set_at((err), (code), 0, __FILE__, __LINE__, __VA_ARGS__)
#define sf_err_sys(err, code, errnum, ...) sf_err_set_at((err), (code), (errnum), __FILE__, __LINE__, __VA_ARGS__)

/* The C library's text for an errno value: "No such file or directory" for
 * ENOENT, "Unknown error N" for a value it does not know. Thread-safe (it
 * uses strerror_r; strerror may share one buffer between threads, and
 * scripts/check-source bans it) and errno is left as it was. Returned by
 * value, so a call can stand where strerror(e) stood:
 * sf_err_errno_text(e).text lives until the end of the full expression that
 * contains the call (C11 temporary lifetime), long enough for a printf-style
 * argument; copy the struct to keep it longer. */
#define SF_ERRNO_TEXT_MAX 128
typedef struct sf_errno_text {
    char text[SF_ERRNO_TEXT_MAX];
} sf_errno_text;
sf_errno_text sf_err_errno_text(int errnum);

/* Put context in front of an existing message: "loading x: <old message>". */
void sf_err_prefix(sf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
