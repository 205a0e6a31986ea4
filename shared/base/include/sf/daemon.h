/*
 * daemon: how a long-running program (sf-api, sf-scheduler, sf-worker)
 * starts, takes signals and stops; one start-up for all of them.
 *
 * main hands its spec and a zeroed configuration struct to sf_daemon_main,
 * which in this order:
 *   1. blocks SIGTERM, SIGINT and SIGHUP in the calling thread before any
 *      thread starts (every thread inherits the mask, so only the signal
 *      thread ever takes them; their dispositions are reset to the default so
 *      one inherited as ignored still reaches it), and ignores SIGPIPE: a
 *      peer that closed a socket (Redis CLIENT KILL, a PostgreSQL restart, an
 *      HTTP client gone) turns a write into EPIPE, never a killed process;
 *   2. reads the command line: --help (or -h) prints the help generated from
 *      the configuration table on stdout and returns 0; --version prints
 *      "<prog> <version>" on stdout and returns 0; anything else prints one
 *      line on stderr and returns 2;
 *   3. loads the configuration through the table (sf_config_load), then the
 *      spec's check; every bad variable gives one "<prog>: NAME: reason" line
 *      on stderr, and it returns 2;
 *   4. opens the log (stdout, and LOG_DIR when set); failing that, one line
 *      on stderr and it returns 2 (LOG_DIR is configuration);
 *   5. starts the signal thread, logs "starting" (version, pid) and calls
 *      the spec's run, which starts the program's threads and waits for the
 *      drain with sf_daemon_wait.
 * The signal thread takes the blocked signals with sigwait. The first SIGTERM
 * or SIGINT logs "draining" (signal) and releases sf_daemon_wait; the program
 * then drains in its own way. A second SIGTERM or SIGINT logs "second signal:
 * exiting at once" and ends the process with status 1 at once. SIGHUP is
 * logged ("signal ignored") and changes nothing.
 * When run returns, the signal thread is stopped, "stopped" is logged
 * (exit_code; level error when not 0), the log is closed, the configuration
 * freed, and run's value returned.
 *
 * Return conventions (the value main returns): 0 a clean exit, also after a
 * drain; 2 a bad command line or configuration; 1 a failure at run time (run
 * returns 0 or 1).
 *
 * Thread safety: sf_daemon_main once, from main, before any thread exists;
 * sf_daemon_log, sf_daemon_wait and sf_daemon_draining from any thread while
 * run runs. Ownership: the sf_daemon lives for the call of run; the spec and
 * the configuration struct are the caller's (strings the table stored are
 * freed before sf_daemon_main returns).
 */
#ifndef SF_DAEMON_H
#define SF_DAEMON_H

#include <stddef.h>

#include "sf/buf.h"
#include "sf/config.h"
#include "sf/err.h"
#include "sf/log.h"

typedef struct sf_daemon sf_daemon;

typedef struct sf_daemon_spec {
    const char *prog;          /* "sf-worker": usage, stderr lines, log service */
    const char *summary;       /* --help text under the usage line */
    const sf_config_var *vars; /* the program's configuration table */
    size_t n_vars;
    size_t common_offset; /* offsetof(program config, its sf_common_config) */
    /* NULL, or after a clean load: checks across variables and derived
     * defaults. Appends one "NAME: reason\n" line per problem to errors and
     * returns SF_ERR_CONFIG, else returns SF_OK. */
    sf_status (*check)(void *cfg, sf_buf *errors);
    /* The program: start its threads, sf_daemon_wait, drain, stop them;
     * log why on failure. Returns 0 (clean) or 1 (failed). */
    int (*run)(void *cfg, sf_daemon *d);
} sf_daemon_spec;

/* Everything above, from main: `return sf_daemon_main(&spec, argc, argv, &cfg);` */
int sf_daemon_main(const sf_daemon_spec *spec, int argc, char *const *argv, void *cfg);

/* The program's logger (service = prog), open while run runs. */
sf_log *sf_daemon_log(const sf_daemon *d);

/* Block until the first SIGTERM or SIGINT (at once when it came already). */
void sf_daemon_wait(sf_daemon *d);

/* 1 once the first SIGTERM or SIGINT came, else 0; never blocks. */
int sf_daemon_draining(sf_daemon *d);

/* The version the build defines (CMake's project version), e.g. "0.1.0". */
const char *sf_daemon_version(void);

#endif
