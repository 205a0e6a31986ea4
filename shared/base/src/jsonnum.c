/*
 * jsonnum: see sf/jsonnum.h. One pass: strings are skipped (with their
 * escapes), a number token is measured, and an integer token whose digits
 * exceed INT64_MAX (INT64_MIN's magnitude when negative) gets ".0".
 */
#include "sf/jsonnum.h"

#include <string.h>

#define INT64_DIGITS 19

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The end of the string whose opening quote is at i (past its closing quote,
 * or len when it is not closed). */
static size_t string_end(const char *t, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (t[i] == '\\')
            i++;
        else if (t[i] == '"')
            return i + 1;
    }
    return len;
}

/* The end of the number token at i; *integer = 1 when it has no fraction and
 * no exponent. */
static size_t number_end(const char *t, size_t len, size_t i, int *integer)
{
    *integer = 1;
    if (i < len && t[i] == '-')
        i++;
    while (i < len && is_digit(t[i]))
        i++;
    if (i < len && t[i] == '.') {
        *integer = 0;
        for (i++; i < len && is_digit(t[i]);)
            i++;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        *integer = 0;
        i++;
        if (i < len && (t[i] == '+' || t[i] == '-'))
            i++;
        while (i < len && is_digit(t[i]))
            i++;
    }
    return i;
}

/* 1 when the integer token t[0..n) is outside int64's range. */
static int out_of_range(const char *t, size_t n)
{
    int neg = n > 0 && t[0] == '-';
    const char *d = t + neg;
    size_t nd = n - (size_t)neg;
    while (nd > 1 && d[0] == '0') { /* not valid JSON, but harmless */
        d++;
        nd--;
    }
    if (nd != INT64_DIGITS)
        return nd > INT64_DIGITS;
    return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", INT64_DIGITS) > 0;
}

sf_status sf_jsonnum_widen(const char *text, size_t len, sf_buf *out, size_t *widened, sf_err *err)
{
    size_t from = 0, i = 0, n = 0;
    sf_status st = SF_OK;
    if (widened)
        *widened = 0;
    while (i < len && st == SF_OK) {
        if (text[i] == '"') {
            i = string_end(text, len, i);
        } else if (text[i] == '-' || is_digit(text[i])) {
            int integer = 0;
            size_t end = number_end(text, len, i, &integer); /* > i */
            if (integer && out_of_range(text + i, end - i)) {
                st = sf_buf_append(out, text + from, end - from, err);
                if (st == SF_OK)
                    st = sf_buf_append(out, ".0", 2, err);
                from = end;
                n++;
            }
            i = end;
        } else {
            i++;
        }
    }
    if (st == SF_OK)
        st = sf_buf_append(out, text + from, len - from, err);
    if (widened)
        *widened = n;
    return st;
}
