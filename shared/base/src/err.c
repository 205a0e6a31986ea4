/* err: status names and strings from one table; see sf/err.h. */
#include "sf/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    sf_status code;
    const char *name;
    const char *str;
} status_table[] = {
    {SF_OK, "SF_OK", "ok"},
    {SF_ERR_NOMEM, "SF_ERR_NOMEM", "out of memory"},
    {SF_ERR_INVALID, "SF_ERR_INVALID", "invalid input"},
    {SF_ERR_PARSE, "SF_ERR_PARSE", "malformed input"},
    {SF_ERR_LIMIT, "SF_ERR_LIMIT", "limit exceeded"},
    {SF_ERR_IO, "SF_ERR_IO", "i/o error"},
    {SF_ERR_NOTFOUND, "SF_ERR_NOTFOUND", "not found"},
    {SF_ERR_CONFLICT, "SF_ERR_CONFLICT", "conflict"},
    {SF_ERR_TIMEOUT, "SF_ERR_TIMEOUT", "timed out"},
    {SF_ERR_UNAVAILABLE, "SF_ERR_UNAVAILABLE", "service unavailable"},
    {SF_ERR_DB, "SF_ERR_DB", "database error"},
    {SF_ERR_REDIS, "SF_ERR_REDIS", "redis error"},
    {SF_ERR_HTTP, "SF_ERR_HTTP", "http error"},
    {SF_ERR_CONFIG, "SF_ERR_CONFIG", "bad configuration"},
    {SF_ERR_CANCELLED, "SF_ERR_CANCELLED", "cancelled"},
    {SF_ERR_AUTH, "SF_ERR_AUTH", "not authorized"},
    {SF_ERR_INTERNAL, "SF_ERR_INTERNAL", "internal error"},
};

#define N_STATUS (sizeof status_table / sizeof status_table[0])

const char *sf_status_name(sf_status code)
{
    for (size_t i = 0; i < N_STATUS; i++)
        if (status_table[i].code == code)
            return status_table[i].name;
    return "SF_ERR_UNKNOWN";
}

const char *sf_status_str(sf_status code)
{
    for (size_t i = 0; i < N_STATUS; i++)
        if (status_table[i].code == code)
            return status_table[i].str;
    return "unknown error";
}

void sf_err_clear(sf_err *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
}

sf_status sf_err_set_at(sf_err *err, sf_status code, int sys_errno, const char *file, int line, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->sys_errno = sys_errno;
    err->file = file;
    err->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* The one use of the thread-safe strerror in the project. The build defines
 * _GNU_SOURCE, so this is the GNU strerror_r: it returns the text, either a
 * static string or one written into the buffer it is given. */
sf_errno_text sf_err_errno_text(int errnum)
{
    int saved = errno;
    char tmp[SF_ERRNO_TEXT_MAX];
    sf_errno_text t;
    snprintf(t.text, sizeof t.text, "%s", strerror_r(errnum, tmp, sizeof tmp));
    errno = saved;
    return t;
}

void sf_err_prefix(sf_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char head[SF_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hl = strlen(head);
    if (hl + 2 >= sizeof err->msg)
        hl = sizeof err->msg - 3;
    size_t ol = strnlen(err->msg, sizeof err->msg - 1);
    if (hl + 2 + ol >= sizeof err->msg)
        ol = sizeof err->msg - 1 - hl - 2;
    memmove(err->msg + hl + 2, err->msg, ol);
    memcpy(err->msg, head, hl);
    err->msg[hl] = ':';
    err->msg[hl + 1] = ' ';
    err->msg[hl + 2 + ol] = '\0';
}
