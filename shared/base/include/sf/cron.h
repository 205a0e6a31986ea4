/*
 * cron: 5-field cron expressions in UTC and their fire times.
 *
 *   minute hour day-of-month month day-of-week
 *   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
 *
 * Each field is "*" or a comma-separated list (at most SF_CRON_FIELD_MAX
 * bytes) of items: a value, a range "a-b", or either of them or "*" with a
 * step "/n" ("*\/15", "10-50/10", "5/20" = 5-max/20). Months and days of the
 * week may be given by their English three-letter names (jan-dec, sun-sat,
 * any case), also in ranges. No seconds field, no "@daily" macros, no "L",
 * "W", "#" or "?".
 *
 * Day rule (as Vixie cron/cronie): when both day-of-month and day-of-week are
 * restricted, a day matches when EITHER matches; when one of them starts with
 * "*", a day must match BOTH (so a plain "*" leaves the decision to the other
 * field, and "*\/2" still filters).
 *
 * An expression that can never fire ("0 0 30 2 *") is rejected at parse time.
 * Times are int64 Unix seconds; fire times fall on whole minutes. The next
 * fire time is found by skipping whole months, days, hours and minutes that
 * cannot match, never by testing every minute, and the search is bounded
 * (SF_CRON_SEARCH_YEARS), which a valid expression never reaches.
 *
 * Thread safety: pure functions over caller storage; no I/O, no globals.
 * Ownership: sf_cron is a plain value (copy it freely); output arrays are the
 * caller's.
 */
#ifndef SF_CRON_H
#define SF_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define SF_CRON_EXPR_MAX 256    /* bytes in a whole expression */
#define SF_CRON_FIELD_MAX 128   /* bytes in one field */
#define SF_CRON_SEARCH_YEARS 30 /* sf_cron_next looks at most this far ahead */
/* Times accepted by sf_cron_next/sf_cron_between: years 1970 .. 9999. */
#define SF_CRON_TIME_MIN INT64_C(0)
#define SF_CRON_TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

typedef struct sf_cron {
    uint64_t minutes;  /* bit m: minute m (0-59) */
    uint32_t hours;    /* bit h: hour h (0-23) */
    uint32_t mdays;    /* bit d: day of month d (1-31) */
    uint16_t months;   /* bit m: month m (1-12) */
    uint8_t wdays;     /* bit w: day of week w (0-6, Sunday 0) */
    uint8_t mday_star; /* day-of-month field starts with '*' */
    uint8_t wday_star; /* day-of-week field starts with '*' */
} sf_cron;

/*
 * Parse expr (NUL-terminated). Fails with SF_ERR_PARSE and a message naming
 * the field: "cron field 2 (hour): 25 is out of range 0-23",
 * "cron expression: expected 5 fields, got 6",
 * "cron expression: never fires (day of month 30-31 never occurs in the months given)";
 * with SF_ERR_LIMIT for an expression longer than SF_CRON_EXPR_MAX bytes or
 * a field longer than SF_CRON_FIELD_MAX ("cron field 1 (minute): longer than
 * 128 bytes").
 */
sf_status sf_cron_parse(const char *expr, sf_cron *out, sf_err *err);

/* 1 when the whole minute containing t matches, else 0. */
int sf_cron_matches(const sf_cron *c, int64_t t);

/*
 * The first fire time strictly after `after`. SF_ERR_INVALID when after is
 * outside [SF_CRON_TIME_MIN, SF_CRON_TIME_MAX]; SF_ERR_NOTFOUND when nothing
 * fires within SF_CRON_SEARCH_YEARS or before year 10000.
 */
sf_status sf_cron_next(const sf_cron *c, int64_t after, int64_t *out, sf_err *err);

/*
 * The fire times t with a < t <= b, ascending, at most max of them into
 * times[]. *n gets how many were written; *more (may be NULL) is set to 1
 * when further fire times <= b exist beyond the max written, else 0.
 * a >= b gives none. Errors as sf_cron_next (a out of range).
 */
sf_status sf_cron_between(const sf_cron *c, int64_t a, int64_t b, int64_t *times, size_t max, size_t *n, int *more,
                          sf_err *err);

/*
 * The latest fire time t with a < t <= b into *out; *found = 0 when there is
 * none. Looks back from b through growing windows (1 hour, 1 day, 32 days,
 * 400 days, then all of (a, b]), so the cost is about the number of fire
 * times in the first window that holds one. For catch-up ("fire only the most
 * recent missed one"). Errors as sf_cron_next.
 */
sf_status sf_cron_last(const sf_cron *c, int64_t a, int64_t b, int64_t *out, int *found, sf_err *err);

#endif
