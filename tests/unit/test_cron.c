/* cron: parsing errors name the field; next fire times checked by hand
 * (weekdays looked up in a calendar), and against a minute-by-minute scan. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sf/cron.h"
#include "sf/time.h"

static int64_t iso(const char *s)
{
    int64_t t = 0;
    sf_err err;
    cr_assert_eq(sf_time_parse_iso8601(s, strlen(s), &t, &err), SF_OK, "%s", s);
    return t;
}

static sf_cron parse_ok(const char *expr)
{
    sf_cron c;
    sf_err err;
    sf_err_clear(&err);
    sf_status st = sf_cron_parse(expr, &c, &err);
    cr_assert_eq(st, SF_OK, "%s: %s", expr, err.msg);
    return c;
}

/* Assert next(expr, after) == want. */
static void check_next(const char *expr, const char *after, const char *want)
{
    sf_cron c = parse_ok(expr);
    int64_t got = 0;
    sf_err err;
    cr_assert_eq(sf_cron_next(&c, iso(after), &got, &err), SF_OK, "%s after %s", expr, after);
    char buf[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(got, buf, sizeof buf);
    cr_assert_eq(got, iso(want), "%s after %s: got %s, want %s", expr, after, buf, want);
}

static void check_error(const char *expr, const char *want_msg)
{
    sf_cron c;
    sf_err err;
    sf_err_clear(&err);
    sf_status st = sf_cron_parse(expr, &c, &err);
    cr_assert_neq(st, SF_OK, "%s parsed", expr);
    cr_assert_str_eq(err.msg, want_msg, "%s", expr);
}

Test(cron, every_quarter_hour_fires_strictly_after_the_given_time)
{
    check_next("*/15 * * * *", "2024-01-01T00:00:00Z", "2024-01-01T00:15:00Z");
    check_next("*/15 * * * *", "2024-01-01T00:14:59Z", "2024-01-01T00:15:00Z");
    check_next("*/15 * * * *", "2023-12-31T23:50:00Z", "2024-01-01T00:00:00Z");
    check_next("* * * * *", "2024-01-01T00:00:30Z", "2024-01-01T00:01:00Z");
}

Test(cron, day_31_skips_months_that_are_shorter)
{
    check_next("0 0 31 * *", "2024-04-01T00:00:00Z", "2024-05-31T00:00:00Z");
    check_next("0 0 31 * *", "2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z");
    check_next("0 0 30 * *", "2024-01-30T00:00:00Z", "2024-03-30T00:00:00Z");
}

Test(cron, february_29_waits_for_a_leap_year_and_skips_2100)
{
    check_next("0 12 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T12:00:00Z");
    check_next("0 12 29 2 *", "2024-02-29T11:59:00Z", "2024-02-29T12:00:00Z");
    check_next("0 12 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T12:00:00Z");
    check_next("0 0 29 2 *", "1999-06-01T00:00:00Z", "2000-02-29T00:00:00Z");
}

Test(cron, month_and_year_ends_roll_over)
{
    check_next("0 0 1 1 *", "2024-06-01T00:00:00Z", "2025-01-01T00:00:00Z");
    check_next("59 23 31 12 *", "2024-12-31T23:59:00Z", "2025-12-31T23:59:00Z");
    check_next("0 0 * * *", "2024-02-28T00:00:00Z", "2024-02-29T00:00:00Z");
    check_next("0 0 * * *", "2023-02-28T00:00:00Z", "2023-03-01T00:00:00Z");
    check_next("0 0 1 * *", "2024-12-15T10:00:00Z", "2025-01-01T00:00:00Z");
}

Test(cron, both_days_restricted_fire_when_either_matches)
{
    /* the 10th OR a Sunday; 2024-07-08 is a Monday */
    check_next("0 0 10 * 0", "2024-07-08T00:00:00Z", "2024-07-10T00:00:00Z"); /* Wednesday */
    check_next("0 0 10 * 0", "2024-07-10T00:00:00Z", "2024-07-14T00:00:00Z"); /* Sunday */
    /* the 13th OR a Friday: 2024-09-06 is a Friday, 2024-09-13 both */
    check_next("0 0 13 * fri", "2024-09-01T00:00:00Z", "2024-09-06T00:00:00Z");
    check_next("0 0 13 * fri", "2024-09-12T00:00:00Z", "2024-09-13T00:00:00Z");
}

Test(cron, day_of_week_alone_decides_when_day_of_month_is_star)
{
    /* 2024-07-12 is a Friday, 2024-07-15 a Monday */
    check_next("30 9 * * mon-fri", "2024-07-12T09:30:00Z", "2024-07-15T09:30:00Z");
    check_next("30 9 * * 1-5", "2024-07-12T09:29:00Z", "2024-07-12T09:30:00Z");
    /* 7 is Sunday too; 2024-07-13 is a Saturday */
    check_next("0 0 * * 7", "2024-07-13T00:00:00Z", "2024-07-14T00:00:00Z");
    check_next("0 0 * * SUN", "2024-07-13T00:00:00Z", "2024-07-14T00:00:00Z");
}

Test(cron, day_of_month_alone_decides_when_day_of_week_is_star)
{
    check_next("0 6 15 * *", "2024-07-01T00:00:00Z", "2024-07-15T06:00:00Z");
}

Test(cron, stepped_star_in_day_of_month_still_filters_with_day_of_week)
{
    /* odd days AND Mondays: 2024-07-01 (Mon, odd), 07-08 (even), 07-15 (Mon, odd) */
    check_next("0 0 */2 * 1", "2024-06-30T00:00:00Z", "2024-07-01T00:00:00Z");
    check_next("0 0 */2 * 1", "2024-07-01T00:00:00Z", "2024-07-15T00:00:00Z");
}

Test(cron, ranges_steps_lists_and_names)
{
    /* minutes 10,30,50 of hours 0,6,12,18 */
    check_next("10-50/20 */6 * * *", "2024-01-01T06:50:00Z", "2024-01-01T12:10:00Z");
    check_next("10-50/20 */6 * * *", "2024-01-01T06:10:00Z", "2024-01-01T06:30:00Z");
    check_next("10-50/20 */6 * * *", "2024-01-01T18:50:00Z", "2024-01-02T00:10:00Z");
    /* "5/20" = 5,25,45 */
    check_next("5/20 * * * *", "2024-01-01T00:25:00Z", "2024-01-01T00:45:00Z");
    check_next("0 0 1 jan,JUL *", "2024-02-01T00:00:00Z", "2024-07-01T00:00:00Z");
    check_next("0 0 1 mar-may *", "2024-05-02T00:00:00Z", "2025-03-01T00:00:00Z");
    check_next("1,2,58 3 * * *", "2024-01-01T03:02:00Z", "2024-01-01T03:58:00Z");
    check_next("  0\t0  *  * *  ", "2024-01-01T03:02:00Z", "2024-01-02T00:00:00Z");
}

Test(cron, errors_name_the_field_and_the_problem)
{
    check_error("0 25 * * *", "cron field 2 (hour): 25 is out of range 0-23");
    check_error("60 * * * *", "cron field 1 (minute): 60 is out of range 0-59");
    check_error("* * 0 * *", "cron field 3 (day of month): 0 is out of range 1-31");
    check_error("* * * 13 *", "cron field 4 (month): 13 is out of range 1-12");
    check_error("* * * * 8", "cron field 5 (day of week): 8 is out of range 0-7");
    check_error("* * * *", "cron expression: expected 5 fields, got 4");
    check_error("* * * * * *", "cron expression: expected 5 fields, got 6");
    check_error("", "cron expression: expected 5 fields, got 0");
    check_error("*/0 * * * *", "cron field 1 (minute): step 0 is out of range 1-60");
    check_error("1,,2 * * * *", "cron field 1 (minute): empty list item in \"1,,2\"");
    check_error("* 5-3 * * *", "cron field 2 (hour): range goes backwards: \"5-3\"");
    check_error("* * * foo *", "cron field 4 (month): not a number or name: \"foo\"");
    check_error("jan * * * *", "cron field 1 (minute): not a number or name: \"jan\"");
    check_error("* * * * mon-", "cron field 5 (day of week): missing value in \"\"");
    check_error("*/x * * * *", "cron field 1 (minute): bad step in \"/x\"");
    check_error("-5 * * * *", "cron field 1 (minute): missing value in \"\"");
}

Test(cron, expressions_that_never_fire_are_rejected)
{
    const char *msg = "cron expression: never fires (no day of month given exists in the "
                      "months given)";
    check_error("0 0 30 2 *", msg);
    check_error("0 0 31 4,6,9,11 *", msg);
    /* with a day of the week as well, either may match: fires on Mondays */
    check_next("0 0 30 2 1", "2024-02-01T00:00:00Z", "2024-02-05T00:00:00Z");
}

Test(cron, between_excludes_start_includes_end_and_reports_more)
{
    sf_cron c = parse_ok("0 * * * *");
    int64_t t[8];
    size_t n = 0;
    int more = -1;
    sf_err err;
    cr_assert_eq(sf_cron_between(&c, iso("2024-01-01T00:00:00Z"), iso("2024-01-01T03:00:00Z"), t, 8, &n, &more, &err),
                 SF_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(more, 0);
    cr_assert_eq(t[0], iso("2024-01-01T01:00:00Z"));
    cr_assert_eq(t[2], iso("2024-01-01T03:00:00Z"));
    cr_assert_eq(sf_cron_between(&c, iso("2024-01-01T00:00:00Z"), iso("2024-01-01T03:00:00Z"), t, 2, &n, &more, &err),
                 SF_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(more, 1);
    cr_assert_eq(sf_cron_between(&c, iso("2024-01-01T03:00:00Z"), iso("2024-01-01T03:00:00Z"), t, 2, &n, &more, &err),
                 SF_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(more, 0);
}

Test(cron, out_of_range_times_and_the_end_of_year_9999)
{
    sf_cron c = parse_ok("0 0 1 1 *");
    int64_t t = 0;
    sf_err err;
    cr_assert_eq(sf_cron_next(&c, -1, &t, &err), SF_ERR_INVALID);
    cr_assert_eq(sf_cron_next(&c, iso("9999-06-01T00:00:00Z"), &t, &err), SF_ERR_NOTFOUND);
    cr_assert_eq(sf_cron_next(&c, SF_CRON_TIME_MAX, &t, &err), SF_ERR_NOTFOUND);
}

/* The first matching minute after t within 8 days, by testing every minute; -1 if none. */
static int64_t scan_next(const sf_cron *c, int64_t t)
{
    for (int64_t m = t - t % 60 + 60; m <= t + 8 * 86400; m += 60)
        if (sf_cron_matches(c, m))
            return m;
    return -1;
}

/* next() agrees with a minute-by-minute scan for each expression. */
Test(cron, next_agrees_with_a_minute_by_minute_scan)
{
    static const char *exprs[] = {"*/7 */5 * * *", "0 0 10 * 0", "15 3 */2 * 1-5", "0,30 * 1,15 jan,mar,dec *",
                                  "59 23 * * 6",   "0 0 29 2 *"};
    int64_t start = iso("2023-12-29T22:00:00Z");
    int checked = 0;
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        sf_cron c = parse_ok(exprs[e]);
        for (int64_t t = start; t < start + 5 * 86400; t += 60 * 97 + 13) {
            int64_t expect = scan_next(&c, t), got = 0;
            sf_err err;
            sf_status st = sf_cron_next(&c, t, &got, &err);
            cr_assert_eq(st, SF_OK);
            if (expect < 0) {
                cr_assert_gt(got, t + 8 * 86400, "%s after %lld", exprs[e], (long long)t);
                continue;
            }
            cr_assert_eq(got, expect, "%s after %lld", exprs[e], (long long)t);
            checked++;
        }
    }
    cr_assert_gt(checked, 300);
}

Test(cron, matches_checks_every_field)
{
    sf_cron c = parse_ok("30 9 * * mon-fri");
    cr_assert(sf_cron_matches(&c, iso("2024-07-12T09:30:00Z")));
    cr_assert(sf_cron_matches(&c, iso("2024-07-12T09:30:59Z")));
    cr_assert_not(sf_cron_matches(&c, iso("2024-07-13T09:30:00Z"))); /* Saturday */
    cr_assert_not(sf_cron_matches(&c, iso("2024-07-12T09:31:00Z")));
}

Test(cron, last_finds_the_most_recent_fire_time_in_the_interval)
{
    sf_err err;
    int64_t t = 0;
    int found = -1;
    sf_cron every = parse_ok("* * * * *");
    cr_assert_eq(sf_cron_last(&every, iso("2020-01-01T00:00:00Z"), iso("2024-07-12T09:30:40Z"), &t, &found, &err),
                 SF_OK);
    cr_assert_eq(found, 1);
    cr_assert_eq(t, iso("2024-07-12T09:30:00Z"));
    /* yearly, three years missed: the most recent is this year's */
    sf_cron yearly = parse_ok("0 0 1 1 *");
    cr_assert_eq(sf_cron_last(&yearly, iso("2021-01-01T00:00:00Z"), iso("2024-07-12T00:00:00Z"), &t, &found, &err),
                 SF_OK);
    cr_assert_eq(found, 1);
    cr_assert_eq(t, iso("2024-01-01T00:00:00Z"));
    /* a is excluded, b included */
    cr_assert_eq(sf_cron_last(&yearly, iso("2024-01-01T00:00:00Z"), iso("2024-07-12T00:00:00Z"), &t, &found, &err),
                 SF_OK);
    cr_assert_eq(found, 0);
    cr_assert_eq(sf_cron_last(&yearly, iso("2023-12-31T00:00:00Z"), iso("2024-01-01T00:00:00Z"), &t, &found, &err),
                 SF_OK);
    cr_assert_eq(found, 1);
    cr_assert_eq(t, iso("2024-01-01T00:00:00Z"));
    /* Feb 29 from ten years back: the window search falls back to the whole interval */
    sf_cron leap = parse_ok("0 0 29 2 *");
    cr_assert_eq(sf_cron_last(&leap, iso("2014-01-01T00:00:00Z"), iso("2026-11-26T00:00:00Z"), &t, &found, &err),
                 SF_OK);
    cr_assert_eq(found, 1);
    cr_assert_eq(t, iso("2024-02-29T00:00:00Z"));
}

/* Found by fuzz_cron (tests/fuzz/seeds/fuzz_cron/regress-long-field-is-limit):
 * an over-long field or expression is SF_ERR_LIMIT, as sf/cron.h now says
 * (it said every refusal was SF_ERR_PARSE); callers refuse on any status. */
Test(cron, over_long_field_or_expression_is_limit)
{
    char field[SF_CRON_FIELD_MAX + 40], expr[SF_CRON_EXPR_MAX + 40];
    sf_cron c;
    sf_err err = {0};
    memset(field, '1', sizeof field - 1);
    field[sizeof field - 1] = '\0';
    snprintf(expr, sizeof expr, "%.140s * * * *", field);
    cr_assert_eq(sf_cron_parse(expr, &c, &err), SF_ERR_LIMIT);
    cr_assert_str_eq(err.msg, "cron field 1 (minute): longer than 128 bytes");
    memset(expr, ' ', sizeof expr - 1);
    expr[sizeof expr - 1] = '\0';
    memcpy(expr, "* * * * *", 9);
    cr_assert_eq(sf_cron_parse(expr, &c, &err), SF_ERR_LIMIT);
    cr_assert(strstr(err.msg, "longer than 256 bytes") != NULL, "%s", err.msg);
}
