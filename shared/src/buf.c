/* buf: growable buffer with a maximum; see sf/buf.h. */
#include "sf/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sf_buf_init(sf_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void sf_buf_destroy(sf_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sf_buf_reset(sf_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for n more bytes plus the NUL. */
static sf_status reserve(sf_buf *b, size_t n, sf_err *err)
{
    if (n > b->max || b->len > b->max - n)
        return sf_err_set(err, SF_ERR_LIMIT, "buffer would exceed its maximum of %zu bytes", b->max);
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return SF_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1) /* max + 1 wraps to 0 for SIZE_MAX */
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not grow buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return SF_OK;
}

sf_status sf_buf_append(sf_buf *b, const void *p, size_t n, sf_err *err)
{
    sf_status st = reserve(b, n, err);
    if (st != SF_OK)
        return st;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SF_OK;
}

sf_status sf_buf_puts(sf_buf *b, const char *s, sf_err *err)
{
    return sf_buf_append(b, s, strlen(s), err);
}

sf_status sf_buf_vprintf(sf_buf *b, sf_err *err, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not format text");
    sf_status st = reserve(b, (size_t)n, err);
    if (st != SF_OK)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SF_OK;
}

sf_status sf_buf_printf(sf_buf *b, sf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sf_status st = sf_buf_vprintf(b, err, fmt, ap);
    va_end(ap);
    return st;
}

const char *sf_buf_str(const sf_buf *b)
{
    return b->data ? b->data : "";
}

char *sf_buf_steal(sf_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
