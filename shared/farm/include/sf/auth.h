/*
 * auth: API keys and the users they belong to.
 *
 * A key is SF_AUTH_KEY_BYTES random bytes from getrandom(2), shown to its
 * owner once as "sf_" followed by their unpadded base64url text (46
 * characters in all). Only its SHA-256 (libcrypto EVP) is stored, in
 * api_keys.key_hash, with the first SF_AUTH_PREFIX_LEN characters in
 * api_keys.prefix so people can tell their keys apart in lists. Lookup hashes
 * the presented key, finds the row through the unique index on key_hash, and
 * compares the stored hash with CRYPTO_memcmp (constant time). A revoked key
 * (revoked_at set) no longer authenticates.
 *
 * Users created here have no password (password_hash "!", which no password
 * hash can equal): they authenticate with API keys only.
 *
 * Errors: SF_ERR_AUTH for a missing, malformed, unknown or revoked key (one
 * message for all: "invalid API key", so a caller learns nothing more);
 * SF_ERR_INVALID for bad user fields (message starts with the field name);
 * SF_ERR_CONFLICT for an email that already exists; database errors as in
 * sf/db.h.
 *
 * Thread safety: the functions share no state; each call needs its own sf_db
 * (not inside a transaction for the ones that run their own).
 * Ownership: everything is caller storage; an sf_auth_key holds the key text,
 * which the caller should wipe (sf_auth_key_wipe) once it has been shown.
 */
#ifndef SF_AUTH_H
#define SF_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "sf/db.h"
#include "sf/err.h"

#define SF_AUTH_KEY_BYTES 32
#define SF_AUTH_KEY_TAG "sf_"
#define SF_AUTH_KEY_LEN 46    /* "sf_" + 43 base64url characters */
#define SF_AUTH_PREFIX_LEN 11 /* "sf_" + 8 characters, stored in api_keys.prefix */
#define SF_AUTH_HASH_BYTES 32 /* SHA-256 */
#define SF_AUTH_ID_MAX 40     /* uuid text + NUL, with room */
#define SF_AUTH_EMAIL_MAX 254
#define SF_AUTH_NAME_MAX 200
#define SF_AUTH_TIER_MAX 16

typedef struct sf_auth_key {
    char text[SF_AUTH_KEY_LEN + 1]; /* the secret: show once, then wipe */
    char prefix[SF_AUTH_PREFIX_LEN + 1];
    unsigned char hash[SF_AUTH_HASH_BYTES];
    int64_t id; /* api_keys.id once stored; 0 before */
} sf_auth_key;

/* Who a key belongs to. */
typedef struct sf_auth_user {
    char id[SF_AUTH_ID_MAX];
    char email[SF_AUTH_EMAIL_MAX + 1];
    char tier[SF_AUTH_TIER_MAX];
    int64_t key_id;
} sf_auth_user;

/* ---- keys, no database ---------------------------------------------------- */

/* A new random key (getrandom; SF_ERR_IO if it fails) with its prefix and hash. */
sf_status sf_auth_key_generate(sf_auth_key *key, sf_err *err);

/* 1 when text has the shape of a key: "sf_" + 43 base64url characters whose
 * last one encodes no stray bits. */
int sf_auth_key_well_formed(const char *text, size_t len);

/* SHA-256 of len bytes of text. */
sf_status sf_auth_hash(const char *text, size_t len, unsigned char hash[SF_AUTH_HASH_BYTES], sf_err *err);

/* Constant-time comparison (CRYPTO_memcmp): 1 when equal. */
int sf_auth_hash_equal(const unsigned char a[SF_AUTH_HASH_BYTES], const unsigned char b[SF_AUTH_HASH_BYTES]);

/* The key from an "Authorization: Bearer <key>" header value (borrowed from
 * value; *len gets its length). NULL when the header is absent or not a
 * Bearer credential. The scheme is matched case-insensitively. */
const char *sf_auth_bearer(const char *value, size_t *len);

/* Overwrite the secret text (explicit_bzero). */
void sf_auth_key_wipe(sf_auth_key *key);

/* ---- with the database ---------------------------------------------------- */

/* The user of a presented key; SF_ERR_AUTH "invalid API key" unless the key is
 * well formed, stored, and not revoked. */
sf_status sf_auth_lookup(sf_db *db, const char *text, size_t len, sf_auth_user *user, sf_err *err);

/* The same for a key already checked (sf_auth_key_well_formed) and hashed
 * (sf_auth_hash), e.g. by a cache of keys in front of the database. */
sf_status sf_auth_lookup_hash(sf_db *db, const unsigned char hash[SF_AUTH_HASH_BYTES], sf_auth_user *user, sf_err *err);

/* Store a new key for user_id; key->id is set. One statement. */
sf_status sf_auth_key_create(sf_db *db, const char *user_id, sf_auth_key *key, sf_err *err);

/*
 * Create a user (email 3..SF_AUTH_EMAIL_MAX characters containing "@", name
 * 1..SF_AUTH_NAME_MAX characters, tier "free" | "premium" | "enterprise"; NULL
 * = "free") and their first key, in one transaction. user_id receives the new
 * user's id. SF_ERR_CONFLICT when the email is taken.
 */
sf_status sf_auth_user_add(sf_db *db, const char *email, const char *name, const char *tier,
                           char user_id[SF_AUTH_ID_MAX], sf_auth_key *key, sf_err *err);

/* The id of the user with this email; SF_ERR_NOTFOUND when none. */
sf_status sf_auth_user_find(sf_db *db, const char *email, char user_id[SF_AUTH_ID_MAX], sf_err *err);

/* Revoke a key by api_keys.id (user_id NULL = any owner). SF_ERR_NOTFOUND
 * when no such unrevoked key exists. */
sf_status sf_auth_key_revoke(sf_db *db, int64_t key_id, const char *user_id, sf_err *err);

/* Rotate a key: in one transaction, revoke key key_id (it answers 401 from
 * then on) and store a new key of the same user (key, key->id set; user_id
 * gets the owner). SF_ERR_NOTFOUND when no such unrevoked key exists. */
sf_status sf_auth_key_rotate(sf_db *db, int64_t key_id, char user_id[SF_AUTH_ID_MAX], sf_auth_key *key, sf_err *err);

/* Set the tier of the user with this email ("free" | "premium" |
 * "enterprise"). SF_ERR_INVALID for another tier, SF_ERR_NOTFOUND when no
 * such user. */
sf_status sf_auth_user_set_tier(sf_db *db, const char *email, const char *tier, sf_err *err);

#endif
