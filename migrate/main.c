/*
 * sf-migrate: apply, revert and list the schema migrations in migrations/.
 *
 *   sf-migrate up [VERSION]   apply pending migrations (up to VERSION)
 *   sf-migrate down [N]       revert the newest N applied migrations (1)
 *   sf-migrate status         list every migration as applied or pending
 *
 * Plain lines on stdout; errors "sf-migrate: <message>" on stderr and exit 1;
 * a bad command line or environment exits 2. The work is in sf/migrate.h.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/config.h"
#include "sf/db.h"
#include "sf/log.h"
#include "sf/migrate.h"

#ifndef SF_MIGRATIONS_DIR
#define SF_MIGRATIONS_DIR "migrations"
#endif

#define PROG "sf-migrate"

typedef struct migrate_config {
    sf_common_config common;
    char *database_url;
    char *migrations_dir;
    int64_t connect_attempts;
    int64_t connect_timeout_s;
} migrate_config;

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(migrate_config, database_url),
    {"MIGRATIONS_DIR", SF_CFG_STRING, SF_MIGRATIONS_DIR, 0, 0, NULL, 0, offsetof(migrate_config, migrations_dir),
     "directory of NNNN_name.up.sql / .down.sql files"},
    {"DB_CONNECT_ATTEMPTS", SF_CFG_INT, "5", 1, 100, NULL, 0, offsetof(migrate_config, connect_attempts),
     "connection attempts before giving up (backoff doubles from 100 ms)"},
    {"DB_CONNECT_TIMEOUT", SF_CFG_INT, "5", 1, 300, NULL, 0, offsetof(migrate_config, connect_timeout_s),
     "seconds per connection attempt"},
    SF_CONFIG_COMMON_VARS(migrate_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

static const char summary[] = "Apply, revert and list the database schema migrations.\n\n"
                              "commands:\n"
                              "  up [VERSION]   apply pending migrations in order (up to VERSION)\n"
                              "  down [N]       revert the newest N applied migrations (default 1)\n"
                              "  status         list every migration as applied (with time) or pending";

typedef enum cmd_kind { CMD_UP, CMD_DOWN, CMD_STATUS } cmd_kind;

typedef struct command {
    cmd_kind kind;
    int arg; /* up: target version (0 = all); down: steps */
} command;

typedef struct run_state {
    sf_log *log;
    int count;
    int missing, changed;
} run_state;

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (try " PROG " --help)\n");
    return 2;
}

static int print_help(void)
{
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_status st = sf_config_help(PROG " up|down|status [--help]", summary, config_vars, N_VARS, &b, NULL);
    if (st == SF_OK)
        fputs(sf_buf_str(&b), stdout);
    sf_buf_destroy(&b);
    return st == SF_OK ? 0 : 1;
}

/* Returns -1 when parsed, else the exit code (0 for --help). */
static int parse_args(int argc, char **argv, command *cmd)
{
    static const struct {
        const char *name;
        cmd_kind kind;
        int def, min, max;
    } table[] = {
        {"up", CMD_UP, 0, 1, SF_MIGRATE_MAX},
        {"down", CMD_DOWN, 1, 1, SF_MIGRATE_MAX},
        {"status", CMD_STATUS, 0, 0, -1},
    };
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return print_help();
    if (argc < 2)
        return usage_error("%s", "missing command: up, down or status");
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (strcmp(argv[1], table[k].name) != 0)
            continue;
        cmd->kind = table[k].kind;
        cmd->arg = table[k].def;
        if (argc > 3 || (argc == 3 && table[k].max < 0))
            return usage_error("too many arguments for %s", table[k].name);
        int64_t v = 0;
        sf_err err = {0};
        if (argc == 3 && sf_config_parse_int(argv[2], table[k].min, table[k].max, &v, &err) != SF_OK)
            return usage_error(table[k].kind == CMD_UP ? "up VERSION: %s" : "down N: %s", err.msg);
        if (argc == 3)
            cmd->arg = (int)v;
        return -1;
    }
    return usage_error("unknown command \"%s\"", argv[1]);
}

static void on_event(const sf_migrate_event *ev, void *ctx)
{
    run_state *rs = ctx;
    rs->count++;
    switch (ev->state) {
    case SF_MIGRATE_APPLIED:
    case SF_MIGRATE_REVERTED:
        if (ev->applied_at) { /* a status line */
            printf("%-40s applied  %s\n", ev->name, ev->applied_at);
            break;
        }
        printf("%s %s (%lld ms)\n", ev->state == SF_MIGRATE_APPLIED ? "applied" : "reverted", ev->name,
               (long long)ev->duration_ms);
        sf_log_info(rs->log, ev->state == SF_MIGRATE_APPLIED ? "migration applied" : "migration reverted",
                    SF_LF_STR("migration", ev->name), SF_LF_INT("duration_ms", ev->duration_ms));
        break;
    case SF_MIGRATE_PENDING: printf("%-40s pending\n", ev->name); break;
    case SF_MIGRATE_MISSING:
        rs->missing++;
        printf("%-40s applied  %s  MISSING: no file for this version\n", ev->name, ev->applied_at);
        break;
    case SF_MIGRATE_CHANGED:
        rs->changed++;
        printf("%-40s applied  %s  CHANGED: the up file differs from what was applied\n", ev->name, ev->applied_at);
        break;
    }
    fflush(stdout);
}

static sf_status run(const command *cmd, const migrate_config *cfg, run_state *rs, sf_err *err)
{
    sf_db_opts opts = {.connect_timeout_s = (int)cfg->connect_timeout_s,
                       .connect_attempts = (int)cfg->connect_attempts,
                       .application_name = PROG};
    sf_db *db = NULL;
    sf_status st = sf_db_open(cfg->database_url, &opts, &db, err);
    if (st != SF_OK)
        return st;
    const char *dir = cfg->migrations_dir;
    if (cmd->kind == CMD_UP)
        st = sf_migrate_up(db, dir, cmd->arg, on_event, rs, err);
    else if (cmd->kind == CMD_DOWN)
        st = sf_migrate_down(db, dir, cmd->arg, on_event, rs, err);
    else
        st = sf_migrate_status(db, dir, on_event, rs, err);
    sf_db_close(db);
    return st;
}

static int finish(const command *cmd, const run_state *rs, sf_status st, const sf_err *err)
{
    if (st != SF_OK) {
        fprintf(stderr, PROG ": %s\n", err->msg);
        sf_log_error(rs->log, "migration failed", SF_LF_STR("error", err->msg));
        return 1;
    }
    if (cmd->kind == CMD_UP && rs->count == 0)
        printf("nothing to apply: the database is up to date\n");
    if (cmd->kind == CMD_DOWN && rs->count == 0)
        printf("nothing to revert: no migration is applied\n");
    if (cmd->kind == CMD_STATUS && rs->count == 0)
        printf("no migrations\n");
    if (rs->missing || rs->changed) {
        fprintf(stderr,
                PROG ": the database does not match the migration files: %d applied without a file, "
                     "%d changed since applied\n",
                rs->missing, rs->changed);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    command cmd = {CMD_STATUS, 0};
    int rc = parse_args(argc, argv, &cmd);
    if (rc >= 0)
        return rc;
    migrate_config cfg = {0};
    sf_buf errors;
    sf_buf_init(&errors, 1 << 16);
    if (sf_config_load(config_vars, N_VARS, &cfg, &errors) != SF_OK) {
        for (const char *p = sf_buf_str(&errors); *p;) {
            size_t n = strcspn(p, "\n");
            fprintf(stderr, PROG ": %.*s\n", (int)n, p);
            p += n + (p[n] == '\n');
        }
        sf_buf_destroy(&errors);
        sf_config_free(config_vars, N_VARS, &cfg);
        return 2;
    }
    sf_buf_destroy(&errors);
    run_state rs = {0};
    sf_err err = {0};
    if (cfg.common.log_dir[0] && sf_log_open(PROG, cfg.common.environment, (sf_log_level)cfg.common.log_level,
                                             cfg.common.log_dir, -1, &rs.log, &err) != SF_OK)
        fprintf(stderr, PROG ": %s (no log files)\n", err.msg);
    sf_status st = run(&cmd, &cfg, &rs, &err);
    rc = finish(&cmd, &rs, st, &err);
    sf_log_close(rs.log);
    sf_config_free(config_vars, N_VARS, &cfg);
    return rc;
}
