/* Unit tests of sf_buf: growth, the hard maximum, printf, steal. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"

Test(buf, empty_buffer_is_an_empty_string)
{
    sf_buf b;
    sf_buf_init(&b, 100);
    cr_assert_str_eq(sf_buf_str(&b), "");
    cr_assert_eq(b.len, 0);
    size_t len = 99;
    cr_assert_null(sf_buf_steal(&b, &len));
    cr_assert_eq(len, 0);
    sf_buf_destroy(&b);
    sf_buf_destroy(NULL);
}

Test(buf, appends_grow_and_stay_terminated)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 20);
    char want[5001];
    for (int i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        cr_assert_eq(sf_buf_append(&b, &c, 1, NULL), SF_OK);
        want[i] = c;
    }
    want[5000] = '\0';
    cr_assert_eq(b.len, 5000);
    cr_assert_geq(b.cap, 5001);
    cr_assert_str_eq(sf_buf_str(&b), want);
    cr_assert_eq(sf_buf_puts(&b, "!", NULL), SF_OK);
    cr_assert_eq(b.data[5000], '!');
    cr_assert_eq(b.data[5001], '\0');
    sf_buf_destroy(&b);
}

Test(buf, binary_data_with_nul_bytes_is_kept)
{
    sf_buf b;
    sf_buf_init(&b, 64);
    cr_assert_eq(sf_buf_append(&b, "a\0b", 3, NULL), SF_OK);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.data, "a\0b", 4), 0);
    sf_buf_destroy(&b);
}

Test(buf, growing_past_the_maximum_fails_and_leaves_the_content)
{
    sf_buf b;
    sf_buf_init(&b, 10);
    sf_err err = {0};
    cr_assert_eq(sf_buf_puts(&b, "0123456789", &err), SF_OK, "exactly max fits");
    cr_assert_eq(sf_buf_puts(&b, "x", &err), SF_ERR_LIMIT);
    cr_assert(strstr(err.msg, "10 bytes") != NULL, "%s", err.msg);
    cr_assert_str_eq(sf_buf_str(&b), "0123456789");
    cr_assert_eq(b.len, 10);
    cr_assert_leq(b.cap, 11, "never allocates beyond max + 1");
    sf_buf_reset(&b);
    cr_assert_eq(sf_buf_append(&b, "abc", SIZE_MAX, &err), SF_ERR_LIMIT, "a huge n cannot wrap around");
    cr_assert_str_eq(sf_buf_str(&b), "");
    sf_buf_destroy(&b);
}

Test(buf, printf_formats_and_grows)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    cr_assert_eq(sf_buf_printf(&b, NULL, "%s=%d", "x", 42), SF_OK);
    cr_assert_eq(sf_buf_printf(&b, NULL, ",%05.1f", 3.14159), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b), "x=42,003.1");
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(sf_buf_printf(&b, NULL, "[%s]", big), SF_OK);
    cr_assert_eq(b.len, 10 + 1001);
    cr_assert_eq(b.data[b.len - 1], ']');
    cr_assert_eq(b.data[b.len], '\0');
    sf_buf_destroy(&b);
}

Test(buf, printf_past_the_maximum_fails_without_partial_text)
{
    sf_buf b;
    sf_buf_init(&b, 8);
    sf_err err = {0};
    cr_assert_eq(sf_buf_printf(&b, &err, "%d", 1234), SF_OK);
    cr_assert_eq(sf_buf_printf(&b, &err, "%d", 56789), SF_ERR_LIMIT);
    cr_assert_str_eq(sf_buf_str(&b), "1234");
    sf_buf_destroy(&b);
}

Test(buf, reset_keeps_memory_and_steal_hands_it_over)
{
    sf_buf b;
    sf_buf_init(&b, 100);
    sf_buf_puts(&b, "hello", NULL);
    size_t cap = b.cap;
    sf_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(sf_buf_str(&b), "");
    sf_buf_puts(&b, "world", NULL);
    size_t len = 0;
    char *p = sf_buf_steal(&b, &len);
    cr_assert_str_eq(p, "world");
    cr_assert_eq(len, 5);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    free(p);
    cr_assert_eq(sf_buf_puts(&b, "again", NULL), SF_OK, "usable after steal");
    cr_assert_str_eq(sf_buf_str(&b), "again");
    sf_buf_destroy(&b);
}

Test(buf, unlimited_maximum_still_allocates)
{
    sf_buf b;
    sf_buf_init(&b, SIZE_MAX);
    cr_assert_eq(sf_buf_puts(&b, "abc", NULL), SF_OK);
    cr_assert_str_eq(sf_buf_str(&b), "abc");
    sf_buf_destroy(&b);
}
