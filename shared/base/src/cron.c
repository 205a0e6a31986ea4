/*
 * cron: parse 5-field expressions into bit sets, then walk civil time
 * (year, month, day, hour, minute) forward, skipping a whole month, day or
 * hour as soon as one field rules it out. Civil conversion uses the
 * days-from-civil algorithms (H. Hinnant), valid for the years 1970..9999
 * this module accepts, so no gmtime/timegm and no time-zone dependence.
 */
#include "sf/cron.h"

#include <stdbool.h>
#include <string.h>

typedef struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo_name + i; NULL if none */
    int names_base;
} field_def;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F_COUNT };

static const field_def fields[F_COUNT] = {
    {"minute", 0, 59, NULL, 0},           {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},     {"month", 1, 12, month_names, 1},
    {"day of week", 0, 7, wday_names, 0},
};

/* ---- parsing ---------------------------------------------------------- */

typedef struct field_ctx {
    int index; /* 0-based field number */
    const field_def *def;
    sf_err *err;
} field_ctx;

static sf_status field_fail(const field_ctx *fc, const char *what, const char *text, size_t len)
{
    return sf_err_set(fc->err, SF_ERR_PARSE, "cron field %d (%s): %s \"%.*s\"", fc->index + 1, fc->def->name, what,
                      (int)len, text);
}

static int lower(int ch)
{
    return (ch >= 'A' && ch <= 'Z') ? ch - 'A' + 'a' : ch;
}

static int name_value(const field_def *def, const char *s, size_t len)
{
    if (def->names == NULL || len != 3)
        return -1;
    for (int i = 0; def->names[i] != NULL; i++) {
        const char *n = def->names[i];
        if (lower(s[0]) == n[0] && lower(s[1]) == n[1] && lower(s[2]) == n[2])
            return def->names_base + i;
    }
    return -1;
}

/* A number or a name, range-checked; s[0..len) has no '-', '/' or ','. */
static sf_status parse_value(const field_ctx *fc, const char *s, size_t len, int *out)
{
    if (len == 0)
        return field_fail(fc, "missing value in", s, len);
    int v = name_value(fc->def, s, len);
    if (v >= 0) {
        *out = v;
        return SF_OK;
    }
    if (len > 4)
        return field_fail(fc, "not a number or name:", s, len);
    v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return field_fail(fc, "not a number or name:", s, len);
        v = v * 10 + (s[i] - '0');
    }
    if (v < fc->def->lo || v > fc->def->hi)
        return sf_err_set(fc->err, SF_ERR_PARSE, "cron field %d (%s): %d is out of range %d-%d", fc->index + 1,
                          fc->def->name, v, fc->def->lo, fc->def->hi);
    *out = v;
    return SF_OK;
}

/* The "/n" part of an item. */
static sf_status parse_step(const field_ctx *fc, const char *s, size_t len, int *out)
{
    int span = fc->def->hi - fc->def->lo + 1;
    int v = 0;
    if (len == 0 || len > 3)
        return field_fail(fc, "bad step in", s - 1, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return field_fail(fc, "bad step in", s - 1, len + 1);
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > span)
        return sf_err_set(fc->err, SF_ERR_PARSE, "cron field %d (%s): step %d is out of range 1-%d", fc->index + 1,
                          fc->def->name, v, span);
    *out = v;
    return SF_OK;
}

/* One list item: "*", "a", "a-b", each optionally followed by "/n". */
static sf_status parse_item(const field_ctx *fc, const char *s, size_t len, uint64_t *bits)
{
    const char *slash = memchr(s, '/', len);
    size_t base_len = slash ? (size_t)(slash - s) : len;
    int lo, hi, step = 1;
    sf_status st;
    if (slash && (st = parse_step(fc, slash + 1, len - base_len - 1, &step)) != SF_OK)
        return st;
    if (base_len == 1 && s[0] == '*') {
        lo = fc->def->lo;
        hi = fc->def->hi;
    } else {
        const char *dash = memchr(s, '-', base_len);
        size_t first_len = dash ? (size_t)(dash - s) : base_len;
        if ((st = parse_value(fc, s, first_len, &lo)) != SF_OK)
            return st;
        hi = slash ? fc->def->hi : lo;
        if (dash && (st = parse_value(fc, dash + 1, base_len - first_len - 1, &hi)) != SF_OK)
            return st;
        if (hi < lo)
            return field_fail(fc, "range goes backwards:", s, base_len);
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    return SF_OK;
}

static sf_status parse_field(const field_ctx *fc, const char *s, size_t len, uint64_t *bits)
{
    *bits = 0;
    if (len > SF_CRON_FIELD_MAX)
        return sf_err_set(fc->err, SF_ERR_LIMIT, "cron field %d (%s): longer than %d bytes", fc->index + 1,
                          fc->def->name, SF_CRON_FIELD_MAX);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (i == start)
            return field_fail(fc, "empty list item in", s, len);
        sf_status st = parse_item(fc, s + start, i - start, bits);
        if (st != SF_OK)
            return st;
        start = i + 1;
    }
    return SF_OK;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Split expr into at most F_COUNT fields; *count gets the number seen. */
static void split_fields(const char *expr, const char *starts[F_COUNT], size_t lens[F_COUNT], int *count)
{
    int n = 0;
    const char *p = expr;
    while (*p != '\0') {
        while (is_space(*p))
            p++;
        if (*p == '\0')
            break;
        const char *q = p;
        while (*q != '\0' && !is_space(*q))
            q++;
        if (n < F_COUNT) {
            starts[n] = p;
            lens[n] = (size_t)(q - p);
        }
        n++;
        p = q;
    }
    *count = n;
}

/* With the day of the week unrestricted, some listed day must exist in some
 * listed month (February counts 29 days: leap years come). */
static bool can_fire(const sf_cron *c)
{
    static const int max_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!c->wday_star)
        return true;
    for (int m = 1; m <= 12; m++) {
        uint32_t mask = (uint32_t)((UINT64_C(1) << (max_days[m] + 1)) - 2); /* days 1..max */
        if ((c->months >> m & 1u) && (c->mdays & mask) != 0)
            return true;
    }
    return false;
}

static sf_status store_fields(const uint64_t bits[F_COUNT], const char *const starts[F_COUNT], sf_cron *out,
                              sf_err *err)
{
    memset(out, 0, sizeof *out);
    out->minutes = bits[F_MINUTE];
    out->hours = (uint32_t)bits[F_HOUR];
    out->mdays = (uint32_t)bits[F_MDAY];
    out->months = (uint16_t)bits[F_MONTH];
    uint64_t w = bits[F_WDAY];
    out->wdays = (uint8_t)((w | (w >> 7)) & 0x7f); /* 7 is Sunday too */
    out->mday_star = starts[F_MDAY][0] == '*';
    out->wday_star = starts[F_WDAY][0] == '*';
    if (!can_fire(out))
        return sf_err_set(err, SF_ERR_PARSE,
                          "cron expression: never fires (no day of month given exists in the "
                          "months given)");
    return SF_OK;
}

sf_status sf_cron_parse(const char *expr, sf_cron *out, sf_err *err)
{
    if (expr == NULL)
        return sf_err_set(err, SF_ERR_PARSE, "cron expression: missing");
    if (strnlen(expr, SF_CRON_EXPR_MAX + 1) > SF_CRON_EXPR_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "cron expression: longer than %d bytes", SF_CRON_EXPR_MAX);
    const char *starts[F_COUNT];
    size_t lens[F_COUNT];
    int count;
    split_fields(expr, starts, lens, &count);
    if (count != F_COUNT)
        return sf_err_set(err, SF_ERR_PARSE, "cron expression: expected 5 fields, got %d", count);
    uint64_t bits[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        field_ctx fc = {.index = i, .def = &fields[i], .err = err};
        sf_status st = parse_field(&fc, starts[i], lens[i], &bits[i]);
        if (st != SF_OK)
            return st;
    }
    return store_fields(bits, starts, out, err);
}

/* ---- civil time ------------------------------------------------------- */

typedef struct civil {
    int64_t y;
    int m, d, hh, mm;
} civil;

/* Days since 1970-01-01 (y >= 1). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = y / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* z >= 0 (on or after 1970-01-01). */
static void civil_from_days(int64_t z, civil *c)
{
    z += 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c->d = (int)(doy - (153 * mp + 2) / 5 + 1);
    c->m = (int)(mp < 10 ? mp + 3 : mp - 9);
    c->y = yoe + era * 400 + (c->m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : mdays[m];
}

static void civil_from_unix(int64_t t, civil *c)
{
    int64_t days = t / 86400, secs = t % 86400;
    civil_from_days(days, c);
    c->hh = (int)(secs / 3600);
    c->mm = (int)(secs % 3600 / 60);
}

static int64_t unix_from_civil(const civil *c)
{
    return days_from_civil(c->y, c->m, c->d) * 86400 + c->hh * 3600 + c->mm * 60;
}

/* ---- matching --------------------------------------------------------- */

/* Lowest set bit >= from (and <= hi), or -1. */
static int next_bit(uint64_t bits, int from, int hi)
{
    for (int v = from; v <= hi; v++)
        if (bits >> v & 1u)
            return v;
    return -1;
}

static bool day_matches(const sf_cron *c, int64_t y, int m, int d)
{
    int64_t days = days_from_civil(y, m, d);
    int wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool md = c->mdays >> d & 1u, wd = c->wdays >> wday & 1u;
    return (c->mday_star || c->wday_star) ? (md && wd) : (md || wd);
}

int sf_cron_matches(const sf_cron *c, int64_t t)
{
    if (t < SF_CRON_TIME_MIN || t > SF_CRON_TIME_MAX)
        return 0;
    civil cv;
    civil_from_unix(t, &cv);
    return (c->months >> cv.m & 1u) && day_matches(c, cv.y, cv.m, cv.d) && (c->hours >> cv.hh & 1u) &&
           (c->minutes >> cv.mm & 1u);
}

static void next_month(const sf_cron *c, civil *cv)
{
    int m = next_bit(c->months, cv->m + 1, 12);
    if (m < 0) {
        cv->y++;
        m = next_bit(c->months, 1, 12);
    }
    cv->m = m;
    cv->d = 1;
    cv->hh = cv->mm = 0;
}

static void next_day(const sf_cron *c, civil *cv)
{
    cv->hh = cv->mm = 0;
    if (cv->d < days_in_month(cv->y, cv->m)) {
        cv->d++;
        return;
    }
    next_month(c, cv);
}

/* Move cv to the first matching time at or after it; false past limit_year. */
static bool advance(const sf_cron *c, civil *cv, int64_t limit_year)
{
    while (cv->y <= limit_year) {
        if (!(c->months >> cv->m & 1u)) {
            next_month(c, cv);
            continue;
        }
        if (!day_matches(c, cv->y, cv->m, cv->d)) {
            next_day(c, cv);
            continue;
        }
        int h = next_bit(c->hours, cv->hh, 23);
        if (h < 0) {
            next_day(c, cv);
            continue;
        }
        if (h != cv->hh) {
            cv->hh = h;
            cv->mm = 0;
        }
        int mi = next_bit(c->minutes, cv->mm, 59);
        if (mi >= 0) {
            cv->mm = mi;
            return true;
        }
        if (cv->hh == 23) {
            next_day(c, cv);
        } else {
            cv->hh++;
            cv->mm = 0;
        }
    }
    return false;
}

sf_status sf_cron_next(const sf_cron *c, int64_t after, int64_t *out, sf_err *err)
{
    if (after < SF_CRON_TIME_MIN || after > SF_CRON_TIME_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "cron: time %lld is outside years 1970-9999", (long long)after);
    civil cv;
    civil_from_unix(after - after % 60 + 60, &cv);
    int64_t limit = cv.y + SF_CRON_SEARCH_YEARS;
    if (limit > 9999)
        limit = 9999;
    if (!advance(c, &cv, limit))
        return sf_err_set(err, SF_ERR_NOTFOUND, "cron: no fire time within %d years", SF_CRON_SEARCH_YEARS);
    *out = unix_from_civil(&cv);
    return SF_OK;
}

sf_status sf_cron_between(const sf_cron *c, int64_t a, int64_t b, int64_t *times, size_t max, size_t *n, int *more,
                          sf_err *err)
{
    *n = 0;
    if (more != NULL)
        *more = 0;
    int64_t t = a;
    while (t < b) {
        int64_t next;
        sf_status st = sf_cron_next(c, t, &next, err);
        if (st == SF_ERR_NOTFOUND)
            return SF_OK;
        if (st != SF_OK)
            return st;
        if (next > b)
            return SF_OK;
        if (*n == max) {
            if (more != NULL)
                *more = 1;
            return SF_OK;
        }
        times[(*n)++] = next;
        t = next;
    }
    return SF_OK;
}

/* Walk (lo, b] forward; the last fire time seen goes to *out. */
static sf_status last_in_window(const sf_cron *c, int64_t lo, int64_t b, int64_t *out, int *found, sf_err *err)
{
    int64_t t = lo;
    while (t < b) {
        int64_t next;
        sf_status st = sf_cron_next(c, t, &next, err);
        if (st == SF_ERR_NOTFOUND || (st == SF_OK && next > b))
            return SF_OK;
        if (st != SF_OK)
            return st;
        *out = next;
        *found = 1;
        t = next;
    }
    return SF_OK;
}

sf_status sf_cron_last(const sf_cron *c, int64_t a, int64_t b, int64_t *out, int *found, sf_err *err)
{
    static const int64_t windows[] = {3600, 86400, 32 * 86400, 400 * 86400};
    *found = 0;
    if (a >= b)
        return SF_OK;
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        int64_t lo = b - windows[i];
        if (lo <= a)
            break;
        sf_status st = last_in_window(c, lo, b, out, found, err);
        if (st != SF_OK || *found)
            return st;
    }
    return last_in_window(c, a, b, out, found, err);
}
