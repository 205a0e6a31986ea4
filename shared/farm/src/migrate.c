/*
 * migrate: schema migrations; see sf/migrate.h.
 *
 * DESIGN. A run has three steps. (1) Scan: read the directory into a set
 * sorted by version, validating names, pairs and gaps, and hashing every up
 * file. (2) Verify: load schema_migrations and refuse any applied version
 * whose file is gone or whose up file hashes differently, and any pending
 * version below the newest applied one. Nothing has been changed yet. (3)
 * Act: one transaction per migration. Inside it the table lock serialises
 * runners and the re-check decides again, under the lock, whether this
 * migration is still to be done; a runner that lost the race skips it.
 */
#include "sf/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/time.h"

#define STEM_MAX 256
#define PATH_MAX_LEN 4096

/* Any 64-bit constant shared by every runner: "sfmigrat". */
#define BOOTSTRAP_LOCK_KEY "7162254439467495796"

typedef struct mig {
    int version;
    char stem[STEM_MAX]; /* "0001_users" */
    char up_name[STEM_MAX + 16];
    char down_name[STEM_MAX + 16];
    char checksum[65]; /* of the up file */
} mig;

typedef struct mig_set {
    const char *dir;
    mig *v; /* v[i].version == i + 1 once scanned */
    size_t n, cap;
} mig_set;

typedef struct applied {
    int version;
    char name[STEM_MAX];
    char checksum[65];
    char at[40];
} applied;

typedef struct applied_set {
    applied *v;
    size_t n;
} applied_set;

/* ---- files ---- */

static sf_status read_file(const char *path, sf_buf *out, sf_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return sf_err_sys(err, SF_ERR_IO, errno, "could not open \"%s\": %s", path, sf_err_errno_text(errno).text);
    char chunk[8192];
    size_t n;
    sf_status st = SF_OK;
    while (st == SF_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st = sf_buf_append(out, chunk, n, err);
    if (st == SF_OK && ferror(f))
        st = sf_err_set(err, SF_ERR_IO, "could not read \"%s\"", path);
    fclose(f);
    if (st == SF_ERR_LIMIT)
        sf_err_set(err, SF_ERR_LIMIT, "\"%s\" is larger than %u bytes", path, SF_MIGRATE_FILE_MAX);
    if (st == SF_OK && strlen(sf_buf_str(out)) != out->len)
        st = sf_err_set(err, SF_ERR_INVALID, "\"%s\" contains a NUL byte", path);
    return st;
}

static void sha256_hex(const void *p, size_t n, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        hex[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

sf_status sf_migrate_checksum_file(const char *path, char hex[65], sf_err *err)
{
    sf_buf b;
    sf_buf_init(&b, SF_MIGRATE_FILE_MAX);
    sf_status st = read_file(path, &b, err);
    if (st == SF_OK) {
        sha256_hex(b.data ? b.data : "", b.len, hex);
        if (hex[0] == '\0')
            st = sf_err_set(err, SF_ERR_INTERNAL, "could not compute sha-256 of \"%s\"", path);
    }
    sf_buf_destroy(&b);
    return st;
}

static void join_path(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

/* ---- scan ---- */

enum { NAME_IGNORE, NAME_UP, NAME_DOWN, NAME_BAD };

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Classify a file name; fills version and stem ("0001_users") when it fits. */
static int classify(const char *name, int *version, char stem[STEM_MAX])
{
    int sql = has_suffix(name, ".sql");
    if (name[0] == '.' || (!sql && !(name[0] >= '0' && name[0] <= '9')))
        return NAME_IGNORE;
    int kind = has_suffix(name, ".up.sql") ? NAME_UP : has_suffix(name, ".down.sql") ? NAME_DOWN : NAME_BAD;
    if (kind == NAME_BAD)
        return NAME_BAD;
    size_t stem_len = strlen(name) - (kind == NAME_UP ? 7 : 9);
    if (stem_len < 6 || stem_len >= SF_MIGRATE_NAME_MAX || name[4] != '_')
        return NAME_BAD;
    for (size_t i = 0; i < stem_len; i++) {
        char c = name[i];
        int ok =
            i < 4 ? (c >= '0' && c <= '9') : i == 4 || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok)
            return NAME_BAD;
    }
    *version = (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 + (name[3] - '0');
    if (*version < 1)
        return NAME_BAD;
    memcpy(stem, name, stem_len);
    stem[stem_len] = '\0';
    return kind;
}

static mig *find_or_add(mig_set *s, int version, const char *stem, sf_err *err)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].version == version)
            return &s->v[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        mig *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            sf_err_set(err, SF_ERR_NOMEM, "out of memory");
            return NULL;
        }
        s->v = v;
        s->cap = cap;
    }
    mig *m = &s->v[s->n++];
    memset(m, 0, sizeof *m);
    m->version = version;
    snprintf(m->stem, sizeof m->stem, "%s", stem);
    return m;
}

static sf_status add_file(mig_set *s, const char *name, sf_err *err)
{
    int version = 0;
    char stem[STEM_MAX];
    int kind = classify(name, &version, stem);
    if (kind == NAME_IGNORE)
        return SF_OK;
    if (kind == NAME_BAD)
        return sf_err_set(err, SF_ERR_INVALID,
                          "%s/%s: bad migration file name (want NNNN_name.up.sql or NNNN_name.down.sql, "
                          "name of a-z, 0-9, _)",
                          s->dir, name);
    mig *m = find_or_add(s, version, stem, err);
    if (m == NULL)
        return SF_ERR_NOMEM;
    char *slot = kind == NAME_UP ? m->up_name : m->down_name;
    if (strcmp(m->stem, stem) != 0 || slot[0])
        return sf_err_set(err, SF_ERR_INVALID, "%s: version %04d is used by both %s and %s", s->dir, version,
                          slot[0] ? slot : m->stem, name);
    snprintf(slot, STEM_MAX + 16, "%s", name);
    return SF_OK;
}

static int by_version(const void *a, const void *b)
{
    const mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* After sorting: both files for every version, versions 1..n. */
static sf_status check_set(mig_set *s, sf_err *err)
{
    qsort(s->v, s->n, sizeof *s->v, by_version);
    for (size_t i = 0; i < s->n; i++) {
        const mig *m = &s->v[i];
        if (!m->up_name[0] || !m->down_name[0])
            return sf_err_set(err, SF_ERR_INVALID, "%s/%s: has no matching %s file", s->dir,
                              m->up_name[0] ? m->up_name : m->down_name, m->up_name[0] ? ".down.sql" : ".up.sql");
        if (m->version != (int)i + 1)
            return sf_err_set(err, SF_ERR_INVALID, "%s: version %04d is missing (next file is %s)", s->dir, (int)i + 1,
                              m->up_name);
    }
    return SF_OK;
}

static sf_status hash_all(mig_set *s, sf_err *err)
{
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < s->n; i++) {
        join_path(path, sizeof path, s->dir, s->v[i].up_name);
        sf_status st = sf_migrate_checksum_file(path, s->v[i].checksum, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

static void set_free(mig_set *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static sf_status scan(const char *dir, mig_set *s, sf_err *err)
{
    memset(s, 0, sizeof *s);
    s->dir = dir;
    DIR *d = opendir(dir);
    if (d == NULL)
        return sf_err_sys(err, SF_ERR_IO, errno, "could not open migrations directory \"%s\": %s", dir,
                          sf_err_errno_text(errno).text);
    sf_status st = SF_OK;
    struct dirent *e;
    while (st == SF_OK && (e = readdir(d)) != NULL)
        st = add_file(s, e->d_name, err);
    closedir(d);
    if (st == SF_OK && s->n > SF_MIGRATE_MAX)
        st = sf_err_set(err, SF_ERR_LIMIT, "%s: more than %d migrations", dir, SF_MIGRATE_MAX);
    if (st == SF_OK)
        st = check_set(s, err);
    if (st == SF_OK)
        st = hash_all(s, err);
    if (st != SF_OK)
        set_free(s);
    return st;
}

sf_status sf_migrate_check_dir(const char *dir, int *count, sf_err *err)
{
    mig_set s;
    sf_status st = scan(dir, &s, err);
    if (st == SF_OK && count)
        *count = (int)s.n;
    set_free(&s);
    return st;
}

static const mig *find_mig(const mig_set *s, int version)
{
    return version >= 1 && (size_t)version <= s->n ? &s->v[version - 1] : NULL;
}

/* ---- the schema_migrations table ---- */

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 " version integer PRIMARY KEY CHECK (version > 0),"
                                 " name text NOT NULL,"
                                 " checksum text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())";

/* Create the table race-free: the advisory lock is released at commit. */
static sf_status bootstrap(sf_db *db, sf_err *err)
{
    sf_status st = sf_db_begin(db, err);
    if (st == SF_OK)
        st = sf_db_exec(db, "SELECT pg_advisory_xact_lock(" BOOTSTRAP_LOCK_KEY ")", err);
    if (st == SF_OK)
        st = sf_db_exec(db, create_sql, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
        sf_err_prefix(err, "could not create schema_migrations");
    }
    return st;
}

static sf_status table_exists(sf_db *db, int *exists, sf_err *err)
{
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &res, err);
    if (st == SF_OK)
        *exists = sf_db_nrows(res) == 1 && strcmp(sf_db_get(res, 0, 0), "t") == 0;
    sf_db_res_free(res);
    return st;
}

static void fill_applied(applied *a, const sf_db_res *res, int row)
{
    a->version = (int)strtol(sf_db_get(res, row, 0), NULL, 10);
    snprintf(a->name, sizeof a->name, "%s", sf_db_get(res, row, 1));
    snprintf(a->checksum, sizeof a->checksum, "%s", sf_db_get(res, row, 2));
    snprintf(a->at, sizeof a->at, "%s", sf_db_get(res, row, 3));
}

static sf_status load_applied(sf_db *db, applied_set *out, sf_err *err)
{
    out->v = NULL;
    out->n = 0;
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM schema_migrations ORDER BY version",
                               0, NULL, &res, err);
    if (st != SF_OK)
        return st;
    int n = sf_db_nrows(res);
    if (n > 0 && (out->v = calloc((size_t)n, sizeof *out->v)) == NULL) {
        sf_db_res_free(res);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        fill_applied(&out->v[i], res, i);
    out->n = (size_t)n;
    sf_db_res_free(res);
    return SF_OK;
}

static sf_status changed_error(const mig_set *s, const mig *m, const char *db_sum, sf_err *err)
{
    return sf_err_set(err, SF_ERR_CONFLICT,
                      "%s/%s changed after it was applied: checksum in schema_migrations %s, file %s "
                      "(restore the file; write a new migration for new changes)",
                      s->dir, m->up_name, db_sum, m->checksum);
}

/* Refuse drift before anything is changed. */
static sf_status verify(const mig_set *s, const applied_set *a, sf_err *err)
{
    int newest = a->n ? a->v[a->n - 1].version : 0;
    for (size_t i = 0; i < a->n; i++) {
        const mig *m = find_mig(s, a->v[i].version);
        if (m == NULL)
            return sf_err_set(err, SF_ERR_CONFLICT,
                              "applied migration %04d (%s) has no file in %s: is this build older than the database?",
                              a->v[i].version, a->v[i].name, s->dir);
        if (strcmp(m->checksum, a->v[i].checksum) != 0)
            return changed_error(s, m, a->v[i].checksum, err);
    }
    /* Applied versions are distinct and sorted: a hole shows as v[j] != j + 1. */
    for (size_t j = 0; j < a->n; j++)
        if (a->v[j].version != (int)j + 1)
            return sf_err_set(err, SF_ERR_CONFLICT, "%s is pending but the newer %04d is already applied", s->v[j].stem,
                              newest);
    return SF_OK;
}

/* ---- one migration in one transaction ---- */

/* Under the table lock: is version applied (and with which checksum), and
 * which version is the newest applied. */
static sf_status recheck(sf_db *db, int version, char sum[65], int *is_applied, int *newest, sf_err *err)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *params[] = {v};
    sf_db_res *res = NULL;
    sf_status st = sf_db_exec(db, "LOCK TABLE schema_migrations IN EXCLUSIVE MODE", err);
    if (st == SF_OK)
        st = sf_db_query(db,
                         "SELECT (SELECT checksum FROM schema_migrations WHERE version = $1::integer),"
                         " (SELECT coalesce(max(version), 0) FROM schema_migrations)",
                         1, params, &res, err);
    if (st != SF_OK)
        return st;
    *is_applied = !sf_db_is_null(res, 0, 0);
    snprintf(sum, 65, "%s", *is_applied ? sf_db_get(res, 0, 0) : "");
    *newest = (int)strtol(sf_db_get(res, 0, 1), NULL, 10);
    sf_db_res_free(res);
    return SF_OK;
}

static sf_status run_file(sf_db *db, const mig_set *s, const char *name, sf_err *err)
{
    char path[PATH_MAX_LEN];
    join_path(path, sizeof path, s->dir, name);
    sf_buf sql;
    sf_buf_init(&sql, SF_MIGRATE_FILE_MAX);
    sf_status st = read_file(path, &sql, err);
    if (st == SF_OK && sql.len > 0)
        st = sf_db_exec(db, sf_buf_str(&sql), err);
    if (st != SF_OK && st != SF_ERR_IO && st != SF_ERR_LIMIT && st != SF_ERR_INVALID)
        sf_err_prefix(err, "%s", path);
    sf_buf_destroy(&sql);
    return st;
}

static sf_status record(sf_db *db, const mig *m, sf_err *err)
{
    char v[16];
    snprintf(v, sizeof v, "%d", m->version);
    const char *params[] = {v, m->stem, m->checksum};
    return sf_db_query(db, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::integer, $2, $3)", 3,
                       params, NULL, err);
}

static void report(sf_migrate_report_fn fn, void *ctx, sf_migrate_state state, const mig *m, int64_t ms)
{
    if (fn == NULL)
        return;
    sf_migrate_event ev = {state, m->version, m->stem, NULL, m->checksum, ms};
    fn(&ev, ctx);
}

/* The body of apply_one inside its transaction; *done = 0 when skipped. */
static sf_status apply_locked(sf_db *db, const mig_set *s, const mig *m, int *done, sf_err *err)
{
    char sum[65];
    int is_applied = 0, newest = 0;
    sf_status st = recheck(db, m->version, sum, &is_applied, &newest, err);
    if (st != SF_OK)
        return st;
    if (is_applied && strcmp(sum, m->checksum) != 0)
        return changed_error(s, m, sum, err);
    if (is_applied)
        return SF_OK;
    if (newest > m->version)
        return sf_err_set(err, SF_ERR_CONFLICT, "%s is pending but the newer %04d is already applied", m->stem, newest);
    st = run_file(db, s, m->up_name, err);
    if (st == SF_OK)
        st = record(db, m, err);
    *done = st == SF_OK;
    return st;
}

static sf_status apply_one(sf_db *db, const mig_set *s, const mig *m, sf_migrate_report_fn fn, void *ctx, sf_err *err)
{
    int64_t t0 = sf_time_mono_ms();
    int done = 0;
    sf_status st = sf_db_begin(db, err);
    if (st == SF_OK)
        st = apply_locked(db, s, m, &done, err);
    if (st == SF_OK && done)
        st = sf_db_commit(db, err);
    if (st != SF_OK || !done) {
        sf_db_rollback(db);
        if (st != SF_OK)
            sf_err_prefix(err, "could not apply %s", m->stem);
        return st;
    }
    report(fn, ctx, SF_MIGRATE_APPLIED, m, sf_time_mono_ms() - t0);
    return SF_OK;
}

static sf_status revert_locked(sf_db *db, const mig_set *s, const mig *m, int *done, sf_err *err)
{
    char sum[65];
    int is_applied = 0, newest = 0;
    sf_status st = recheck(db, m->version, sum, &is_applied, &newest, err);
    if (st != SF_OK || !is_applied)
        return st;
    if (strcmp(sum, m->checksum) != 0)
        return changed_error(s, m, sum, err);
    if (newest != m->version)
        return sf_err_set(err, SF_ERR_CONFLICT, "%s is no longer the newest applied migration (%04d is)", m->stem,
                          newest);
    st = run_file(db, s, m->down_name, err);
    char v[16];
    snprintf(v, sizeof v, "%d", m->version);
    const char *params[] = {v};
    if (st == SF_OK)
        st = sf_db_query(db, "DELETE FROM schema_migrations WHERE version = $1::integer", 1, params, NULL, err);
    *done = st == SF_OK;
    return st;
}

static sf_status revert_one(sf_db *db, const mig_set *s, const mig *m, sf_migrate_report_fn fn, void *ctx, sf_err *err)
{
    int64_t t0 = sf_time_mono_ms();
    int done = 0;
    sf_status st = sf_db_begin(db, err);
    if (st == SF_OK)
        st = revert_locked(db, s, m, &done, err);
    if (st == SF_OK && done)
        st = sf_db_commit(db, err);
    if (st != SF_OK || !done) {
        sf_db_rollback(db);
        if (st != SF_OK)
            sf_err_prefix(err, "could not revert %s", m->stem);
        return st;
    }
    report(fn, ctx, SF_MIGRATE_REVERTED, m, sf_time_mono_ms() - t0);
    return SF_OK;
}

/* ---- commands ---- */

/* Scan, create the table, load and verify: the common start of up and down. */
static sf_status prepare(sf_db *db, const char *dir, mig_set *s, applied_set *a, sf_err *err)
{
    a->v = NULL;
    a->n = 0;
    sf_status st = scan(dir, s, err);
    if (st != SF_OK)
        return st;
    st = bootstrap(db, err);
    if (st == SF_OK)
        st = load_applied(db, a, err);
    if (st == SF_OK)
        st = verify(s, a, err);
    if (st != SF_OK) {
        set_free(s);
        free(a->v);
        a->v = NULL;
    }
    return st;
}

sf_status sf_migrate_up(sf_db *db, const char *dir, int target, sf_migrate_report_fn fn, void *ctx, sf_err *err)
{
    if (target < 0 || target > SF_MIGRATE_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "target version must be from 0 to %d, got %d", SF_MIGRATE_MAX, target);
    mig_set s;
    applied_set a;
    sf_status st = prepare(db, dir, &s, &a, err);
    if (st != SF_OK)
        return st;
    if (target > 0 && (size_t)target > s.n)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "%s: no migration %04d (the newest is %04zu)", dir, target, s.n);
    size_t last = target > 0 ? (size_t)target : s.n;
    for (size_t i = a.n; st == SF_OK && i < last; i++)
        st = apply_one(db, &s, &s.v[i], fn, ctx, err);
    set_free(&s);
    free(a.v);
    return st;
}

sf_status sf_migrate_down(sf_db *db, const char *dir, int steps, sf_migrate_report_fn fn, void *ctx, sf_err *err)
{
    if (steps < 1 || steps > SF_MIGRATE_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "steps must be from 1 to %d, got %d", SF_MIGRATE_MAX, steps);
    mig_set s;
    applied_set a;
    sf_status st = prepare(db, dir, &s, &a, err);
    if (st != SF_OK)
        return st;
    for (size_t k = 0; st == SF_OK && k < a.n && k < (size_t)steps; k++)
        st = revert_one(db, &s, find_mig(&s, a.v[a.n - 1 - k].version), fn, ctx, err);
    set_free(&s);
    free(a.v);
    return st;
}

static void report_status(const applied *row, const mig *m, sf_migrate_report_fn fn, void *ctx)
{
    sf_migrate_event ev = {
        SF_MIGRATE_PENDING, m ? m->version : row->version, m ? m->stem : row->name, NULL, m ? m->checksum : NULL, 0};
    if (row) {
        ev.applied_at = row->at;
        ev.state = m == NULL                                 ? SF_MIGRATE_MISSING
                   : strcmp(m->checksum, row->checksum) != 0 ? SF_MIGRATE_CHANGED
                                                             : SF_MIGRATE_APPLIED;
    }
    fn(&ev, ctx);
}

sf_status sf_migrate_status(sf_db *db, const char *dir, sf_migrate_report_fn fn, void *ctx, sf_err *err)
{
    mig_set s;
    applied_set a = {NULL, 0};
    int exists = 0;
    sf_status st = scan(dir, &s, err);
    if (st != SF_OK)
        return st;
    st = table_exists(db, &exists, err);
    if (st == SF_OK && exists)
        st = load_applied(db, &a, err);
    size_t i = 0, j = 0; /* merge files (i) and applied rows (j) by version */
    while (st == SF_OK && fn && (i < s.n || j < a.n)) {
        int fv = i < s.n ? s.v[i].version : SF_MIGRATE_MAX + 1;
        int av = j < a.n ? a.v[j].version : SF_MIGRATE_MAX + 1;
        const applied *row = av <= fv ? &a.v[j++] : NULL;
        const mig *m = fv <= av ? &s.v[i++] : NULL;
        report_status(row, m, fn, ctx);
    }
    set_free(&s);
    free(a.v);
    return st;
}
