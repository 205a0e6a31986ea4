/* Tests for sf_time: clocks, strict ISO-8601 parsing, formatting. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sf/time.h"

static int64_t parse_ok(const char *s)
{
    int64_t t = -12345;
    sf_err err = {0};
    cr_assert_eq(sf_time_parse_iso8601(s, strlen(s), &t, &err), SF_OK, "\"%s\": %s", s, err.msg);
    return t;
}

static void parse_fails(const char *s, const char *why)
{
    int64_t t = -12345;
    sf_err err = {0};
    cr_assert_eq(sf_time_parse_iso8601(s, strlen(s), &t, &err), SF_ERR_PARSE, "\"%s\" accepted", s);
    cr_assert_eq(t, -12345, "output written on failure");
    char want[256];
    snprintf(want, sizeof want, "invalid timestamp (\"%s\"): %s", s, why);
    cr_assert_str_eq(err.msg, want);
}

static void fmt(int64_t secs, const char *want)
{
    char buf[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(secs, buf, sizeof buf);
    cr_assert_str_eq(buf, want);
}

Test(time, parses_known_instants)
{
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse_ok("1970-01-01"), 0);
    cr_assert_eq(parse_ok("1969-12-31T23:59:59Z"), -1);
    cr_assert_eq(parse_ok("2000-01-01T00:00:00Z"), 946684800);
    cr_assert_eq(parse_ok("2024-01-01T00:00:00Z"), 1704067200);
    cr_assert_eq(parse_ok("2038-01-19T03:14:07Z"), 2147483647);
    cr_assert_eq(parse_ok("2038-01-19T03:14:08Z"), 2147483648LL);
    cr_assert_eq(parse_ok("2100-01-01T00:00:00Z"), 4102444800LL);
    cr_assert_eq(parse_ok("1900-01-01T00:00:00Z"), -2208988800LL);
}

Test(time, accepts_the_documented_forms)
{
    int64_t t = 1704164645; /* 2024-01-02T03:04:05Z */
    cr_assert_eq(parse_ok("2024-01-02T03:04:05Z"), t);
    cr_assert_eq(parse_ok("2024-01-02 03:04:05"), t);
    cr_assert_eq(parse_ok("2024-01-02T03:04:05"), t);
    cr_assert_eq(parse_ok("2024-01-02T03:04:05.999Z"), t); /* fraction truncated */
    cr_assert_eq(parse_ok("2024-01-02T03:04:05.5"), t);
    cr_assert_eq(parse_ok("2024-01-02T03:04Z"), t - 5);
    cr_assert_eq(parse_ok("2024-01-02T03:04:05+00:00"), t);
    cr_assert_eq(parse_ok("2024-01-02T03:04:05-00:00"), t);
}

Test(time, converts_offsets_to_utc)
{
    int64_t t = 1704164645; /* 2024-01-02T03:04:05Z */
    cr_assert_eq(parse_ok("2024-01-02T05:04:05+02:00"), t);
    cr_assert_eq(parse_ok("2024-01-01T21:34:05-05:30"), t);
    cr_assert_eq(parse_ok("2024-01-02T03:04:05.25+00:00"), t);
    cr_assert_eq(parse_ok("2024-01-01T00:30:00+01:00"), parse_ok("2023-12-31T23:30:00Z"));
}

Test(time, knows_leap_years)
{
    cr_assert_eq(parse_ok("2024-03-01") - parse_ok("2024-02-28"), 2 * 86400);
    cr_assert_eq(parse_ok("2023-03-01") - parse_ok("2023-02-28"), 86400);
    cr_assert_eq(parse_ok("2000-03-01") - parse_ok("2000-02-28"), 2 * 86400); /* 400 rule */
    cr_assert_eq(parse_ok("2100-03-01") - parse_ok("2100-02-28"), 86400);     /* 100 rule */
    cr_assert_eq(parse_ok("2024-12-31T00:00:00Z") - parse_ok("2024-01-01"), 365 * 86400);
    parse_ok("2024-02-29");
    parse_ok("2000-02-29");
    parse_fails("2023-02-29", "day out of range for the month");
    parse_fails("2100-02-29", "day out of range for the month");
}

Test(time, rejects_impossible_dates_and_times)
{
    parse_fails("2024-02-30", "day out of range for the month");
    parse_fails("2024-04-31", "day out of range for the month");
    parse_fails("2024-13-01", "month out of range");
    parse_fails("2024-00-10", "month out of range");
    parse_fails("2024-01-00", "day out of range for the month");
    parse_fails("2024-01-01T24:00:00Z", "time of day out of range");
    parse_fails("2024-01-01T23:60:00Z", "time of day out of range");
    parse_fails("2024-01-01T23:59:60Z", "time of day out of range");
}

Test(time, rejects_malformed_text)
{
    parse_fails("", "expected YYYY-MM-DD");
    parse_fails("2024-1-01", "expected YYYY-MM-DD");
    parse_fails("24-01-01", "expected YYYY-MM-DD");
    parse_fails("2024/01/01", "expected YYYY-MM-DD");
    parse_fails("2024-01-01T", "expected HH:MM after the date");
    parse_fails("2024-01-01T3:04", "expected HH:MM after the date");
    parse_fails("2024-01-01x03:04", "expected 'T' or ' ' after the date");
    parse_fails("2024-01-01T03:04:5", "expected two-digit seconds");
    parse_fails("2024-01-01T03:04:05.", "expected digits after the decimal point");
    parse_fails("2024-01-01T03:04:05Zjunk", "unexpected characters after the time");
    parse_fails("2024-01-01T03:04:05 ", "unexpected characters after the time");
    parse_fails("2024-01-01T03:04:05+0200", "expected a UTC offset as +HH:MM");
    parse_fails("2024-01-01T03:04:05+02", "expected a UTC offset as +HH:MM");
    parse_fails("2024-01-01T03:04:05+24:00", "UTC offset out of range");
    parse_fails("2024-01-01Z", "expected 'T' or ' ' after the date");
}

Test(time, honours_the_length_not_the_nul)
{
    const char *s = "2024-01-02T03:04:05Z,101.5";
    int64_t t;
    cr_assert_eq(sf_time_parse_iso8601(s, 20, &t, NULL), SF_OK);
    cr_assert_eq(t, 1704164645);
    cr_assert_eq(sf_time_parse_iso8601(s, 19, &t, NULL), SF_OK); /* without the Z */
    cr_assert_eq(sf_time_parse_iso8601(s, 21, &t, NULL), SF_ERR_PARSE);
    cr_assert_eq(sf_time_parse_iso8601(s, 9, &t, NULL), SF_ERR_PARSE);
}

Test(time, quotes_at_most_forty_bytes_of_bad_input)
{
    char s[100];
    memset(s, 'x', sizeof s);
    int64_t t;
    sf_err err = {0};
    cr_assert_eq(sf_time_parse_iso8601(s, sizeof s, &t, &err), SF_ERR_PARSE);
    cr_assert_str_eq(err.msg, "invalid timestamp (\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"): "
                              "expected YYYY-MM-DD");
}

Test(time, formats_known_instants)
{
    fmt(0, "1970-01-01T00:00:00Z");
    fmt(-1, "1969-12-31T23:59:59Z");
    fmt(951782400, "2000-02-29T00:00:00Z");
    fmt(2147483647, "2038-01-19T03:14:07Z");
    fmt(2147483648LL, "2038-01-19T03:14:08Z");
    fmt(4107542399LL, "2100-02-28T23:59:59Z");
    fmt(4107542400LL, "2100-03-01T00:00:00Z");
    fmt(253402300799LL, "9999-12-31T23:59:59Z");
    fmt(-62167219200LL, "0000-01-01T00:00:00Z");
}

Test(time, formats_milliseconds_with_floor_semantics)
{
    char buf[SF_TIME_ISO_MAX];
    sf_time_format_iso8601_ms(1704164645678LL, buf, sizeof buf);
    cr_assert_str_eq(buf, "2024-01-02T03:04:05.678Z");
    sf_time_format_iso8601_ms(-1, buf, sizeof buf);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    sf_time_format_iso8601_ms(0, buf, sizeof buf);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
}

Test(time, formatting_survives_extreme_values_and_small_buffers)
{
    char buf[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(INT64_MAX, buf, sizeof buf);
    cr_assert_str_eq(buf, "292277026596-12-04T15:30:07Z");
    sf_time_format_iso8601(INT64_MIN, buf, sizeof buf);
    cr_assert(strlen(buf) < sizeof buf);
    sf_time_format_iso8601_ms(INT64_MIN, buf, sizeof buf);
    cr_assert(strlen(buf) < sizeof buf);
    char tiny[5];
    sf_time_format_iso8601(0, tiny, sizeof tiny);
    cr_assert_str_eq(tiny, "1970");
}

Test(time, round_trips_and_agrees_with_gmtime_r)
{
    char buf[SF_TIME_ISO_MAX], ref[64];
    /* every day boundary +-1 s from 1900 to 2200, plus an odd stride through the range */
    for (int64_t s = -2208988800LL; s < 7258118400LL; s += 86400 * 7 + 3601) {
        time_t tt = (time_t)s;
        struct tm tm;
        cr_assert_not_null(gmtime_r(&tt, &tm));
        strftime(ref, sizeof ref, "%Y-%m-%dT%H:%M:%SZ", &tm);
        sf_time_format_iso8601(s, buf, sizeof buf);
        cr_assert_str_eq(buf, ref, "at %lld", (long long)s);
        int64_t back;
        cr_assert_eq(sf_time_parse_iso8601(buf, strlen(buf), &back, NULL), SF_OK);
        cr_assert_eq(back, s);
    }
}

Test(time, clocks_move_forward)
{
    int64_t wall = sf_time_now_ms();
    cr_assert_gt(wall, 1704067200000LL); /* after 2024 */
    int64_t a = sf_time_mono_ns(), am = sf_time_mono_ms();
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    int64_t b = sf_time_mono_ns();
    cr_assert_geq(b - a, 2000000);
    cr_assert_geq(sf_time_mono_ms(), am + 2);
}

/* The hand-written digits against snprintf's, over years -50..12000 (the
 * outside of 0..9999 takes snprintf itself) and every truncating size. */
Test(time, format_matches_snprintf_everywhere_and_truncates_like_it)
{
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t secs = (int64_t)(x % (UINT64_C(380000000000))) - INT64_C(63800000000); /* ~ year -50 .. 12000 */
        int64_t y;
        int mo, d, h, mi, s;
        char got[SF_TIME_ISO_MAX], want[64];
        sf_time_format_iso8601(secs, got, sizeof got);
        /* independent of split(): gmtime_r */
        time_t tt = (time_t)secs;
        struct tm tm;
        cr_assert_not_null(gmtime_r(&tt, &tm));
        y = (int64_t)tm.tm_year + 1900, mo = tm.tm_mon + 1, d = tm.tm_mday, h = tm.tm_hour, mi = tm.tm_min,
        s = tm.tm_sec;
        snprintf(want, sizeof want, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, mo, d, h, mi, s);
        cr_assert_str_eq(got, want, "secs %lld", (long long)secs);
    }
    for (size_t size = 1; size <= 22; size++) {
        char got[32], want[32];
        memset(got, 'x', sizeof got);
        sf_time_format_iso8601(1704164645, got, size);
        snprintf(want, size, "%s", "2024-01-02T03:04:05Z");
        cr_assert_str_eq(got, want, "size %zu", size);
        cr_assert_eq(got[size], 'x', "size %zu: wrote past the buffer", size);
    }
}
