/*
 * cli: helpers shared by the sfctl commands that talk to servers (admin.c,
 * data.c, remote.c): option tables over getopt_long, configuration through
 * sf_config tables (never getenv), errors as one "sfctl: <message>" line.
 *
 * Exit status (ctl_exit, exit.h): an API answer 401/403 is 4, 404 is 5,
 * another 4xx is 2 (its message is shown), a 5xx or a network failure is 3;
 * cli_status_exit maps an sf_status the same way.
 *
 * Thread safety: single-threaded CLI code.
 */
#ifndef SFCTL_CLI_H
#define SFCTL_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "exit.h"
#include "sf/db.h"
#include "sf/err.h"
#include "sf/http.h"

/* One option: --name VALUE (has_arg 1, stored in *value) or --name (flag).
 * The same table parses and is the help: arg names the value ("FILE"; NULL
 * for a flag), help says what it does (more lines after "\n"). */
typedef struct cli_opt {
    const char *name;
    int has_arg;
    const char **value;
    int *flag;
    const char *arg;
    const char *help;
} cli_opt;

/* Print "options:" and one entry per option of the table, then --help. */
void cli_print_opts(FILE *f, const cli_opt *opts, size_t n_opts);

/*
 * Parse argv[first..] with the table; positional arguments are collected in
 * pos (at most max_pos; *n_pos gets the count). --help prints usage, then
 * the table (cli_print_opts), on stdout.
 * Returns -1 to go on, else the exit status (0 after --help, 2 on a bad option).
 */
int cli_parse(int argc, char **argv, int first, const cli_opt *opts, size_t n_opts, const char *usage, const char **pos,
              size_t max_pos, size_t *n_pos);

/* Print "sfctl: <fmt...>" on stderr and return code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit status for a failed sf_status: 4 for SF_ERR_AUTH, 5 for
 * SF_ERR_NOTFOUND, 3 for an unreachable server (SF_ERR_UNAVAILABLE,
 * SF_ERR_TIMEOUT, SF_ERR_HTTP), 2 for bad input or configuration, 1 for the
 * rest. */
int cli_status_exit(sf_status st);

/* Exit status for an HTTP status that is not 2xx: 4 for 401 and 403, 5 for
 * 404, 2 for another 4xx, 3 for 5xx, 1 for anything else. */
int cli_http_exit(long status);

/* Require an option: prints "sfctl: <cmd>: --<name> is required" and returns 0 when missing. */
int cli_need(const char *cmd, const char *value, const char *name);

/* Open the database named by DATABASE_URL; returns -1 with *db set, else an exit status. */
int cli_db_open(sf_db **db);

/* Tell every sf-api that a key was revoked or a user's tier changed: PUBLISH
 * what on sf:{QUEUE}:auth (REDIS_URL, QUEUE), which clears their caches of
 * keys (api/keycache.h). When Redis cannot be reached, or REDIS_URL is not
 * set, a note on stderr says the change reaches sf-api within
 * API_KEY_CACHE_SECONDS instead; the change itself is made either way. */
void cli_publish_auth(const char *what);

/* The API client: SF_API_URL and SF_API_KEY. */
typedef struct cli_api {
    sf_http *http;
    char *url; /* no trailing slash */
    char *key;
    long timeout_ms;
} cli_api;

/* Returns -1 when ready, else an exit status (2 for bad configuration). */
int cli_api_open(cli_api *api);
void cli_api_close(cli_api *api);

/*
 * One API call; body may be NULL; idempotency_key may be NULL. On a 2xx
 * answer returns -1 with *out the parsed JSON (the caller decrefs; may be
 * NULL for an empty body) and *status the HTTP status. Otherwise prints the
 * API's error message and returns cli_http_exit(status), or
 * cli_status_exit for a network failure (3 when the server is unreachable;
 * *out NULL); a 404 is printed unless quiet_404.
 */
int cli_api_call(cli_api *api, const char *method, const char *path, const char *body, const char *idempotency_key,
                 int quiet_404, long *status, json_t **out);

/* Read a JSON file (an object); prints the error and returns NULL on failure. */
json_t *cli_read_json_file(const char *path, const char *what);

#endif
