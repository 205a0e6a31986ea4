/*
 * config: configuration from environment variables, described by one table
 * per program. The table drives parsing, validation and the --help text.
 *
 * Every variable NAME may instead be given as NAME_FILE, the path of a file
 * holding the value (Kubernetes secrets); giving both is an error. Trailing
 * spaces, tabs, \r and \n are dropped; a line break or a NUL left inside is
 * an error, and the buffer the file was read into is wiped before it is
 * freed. A secret variable's file (after symlinks) is refused when its group
 * or others may write it, and when others may read it unless
 * SF_ALLOW_WORLD_READABLE_SECRETS is true; the message names NAME_FILE, the
 * path and the mode. Parsing is strict: integers with a full-string
 * strtoll and bounds, booleans true/false/1/0/yes/no, enums from a list.
 * Every bad variable gives one line "NAME: reason" and loading goes on so all
 * of them are reported at once; the program prints them and exits 2.
 *
 * This is the only module that calls getenv.
 * Thread safety: call sf_config_load once in main before threads start; the
 * filled struct is then read-only. Ownership: strings stored into the
 * program's struct are heap copies freed by sf_config_free.
 */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"

typedef enum sf_config_type {
    SF_CFG_STRING, /* char * */
    SF_CFG_INT,    /* int64_t, within [min, max] */
    SF_CFG_DOUBLE, /* double, within [min, max] */
    SF_CFG_BOOL,   /* int, 0 or 1 */
    SF_CFG_ENUM,   /* int, index into choices */
} sf_config_type;

typedef struct sf_config_var {
    const char *name; /* "WORKER_THREADS" */
    sf_config_type type;
    const char *def;            /* default as text; NULL = required */
    double min, max;            /* SF_CFG_INT and SF_CFG_DOUBLE */
    const char *const *choices; /* SF_CFG_ENUM, NULL-terminated */
    int secret;                 /* value never shown (help shows "set"/"unset") */
    size_t offset;              /* where the value goes in the program's struct */
    const char *help;           /* one line */
} sf_config_var;

/* Fields every program has. Embed as `sf_common_config common;`. */
typedef struct sf_common_config {
    char *environment; /* ENVIRONMENT: free text, e.g. "dev", "prod" */
    int log_level;     /* LOG_LEVEL: index into sf_config_log_levels */
    char *log_dir;     /* LOG_DIR: "" = stdout only */
} sf_common_config;

extern const char *const sf_config_log_levels[]; /* "debug","info","warn","error" */

#define SF_CONFIG_COMMON_VARS(type, member)                                                                            \
    {"ENVIRONMENT",                                                                                                    \
     SF_CFG_STRING,                                                                                                    \
     "dev",                                                                                                            \
     0,                                                                                                                \
     0,                                                                                                                \
     NULL,                                                                                                             \
     0,                                                                                                                \
     offsetof(type, member.environment),                                                                               \
     "deployment name written in every log line"},                                                                     \
        {"LOG_LEVEL",                                                                                                  \
         SF_CFG_ENUM,                                                                                                  \
         "info",                                                                                                       \
         0,                                                                                                            \
         0,                                                                                                            \
         sf_config_log_levels,                                                                                         \
         0,                                                                                                            \
         offsetof(type, member.log_level),                                                                             \
         "least severe level logged"},                                                                                 \
    {                                                                                                                  \
        "LOG_DIR", SF_CFG_STRING, "", 0, 0, NULL, 0, offsetof(type, member.log_dir),                                   \
            "if set, also write combined.log and error.log here"                                                       \
    }

/* The rows every connected program shares, so their names, types and help
 * read the same everywhere. */
#define SF_CONFIG_DATABASE_URL_VAR(type, field)                                                                        \
    {                                                                                                                  \
        "DATABASE_URL", SF_CFG_STRING, NULL, 0, 0, NULL, 1, offsetof(type, field),                                     \
            "PostgreSQL URL, postgresql://user:password@host:port/db"                                                  \
    }
#define SF_CONFIG_REDIS_URL_VAR(type, field)                                                                           \
    {                                                                                                                  \
        "REDIS_URL", SF_CFG_STRING, NULL, 0, 0, NULL, 1, offsetof(type, field),                                        \
            "Redis URL, redis://[:password@]host[:port][/db]"                                                          \
    }
#define SF_CONFIG_QUEUE_VAR(type, field)                                                                               \
    {                                                                                                                  \
        "QUEUE", SF_CFG_STRING, "backtest", 0, 0, NULL, 0, offsetof(type, field),                                      \
            "dispatch queue name: Redis keys are sf:{QUEUE}:..."                                                       \
    }

/* The operations listener of a program without an HTTP API (sf/opsd.h):
 * METRICS_PORT (int64_t), METRICS_ADDR and METRICS_TOKEN (char *). */
#define SF_CONFIG_METRICS_PORT_VAR(type, field)                                                                        \
    {                                                                                                                  \
        "METRICS_PORT", SF_CFG_INT, "0", 0, 65535, NULL, 0, offsetof(type, field),                                     \
            "port of the listener serving /metrics, /health and /ready (Kubernetes probes); 0 = none"                  \
    }
#define SF_CONFIG_METRICS_ADDR_VAR(type, field)                                                                        \
    {                                                                                                                  \
        "METRICS_ADDR", SF_CFG_STRING, "0.0.0.0", 0, 0, NULL, 0, offsetof(type, field),                                \
            "IP address the METRICS_PORT listener binds"                                                               \
    }
#define SF_CONFIG_METRICS_TOKEN_VAR(type, field)                                                                       \
    {                                                                                                                  \
        "METRICS_TOKEN", SF_CFG_STRING, "", 0, 0, NULL, 1, offsetof(type, field),                                      \
            "if set, GET /metrics wants Authorization: Bearer <this> (401 without); empty = open"                      \
    }

/*
 * Fill out (a program struct laid out as the table's offsets say) from the
 * environment. On failure returns SF_ERR_CONFIG and appends one line per bad
 * variable to errors ("WORKER_THREADS: must be an integer from 1 to 256, got \"x\"").
 * Strings already stored stay owned by out: call sf_config_free either way.
 */
sf_status sf_config_load(const sf_config_var *vars, size_t n, void *out, sf_buf *errors);

/* A variable's value by name, or NULL when unset. */
typedef const char *(*sf_config_lookup_fn)(const char *name, void *ctx);

/*
 * sf_config_load with the variables read through lookup(name, ctx) instead
 * of the environment (sf_config_load is this with getenv): NAME, NAME_FILE
 * and SF_ALLOW_WORLD_READABLE_SECRETS are all asked of lookup; a NAME_FILE
 * it gives is still read from the file system. For tests and the fuzzer.
 */
sf_status sf_config_load_from(const sf_config_var *vars, size_t n, sf_config_lookup_fn lookup, void *ctx, void *out,
                              sf_buf *errors);

/* Free the strings sf_config_load stored. */
void sf_config_free(const sf_config_var *vars, size_t n, void *out);

/* The --help text: "usage: <usage>" (the program and its arguments, e.g.
 * "sf-worker [--help | --version]"), summary, then each variable with its
 * type, default and help; secrets never show their value. The daemons'
 * command line is read by sf/daemon.h. */
sf_status sf_config_help(const char *usage, const char *summary, const sf_config_var *vars, size_t n, sf_buf *out,
                         sf_err *err);

/* Each line of errors (from sf_config_load) as "prog: line\n" into out. */
sf_status sf_config_errors_format(const char *prog, const sf_buf *errors, sf_buf *out, sf_err *err);

/* Parse helpers also used for command-line options; strict, full-string. */
sf_status sf_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, sf_err *err);
sf_status sf_config_parse_double(const char *s, double min, double max, double *out, sf_err *err);

#endif
