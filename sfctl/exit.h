/*
 * exit: sfctl's exit statuses, defined once for every command (and shown by
 * `sfctl --help` from CTL_EXIT_HELP), so scripts can tell "your job failed"
 * from "try again later" from "fix the command".
 *
 *   0 ok
 *   1 a job failed or members of a sweep failed or died (submit --wait,
 *     watch, sweep --watch), a watch timed out, or a local run failed
 *     (out of memory, output error)
 *   2 bad usage or validation: unknown option, missing or bad value, an
 *     input file that does not parse, the API refusing the request (400,
 *     409, 413, ...), bad configuration (SF_API_URL, DATABASE_URL unset)
 *   3 the server is unreachable or failing: connection refused, timeout,
 *     an HTTP 5xx answer, PostgreSQL down
 *   4 authentication: SF_API_KEY invalid or revoked (HTTP 401 or 403)
 *   5 not found: no such job, batch, data set, user or key (HTTP 404)
 *
 * Thread safety: constants only.
 */
#ifndef SFCTL_EXIT_H
#define SFCTL_EXIT_H

typedef enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,
    CTL_EXIT_USAGE = 2,
    CTL_EXIT_UNREACHABLE = 3,
    CTL_EXIT_AUTH = 4,
    CTL_EXIT_NOTFOUND = 5,
} ctl_exit;

#define CTL_EXIT_HELP                                                                                                  \
    "exit status:\n"                                                                                                   \
    "  0  ok\n"                                                                                                        \
    "  1  a job failed, or members of a sweep failed or died (submit --wait, watch),\n"                                \
    "     a watch timed out, or a local run failed\n"                                                                  \
    "  2  bad usage or validation (options, input files, a request the API refuses)\n"                                 \
    "  3  the server is unreachable or failing (connection, timeout, HTTP 5xx)\n"                                      \
    "  4  authentication failed (SF_API_KEY invalid or revoked)\n"                                                     \
    "  5  not found (no such job, batch, data set, user or key)\n"

#endif
