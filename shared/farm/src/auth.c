/* auth: API keys and their users; see sf/auth.h. */
#include "sf/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define TAG_LEN (sizeof SF_AUTH_KEY_TAG - 1)
#define BODY_LEN (SF_AUTH_KEY_LEN - TAG_LEN)

static const char *const TIERS[] = {"free", "premium", "enterprise"};

/* ---- keys ----------------------------------------------------------------- */

static int b64url_value(char c)
{
    const char *p = c ? strchr(B64URL, c) : NULL;
    return p ? (int)(p - B64URL) : -1;
}

/* Unpadded base64url of n bytes into out (4 * ceil(n / 3) + 1 bytes at most). */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = B64URL[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static sf_status random_bytes(unsigned char *buf, size_t n, sf_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sf_err_sys(err, SF_ERR_IO, errno, "could not read random bytes: %s", sf_err_errno_text(errno).text);
        got += (size_t)r;
    }
    return SF_OK;
}

sf_status sf_auth_hash(const char *text, size_t len, unsigned char hash[SF_AUTH_HASH_BYTES], sf_err *err)
{
    unsigned int out_len = 0;
    if (EVP_Digest(text, len, hash, &out_len, EVP_sha256(), NULL) != 1 || out_len != SF_AUTH_HASH_BYTES)
        return sf_err_set(err, SF_ERR_INTERNAL, "could not compute SHA-256");
    return SF_OK;
}

sf_status sf_auth_key_generate(sf_auth_key *key, sf_err *err)
{
    unsigned char raw[SF_AUTH_KEY_BYTES];
    memset(key, 0, sizeof *key);
    sf_status st = random_bytes(raw, sizeof raw, err);
    if (st != SF_OK)
        return st;
    memcpy(key->text, SF_AUTH_KEY_TAG, TAG_LEN);
    b64url_encode(raw, sizeof raw, key->text + TAG_LEN);
    explicit_bzero(raw, sizeof raw);
    memcpy(key->prefix, key->text, SF_AUTH_PREFIX_LEN);
    key->prefix[SF_AUTH_PREFIX_LEN] = '\0';
    return sf_auth_hash(key->text, SF_AUTH_KEY_LEN, key->hash, err);
}

int sf_auth_key_well_formed(const char *text, size_t len)
{
    if (text == NULL || len != SF_AUTH_KEY_LEN || memcmp(text, SF_AUTH_KEY_TAG, TAG_LEN) != 0)
        return 0;
    for (size_t i = TAG_LEN; i < SF_AUTH_KEY_LEN; i++)
        if (b64url_value(text[i]) < 0)
            return 0;
    /* 43 characters carry 258 bits for 256: the last one's low 2 bits are 0. */
    return (b64url_value(text[SF_AUTH_KEY_LEN - 1]) & 3) == 0;
}

int sf_auth_hash_equal(const unsigned char a[SF_AUTH_HASH_BYTES], const unsigned char b[SF_AUTH_HASH_BYTES])
{
    return CRYPTO_memcmp(a, b, SF_AUTH_HASH_BYTES) == 0;
}

const char *sf_auth_bearer(const char *value, size_t *len)
{
    *len = 0;
    if (value == NULL || strncasecmp(value, "Bearer ", 7) != 0)
        return NULL;
    const char *p = value + 7;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return p;
}

void sf_auth_key_wipe(sf_auth_key *key)
{
    if (key)
        explicit_bzero(key->text, sizeof key->text);
}

/* ---- database --------------------------------------------------------------- */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_decode(const char *s, unsigned char *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return 0;
        out[i] = (unsigned char)v;
    }
    return 1;
}

static sf_status invalid_key(sf_err *err)
{
    return sf_err_set(err, SF_ERR_AUTH, "invalid API key");
}

static sf_status user_from_row(const sf_db_res *res, const unsigned char *want, sf_auth_user *user, sf_err *err)
{
    unsigned char stored[SF_AUTH_HASH_BYTES];
    if (!hex_decode(sf_db_get(res, 0, 0), stored, sizeof stored) || !sf_auth_hash_equal(stored, want))
        return invalid_key(err);
    memset(user, 0, sizeof *user);
    snprintf(user->id, sizeof user->id, "%s", sf_db_get(res, 0, 1));
    snprintf(user->email, sizeof user->email, "%s", sf_db_get(res, 0, 2));
    snprintf(user->tier, sizeof user->tier, "%s", sf_db_get(res, 0, 3));
    user->key_id = strtoll(sf_db_get(res, 0, 4), NULL, 10);
    return SF_OK;
}

sf_status sf_auth_lookup(sf_db *db, const char *text, size_t len, sf_auth_user *user, sf_err *err)
{
    if (!sf_auth_key_well_formed(text, len))
        return invalid_key(err);
    unsigned char want[SF_AUTH_HASH_BYTES];
    sf_status st = sf_auth_hash(text, len, want, err);
    return st == SF_OK ? sf_auth_lookup_hash(db, want, user, err) : st;
}

sf_status sf_auth_lookup_hash(sf_db *db, const unsigned char want[SF_AUTH_HASH_BYTES], sf_auth_user *user, sf_err *err)
{
    char hex[2 * SF_AUTH_HASH_BYTES + 1];
    hex_encode(want, SF_AUTH_HASH_BYTES, hex);
    const char *params[] = {hex};
    sf_db_res *res = NULL;
    /* every request: prepared once per connection (parse and plan were most of it) */
    sf_status st = sf_db_query_prepared(db,
                                        "SELECT encode(k.key_hash, 'hex'), u.id, u.email, u.tier, k.id "
                                        "FROM api_keys k JOIN users u ON u.id = k.user_id "
                                        "WHERE k.key_hash = decode($1, 'hex') AND k.revoked_at IS NULL",
                                        1, params, &res, err);
    if (st == SF_OK)
        st = sf_db_nrows(res) == 1 ? user_from_row(res, want, user, err) : invalid_key(err);
    sf_db_res_free(res);
    return st;
}

sf_status sf_auth_key_create(sf_db *db, const char *user_id, sf_auth_key *key, sf_err *err)
{
    char hex[2 * SF_AUTH_HASH_BYTES + 1];
    hex_encode(key->hash, sizeof key->hash, hex);
    const char *params[] = {user_id, hex, key->prefix};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "INSERT INTO api_keys (user_id, key_hash, prefix) "
                               "VALUES ($1::uuid, decode($2, 'hex'), $3) RETURNING id",
                               3, params, &res, err);
    if (st == SF_OK)
        key->id = strtoll(sf_db_get(res, 0, 0), NULL, 10);
    sf_db_res_free(res);
    return st;
}

static sf_status check_user_fields(const char *email, const char *name, const char *tier, sf_err *err)
{
    size_t elen = email ? strnlen(email, SF_AUTH_EMAIL_MAX + 1) : 0;
    if (elen < 3 || elen > SF_AUTH_EMAIL_MAX || strchr(email, '@') == NULL || strpbrk(email, " \t\r\n") != NULL)
        return sf_err_set(err, SF_ERR_INVALID, "email: must be an address like name@example.com");
    size_t nlen = name ? strnlen(name, SF_AUTH_NAME_MAX + 1) : 0;
    if (nlen == 0 || nlen > SF_AUTH_NAME_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "name: must be 1 to %d characters", SF_AUTH_NAME_MAX);
    for (size_t i = 0; i < sizeof TIERS / sizeof TIERS[0]; i++)
        if (strcmp(tier, TIERS[i]) == 0)
            return SF_OK;
    return sf_err_set(err, SF_ERR_INVALID, "tier: must be free, premium or enterprise");
}

static sf_status insert_user(sf_db *db, const char *email, const char *name, const char *tier,
                             char user_id[SF_AUTH_ID_MAX], sf_err *err)
{
    const char *params[] = {email, name, tier};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "INSERT INTO users (email, name, password_hash, tier) "
                               "VALUES ($1, $2, '!', $3::user_tier) RETURNING id",
                               3, params, &res, err);
    if (st == SF_ERR_DB && strcmp(sf_db_sqlstate(db), SF_DB_SQLSTATE_UNIQUE) == 0)
        st = sf_err_set(err, SF_ERR_CONFLICT, "email: a user with email %s already exists", email);
    if (st == SF_OK)
        snprintf(user_id, SF_AUTH_ID_MAX, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    return st;
}

sf_status sf_auth_user_add(sf_db *db, const char *email, const char *name, const char *tier,
                           char user_id[SF_AUTH_ID_MAX], sf_auth_key *key, sf_err *err)
{
    if (tier == NULL)
        tier = "free";
    sf_status st = check_user_fields(email, name, tier, err);
    if (st == SF_OK)
        st = sf_auth_key_generate(key, err);
    if (st != SF_OK || (st = sf_db_begin(db, err)) != SF_OK)
        return st;
    st = insert_user(db, email, name, tier, user_id, err);
    if (st == SF_OK)
        st = sf_auth_key_create(db, user_id, key, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
        sf_auth_key_wipe(key);
        user_id[0] = '\0';
    }
    return st;
}

sf_status sf_auth_user_find(sf_db *db, const char *email, char user_id[SF_AUTH_ID_MAX], sf_err *err)
{
    const char *params[] = {email};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, "SELECT id FROM users WHERE email = $1", 1, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no user with email %s", email);
    if (st == SF_OK)
        snprintf(user_id, SF_AUTH_ID_MAX, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    return st;
}

sf_status sf_auth_key_revoke(sf_db *db, int64_t key_id, const char *user_id, sf_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)key_id);
    const char *params[] = {id, user_id};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "UPDATE api_keys SET revoked_at = now() WHERE id = $1::bigint "
                               "AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2::uuid)",
                               2, params, &res, err);
    if (st == SF_OK && sf_db_affected(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no active API key with id %lld", (long long)key_id);
    sf_db_res_free(res);
    return st;
}

/* The owner of an unrevoked key, revoked now; SF_ERR_NOTFOUND when none. */
static sf_status revoke_returning_owner(sf_db *db, int64_t key_id, char user_id[SF_AUTH_ID_MAX], sf_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)key_id);
    const char *params[] = {id};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "UPDATE api_keys SET revoked_at = now() WHERE id = $1::bigint AND revoked_at IS NULL "
                               "RETURNING user_id",
                               1, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no active API key with id %lld", (long long)key_id);
    if (st == SF_OK)
        snprintf(user_id, SF_AUTH_ID_MAX, "%s", sf_db_get(res, 0, 0));
    sf_db_res_free(res);
    return st;
}

sf_status sf_auth_key_rotate(sf_db *db, int64_t key_id, char user_id[SF_AUTH_ID_MAX], sf_auth_key *key, sf_err *err)
{
    sf_status st = sf_auth_key_generate(key, err);
    if (st != SF_OK || (st = sf_db_begin(db, err)) != SF_OK)
        return st;
    st = revoke_returning_owner(db, key_id, user_id, err);
    if (st == SF_OK)
        st = sf_auth_key_create(db, user_id, key, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
        sf_auth_key_wipe(key);
    }
    return st;
}

sf_status sf_auth_user_set_tier(sf_db *db, const char *email, const char *tier, sf_err *err)
{
    size_t i = 0;
    while (i < sizeof TIERS / sizeof TIERS[0] && strcmp(tier, TIERS[i]) != 0)
        i++;
    if (i == sizeof TIERS / sizeof TIERS[0])
        return sf_err_set(err, SF_ERR_INVALID, "tier: must be free, premium or enterprise");
    const char *params[] = {email, tier};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, "UPDATE users SET tier = $2::user_tier, updated_at = now() WHERE email = $1", 2,
                               params, &res, err);
    if (st == SF_OK && sf_db_affected(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no user with email %s", email);
    sf_db_res_free(res);
    return st;
}
