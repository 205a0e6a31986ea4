/*
 * migrate: the schema migration runner behind `sf-migrate` (and later
 * `sfctl migrate`).
 *
 * A migrations directory holds pairs NNNN_name.up.sql / NNNN_name.down.sql
 * (four digits, name of [a-z0-9_]); versions run 1, 2, 3 ... with no gap or
 * duplicate, and every version has both files. Any .sql file, or any file
 * whose name starts with a digit, that does not follow the pattern is an
 * error; other files (README, dotfiles) are ignored.
 *
 * The table schema_migrations (version, name, checksum, applied_at) records
 * what is applied; checksum is the hex SHA-256 of the up file. Each migration
 * runs in its own transaction together with its schema_migrations row, after
 * `LOCK TABLE schema_migrations IN EXCLUSIVE MODE` and a re-check, so several
 * runners at once apply each migration exactly once. The table itself is
 * created under a transaction-level advisory lock. No session-level lock is
 * ever held (PgBouncer transaction pooling). Migration files must not contain
 * their own BEGIN/COMMIT.
 *
 * Before anything is applied or reverted, every applied migration is checked
 * against its file: an up file that changed since it was applied, or an
 * applied version with no file, is refused with SF_ERR_CONFLICT naming the
 * file (and both checksums). A pending migration older than the newest
 * applied one is refused too.
 *
 * Thread safety: the functions share no state; each call needs its own
 * sf_db. Ownership: the event given to the report callback, and the strings
 * in it, are borrowed for the duration of the callback.
 */
#ifndef SF_MIGRATE_H
#define SF_MIGRATE_H

#include <stdint.h>

#include "sf/db.h"
#include "sf/err.h"

#define SF_MIGRATE_MAX 9999             /* versions 0001 .. 9999 */
#define SF_MIGRATE_FILE_MAX (16u << 20) /* bytes in one .sql file */
#define SF_MIGRATE_NAME_MAX 128         /* "0001_users" */

typedef enum sf_migrate_state {
    SF_MIGRATE_APPLIED,  /* up: applied now; status: applied at applied_at */
    SF_MIGRATE_REVERTED, /* down: reverted now */
    SF_MIGRATE_PENDING,  /* status: file present, not applied */
    SF_MIGRATE_MISSING,  /* status: applied, but no file for it */
    SF_MIGRATE_CHANGED,  /* status: applied, but the up file changed since */
} sf_migrate_state;

typedef struct sf_migrate_event {
    sf_migrate_state state;
    int version;
    const char *name;       /* "0001_users" */
    const char *applied_at; /* "2026-11-26T13:40:01.123Z", NULL when not applied */
    const char *checksum;   /* hex SHA-256 of the up file; NULL when missing */
    int64_t duration_ms;    /* APPLIED and REVERTED by this call; else 0 */
} sf_migrate_event;

typedef void (*sf_migrate_report_fn)(const sf_migrate_event *ev, void *ctx);

/*
 * Apply pending migrations in order, up to and including version target
 * (0 = all). fn (may be NULL) is called after each commit. A migration that
 * another runner applied meanwhile is skipped silently. On a failed
 * migration its transaction is rolled back; the ones before it stay applied.
 */
sf_status sf_migrate_up(sf_db *db, const char *dir, int target, sf_migrate_report_fn fn, void *ctx, sf_err *err);

/* Revert the newest `steps` applied migrations (1 .. SF_MIGRATE_MAX), newest
 * first, each with its down file in its own transaction. Fewer applied than
 * steps: reverts them all. */
sf_status sf_migrate_down(sf_db *db, const char *dir, int steps, sf_migrate_report_fn fn, void *ctx, sf_err *err);

/* Report every migration (files and applied rows, by version) as APPLIED,
 * PENDING, MISSING or CHANGED. Read-only: creates nothing. */
sf_status sf_migrate_status(sf_db *db, const char *dir, sf_migrate_report_fn fn, void *ctx, sf_err *err);

/* Validate the directory alone (names, pairs, gaps, sizes); *count gets the
 * number of migrations. No database needed. */
sf_status sf_migrate_check_dir(const char *dir, int *count, sf_err *err);

/* Hex SHA-256 of a file, as stored in schema_migrations.checksum. */
sf_status sf_migrate_checksum_file(const char *path, char hex[65], sf_err *err);

#endif
