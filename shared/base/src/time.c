/*
 * time: clocks and strict ISO-8601 UTC text; see sf/time.h.
 *
 * Calendar arithmetic is done here with the proleptic Gregorian
 * days-from-civil / civil-from-days algorithms (H. Hinnant), so results never
 * depend on the TZ environment variable, on timegm/mktime or on the C
 * library's time_t range.
 */
#include "sf/time.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SECS_PER_DAY 86400
#define SHOW_MAX 40 /* at most this many input bytes are quoted in a message */

/* ---- clocks ---------------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
    struct timespec t;
    if (clock_gettime(id, &t) != 0)
        return 0;
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int64_t sf_time_now_ms(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_REALTIME, &t) != 0)
        return 0;
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t sf_time_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t sf_time_mono_ms(void)
{
    return sf_time_mono_ns() / 1000000;
}

/* ---- calendar ---------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                  /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

/* ---- parsing ------------------------------------------------------------------ */

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

typedef struct fields {
    int year, mon, day, hour, min, sec;
    int off_secs; /* local = UTC + off_secs */
} fields;

static bool at(const cursor *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool accept(cursor *c, char ch)
{
    if (!at(c, ch))
        return false;
    c->p++;
    return true;
}

/* Exactly n decimal digits. */
static bool digits(cursor *c, int n, int *out)
{
    if (c->end - c->p < n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned dg = (unsigned)(unsigned char)c->p[i] - '0';
        if (dg > 9)
            return false;
        v = v * 10 + (int)dg;
    }
    c->p += n;
    *out = v;
    return true;
}

static const char *parse_date(cursor *c, fields *f)
{
    if (!digits(c, 4, &f->year) || !accept(c, '-') || !digits(c, 2, &f->mon) || !accept(c, '-') ||
        !digits(c, 2, &f->day))
        return "expected YYYY-MM-DD";
    if (f->mon < 1 || f->mon > 12)
        return "month out of range";
    if (f->day < 1 || f->day > days_in_month(f->year, f->mon))
        return "day out of range for the month";
    return NULL;
}

static const char *parse_clock(cursor *c, fields *f)
{
    if (!digits(c, 2, &f->hour) || !accept(c, ':') || !digits(c, 2, &f->min))
        return "expected HH:MM after the date";
    if (accept(c, ':') && !digits(c, 2, &f->sec))
        return "expected two-digit seconds";
    if (accept(c, '.')) {
        const char *start = c->p;
        while (c->p < c->end && (unsigned)(unsigned char)*c->p - '0' <= 9)
            c->p++;
        if (c->p == start)
            return "expected digits after the decimal point";
    }
    if (f->hour > 23 || f->min > 59 || f->sec > 59)
        return "time of day out of range";
    return NULL;
}

static const char *parse_offset(cursor *c, fields *f)
{
    if (accept(c, 'Z'))
        return NULL;
    int sign = accept(c, '+') ? 1 : accept(c, '-') ? -1 : 0;
    if (sign == 0)
        return NULL;
    int oh, om;
    if (!digits(c, 2, &oh) || !accept(c, ':') || !digits(c, 2, &om))
        return "expected a UTC offset as +HH:MM";
    if (oh > 23 || om > 59)
        return "UTC offset out of range";
    f->off_secs = sign * (oh * 3600 + om * 60);
    return NULL;
}

static const char *parse_fields(cursor *c, fields *f)
{
    const char *why = parse_date(c, f);
    if (why)
        return why;
    if (c->p == c->end)
        return NULL;
    if (!accept(c, 'T') && !accept(c, ' '))
        return "expected 'T' or ' ' after the date";
    if ((why = parse_clock(c, f)) || (why = parse_offset(c, f)))
        return why;
    return c->p == c->end ? NULL : "unexpected characters after the time";
}

sf_status sf_time_parse_iso8601(const char *s, size_t len, int64_t *out, sf_err *err)
{
    cursor c = {s, s + len};
    fields f = {0};
    const char *why = s == NULL ? "no text" : parse_fields(&c, &f);
    if (why) {
        int show = len > SHOW_MAX ? SHOW_MAX : (int)len;
        return sf_err_set(err, SF_ERR_PARSE, "invalid timestamp (\"%.*s%s\"): %s", show, s ? s : "",
                          len > SHOW_MAX ? "..." : "", why);
    }
    int64_t days = days_from_civil(f.year, f.mon, f.day);
    int64_t secs = (int64_t)f.hour * 3600 + f.min * 60 + f.sec - f.off_secs;
    *out = days * SECS_PER_DAY + secs;
    return SF_OK;
}

/* ---- formatting --------------------------------------------------------------- */

static void split(int64_t secs, int64_t *y, int *mo, int *d, int *h, int *mi, int *s)
{
    int64_t days = floor_div(secs, SECS_PER_DAY);
    int64_t rem = secs % SECS_PER_DAY; /* no days * 86400: it overflows at INT64_MIN */
    if (rem < 0)
        rem += SECS_PER_DAY;
    civil_from_days(days, y, mo, d);
    *h = (int)(rem / 3600);
    *mi = (int)(rem / 60 % 60);
    *s = (int)(rem % 60);
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Results carry two times per trade: digits by hand, not snprintf (whose
 * cost dominated the formatting); years outside 0..9999 take snprintf's
 * %04lld. */
void sf_time_format_iso8601(int64_t secs, char *buf, size_t size)
{
    int64_t y;
    int mo, d, h, mi, s;
    if (buf == NULL || size == 0)
        return;
    split(secs, &y, &mo, &d, &h, &mi, &s);
    if (y < 0 || y > 9999) {
        snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, mo, d, h, mi, s);
        return;
    }
    char t[21] = "0000-00-00T00:00:00Z";
    two(t, (int)(y / 100));
    two(t + 2, (int)(y % 100));
    two(t + 5, mo);
    two(t + 8, d);
    two(t + 11, h);
    two(t + 14, mi);
    two(t + 17, s);
    size_t n = size - 1 < 20 ? size - 1 : 20;
    memcpy(buf, t, n);
    buf[n] = '\0';
}

void sf_time_format_iso8601_ms(int64_t ms, char *buf, size_t size)
{
    int64_t y;
    int mo, d, h, mi, s;
    if (buf == NULL || size == 0)
        return;
    int64_t secs = floor_div(ms, 1000);
    int frac = (int)(ms % 1000 < 0 ? ms % 1000 + 1000 : ms % 1000);
    split(secs, &y, &mo, &d, &h, &mi, &s);
    snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, mo, d, h, mi, s, frac);
}
