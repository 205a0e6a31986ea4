/* Tests for sf_auth without a database: key format, hashing, comparison, Bearer parsing. */
#include <criterion/criterion.h>

#include <string.h>

#include "sf/auth.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decode unpadded base64url (test's own decoder) into out; returns the byte count. */
static size_t decode(const char *s, unsigned char *out)
{
    size_t n = strlen(s), o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(B64URL, s[i]);
        cr_assert_not_null(p, "character %c is not base64url", s[i]);
        acc = (acc << 6) | (uint32_t)(p - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    cr_assert_eq(acc, 0, "stray bits at the end");
    return o;
}

Test(auth, generated_key_is_sf_plus_43_base64url_characters_of_32_random_bytes)
{
    sf_auth_key k;
    sf_err err = {0};
    cr_assert_eq(sf_auth_key_generate(&k, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(strlen(k.text), 46);
    cr_assert_eq(strncmp(k.text, "sf_", 3), 0);
    unsigned char raw[40];
    cr_assert_eq(decode(k.text + 3, raw), 32);
    cr_assert_eq(strlen(k.prefix), SF_AUTH_PREFIX_LEN);
    cr_assert_eq(strncmp(k.prefix, k.text, SF_AUTH_PREFIX_LEN), 0);
    cr_assert(sf_auth_key_well_formed(k.text, strlen(k.text)));
    cr_assert_eq(k.id, 0);
}

Test(auth, keys_differ_every_time)
{
    sf_auth_key a, b;
    cr_assert_eq(sf_auth_key_generate(&a, NULL), SF_OK);
    cr_assert_eq(sf_auth_key_generate(&b, NULL), SF_OK);
    cr_assert_str_neq(a.text, b.text);
    cr_assert(memcmp(a.hash, b.hash, sizeof a.hash) != 0);
}

Test(auth, stored_hash_is_sha256_of_the_key_text)
{
    /* FIPS 180-2 test vector: SHA-256("abc"). */
    static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                          0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                          0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char h[32];
    cr_assert_eq(sf_auth_hash("abc", 3, h, NULL), SF_OK);
    cr_assert(memcmp(h, abc, 32) == 0);

    sf_auth_key k;
    cr_assert_eq(sf_auth_key_generate(&k, NULL), SF_OK);
    cr_assert_eq(sf_auth_hash(k.text, strlen(k.text), h, NULL), SF_OK);
    cr_assert(memcmp(h, k.hash, 32) == 0);
}

Test(auth, hash_compare_finds_a_difference_in_any_byte)
{
    unsigned char a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = (unsigned char)(i * 7 + 1);
    memcpy(b, a, 32);
    cr_assert(sf_auth_hash_equal(a, b));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        cr_assert_not(sf_auth_hash_equal(a, b), "difference in byte %d not seen", i);
        b[i] ^= 0x80;
    }
    cr_assert(sf_auth_hash_equal(a, b));
}

Test(auth, malformed_keys_are_rejected_before_any_lookup)
{
    sf_auth_key k;
    cr_assert_eq(sf_auth_key_generate(&k, NULL), SF_OK);
    char t[64];
    cr_assert_not(sf_auth_key_well_formed(k.text, 45));
    cr_assert_not(sf_auth_key_well_formed(NULL, 46));
    memcpy(t, k.text, 47);
    t[0] = 'S';
    cr_assert_not(sf_auth_key_well_formed(t, 46), "wrong tag");
    memcpy(t, k.text, 47);
    t[10] = '+';
    cr_assert_not(sf_auth_key_well_formed(t, 46), "standard base64 character");
    memcpy(t, k.text, 47);
    t[45] = 'B'; /* value 1: a stray low bit in the last character */
    cr_assert_not(sf_auth_key_well_formed(t, 46));
    t[45] = 'E'; /* value 4: allowed */
    cr_assert(sf_auth_key_well_formed(t, 46));
}

Test(auth, bearer_header_is_parsed_strictly)
{
    size_t len = 99;
    const char *k = sf_auth_bearer("Bearer sf_abc", &len);
    cr_assert_not_null(k);
    cr_assert_eq(len, 6);
    cr_assert_eq(strncmp(k, "sf_abc", len), 0);
    k = sf_auth_bearer("bearer   sf_abc  ", &len);
    cr_assert_eq(len, 6);
    cr_assert_eq(strncmp(k, "sf_abc", len), 0);
    cr_assert_null(sf_auth_bearer("Basic dXNlcjpwYXNz", &len));
    cr_assert_eq(len, 0);
    cr_assert_null(sf_auth_bearer("Bearer ", &len));
    cr_assert_null(sf_auth_bearer("Bearer", &len));
    cr_assert_null(sf_auth_bearer(NULL, &len));
}

Test(auth, wipe_clears_the_secret_but_keeps_the_hash)
{
    sf_auth_key k;
    cr_assert_eq(sf_auth_key_generate(&k, NULL), SF_OK);
    unsigned char h[32];
    memcpy(h, k.hash, 32);
    sf_auth_key_wipe(&k);
    for (size_t i = 0; i < sizeof k.text; i++)
        cr_assert_eq(k.text[i], 0);
    cr_assert(memcmp(h, k.hash, 32) == 0);
}
