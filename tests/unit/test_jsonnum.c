/* Unit tests of sf_jsonnum_widen: integers beyond int64 (as PostgreSQL's
 * jsonb prints them) become reals that jansson reads back bit for bit;
 * everything else is copied unchanged. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "sf/jsonnum.h"

/* text widened, in out (size bytes); returns how many integers were. */
static size_t widen(const char *text, char *out, size_t size)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    size_t n = 99;
    sf_err err = {0};
    cr_assert_eq(sf_jsonnum_widen(text, strlen(text), &b, &n, &err), SF_OK, "%s", err.msg);
    snprintf(out, size, "%s", sf_buf_str(&b));
    sf_buf_destroy(&b);
    return n;
}

Test(jsonnum, jansson_refuses_what_postgresql_prints_for_1e20_and_reads_it_once_widened)
{
    /* SELECT '{"final_equity": 1e20, "trades": 3}'::jsonb::text */
    const char *pg = "{\"final_equity\": 100000000000000000000, \"trades\": 3}";
    json_error_t je;
    cr_assert_null(json_loads(pg, 0, &je), "jansson reads it: the test shows nothing");
    char out[256];
    cr_assert_eq(widen(pg, out, sizeof out), 1);
    cr_assert_str_eq(out, "{\"final_equity\": 100000000000000000000.0, \"trades\": 3}");
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s", je.text);
    double v = json_real_value(json_object_get(j, "final_equity")), want = 1e20;
    cr_assert(memcmp(&v, &want, sizeof v) == 0, "%.17g", v);
    cr_assert(json_is_integer(json_object_get(j, "trades")), "integers in range stay integers");
    cr_assert_eq(json_integer_value(json_object_get(j, "trades")), 3);
    json_decref(j);
}

Test(jsonnum, the_bounds_of_int64_stay_integers_one_past_them_is_widened)
{
    char out[256];
    cr_assert_eq(widen("[9223372036854775807, -9223372036854775808, 0, -0, 1000000000000000000]", out, sizeof out), 0);
    cr_assert_eq(widen("[9223372036854775808, -9223372036854775809, 10000000000000000000]", out, sizeof out), 3);
    cr_assert_str_eq(out, "[9223372036854775808.0, -9223372036854775809.0, 10000000000000000000.0]");
}

Test(jsonnum, reals_exponents_strings_and_keys_are_copied_unchanged)
{
    const char *in = "{\"100000000000000000000\": \"100000000000000000000 \\\" 100000000000000000000\","
                     " \"a\": 1e300, \"b\": 100000000000000000000.5, \"c\": -1.5E+30, \"d\": [true, null]}";
    char out[512];
    cr_assert_eq(widen(in, out, sizeof out), 0);
    cr_assert_str_eq(out, in);
}

Test(jsonnum, every_finite_double_printed_as_postgresql_prints_it_reads_back_exactly)
{
    /* numeric's text of a double at or above 2^63: its exact integer digits */
    const double v[] = {9223372036854775808.0, 1e20, -3.4e38, 1.7976931348623157e308, 123456789012345678901.0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char pg[400], out[420];
        snprintf(pg, sizeof pg, "[%.0f]", v[i]);
        cr_assert_eq(widen(pg, out, sizeof out), 1, "%s", pg);
        json_t *j = json_loads(out, 0, NULL);
        cr_assert_not_null(j, "%s", out);
        double got = json_real_value(json_array_get(j, 0));
        cr_assert(memcmp(&got, &v[i], sizeof got) == 0, "%.17g read back as %.17g", v[i], got);
        json_decref(j);
    }
}

Test(jsonnum, text_that_is_not_json_is_copied_without_harm)
{
    char out[256];
    cr_assert_eq(widen("-", out, sizeof out), 0);
    cr_assert_str_eq(out, "-");
    cr_assert_eq(widen("\"unterminated 100000000000000000000", out, sizeof out), 0);
    cr_assert_eq(widen("x100000000000000000000", out, sizeof out), 1);
    cr_assert_str_eq(out, "x100000000000000000000.0");
    cr_assert_eq(widen("", out, sizeof out), 0);
    cr_assert_str_eq(out, "");
}
