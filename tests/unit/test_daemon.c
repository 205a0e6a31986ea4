/*
 * Unit tests of sf_daemon: the command line, configuration errors, the log
 * lines, the signals and the exit codes the three programs share.
 *
 * Each case forks a child that calls sf_daemon_main as a program's main
 * would, with stdout and stderr in files of a temporary directory; the
 * parent reads them and signals the child. Every wait is for a line or an
 * exit, bounded by a deadline far above the time it takes (never a sleep that
 * guesses the machine's speed).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/files.h"
#include "../support/proc.h"

#include "sf/daemon.h"

#define WAIT_MS 10000

typedef struct tcfg {
    sf_common_config common;
    int64_t n;
    char *s;
} tcfg;

static const sf_config_var vars[] = {
    {"SF_T_DAEMON_N", SF_CFG_INT, "1", 0, 9, NULL, 0, offsetof(tcfg, n), "a number"},
    {"SF_T_DAEMON_S", SF_CFG_STRING, NULL, 0, 0, NULL, 0, offsetof(tcfg, s), "a required string"},
    SF_CONFIG_COMMON_VARS(tcfg, common),
};

/* SF_T_DAEMON_N=7 is refused here, after a clean load. */
static sf_status check(void *cfgv, sf_buf *errors)
{
    const tcfg *c = cfgv;
    if (c->n != 7)
        return SF_OK;
    sf_buf_puts(errors, "SF_T_DAEMON_N: must not be 7\n", NULL);
    return SF_ERR_CONFIG;
}

/* In a thread run starts: 1 when the daemon's signals are blocked there. */
static void *mask_probe(void *arg)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    *(int *)arg = sigismember(&cur, SIGTERM) && sigismember(&cur, SIGINT) && sigismember(&cur, SIGHUP);
    return NULL;
}

/* The program under test; what it does is chosen by SF_T_DAEMON_S:
 * "drain" waits for the drain and returns 0; "fail" returns 1 at once;
 * "stuck" waits for the drain, then never returns; "probe" checks the mask
 * of a new thread and that a write to a closed pipe is EPIPE (not a death),
 * then waits for the drain. */
static int run(void *cfgv, sf_daemon *d)
{
    const tcfg *c = cfgv;
    printf("run called\n");
    fflush(stdout);
    if (strcmp(c->s, "fail") == 0)
        return 1;
    if (strcmp(c->s, "probe") == 0) {
        int blocked = 0, p[2];
        pthread_t t;
        if (pthread_create(&t, NULL, mask_probe, &blocked) != 0 || pthread_join(t, NULL) != 0 || pipe(p) != 0)
            return 1;
        close(p[0]);
        ssize_t w = write(p[1], "x", 1);
        int e = errno;
        sf_log_info(sf_daemon_log(d), "probed", SF_LF_BOOL("blocked", blocked),
                    SF_LF_BOOL("epipe", w < 0 && e == EPIPE));
    }
    sf_daemon_wait(d);
    sf_log_info(sf_daemon_log(d), "drained by the program", SF_LF_BOOL("draining", sf_daemon_draining(d)));
    while (strcmp(c->s, "stuck") == 0)
        sf_proc_sleep_ms(1000);
    return 0;
}

static const sf_daemon_spec spec = {.prog = "t-daemon",
                                    .summary = "Tests the daemon start-up.",
                                    .vars = vars,
                                    .n_vars = sizeof vars / sizeof vars[0],
                                    .common_offset = offsetof(tcfg, common),
                                    .check = check,
                                    .run = run};

typedef struct child {
    pid_t pid;
    int status;
    char dir[128], out[256], err[256];
} child;

static child C;

static void setup(void)
{
    memset(&C, 0, sizeof C);
    sf_testenv_tmpdir(C.dir, sizeof C.dir);
    snprintf(C.out, sizeof C.out, "%s/stdout", C.dir);
    snprintf(C.err, sizeof C.err, "%s/stderr", C.dir);
    unsetenv("LOG_DIR");
    unsetenv("LOG_LEVEL");
    setenv("ENVIRONMENT", "unit", 1);
}

static void teardown(void)
{
    if (C.pid > 0 && waitpid(C.pid, NULL, WNOHANG) == 0) {
        kill(C.pid, SIGKILL);
        waitpid(C.pid, NULL, 0);
    }
    sf_testenv_rmtree(C.dir);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 60);

/* Fork the "program" with argv (NULL-terminated, after argv[0]); ignore_term:
 * start it with SIGTERM ignored, as a shell's background job may be. */
static void start(const char *const *args, int ignore_term)
{
    char prog[] = "t-daemon", *argv[8] = {prog};
    int argc = 1;
    for (; args && args[argc - 1] && argc < 7; argc++)
        argv[argc] = sf_proc_unconst_(args[argc - 1]);
    argv[argc] = NULL;
    unlink(C.out); /* never read the previous child's lines */
    unlink(C.err);
    fflush(NULL);
    C.pid = fork();
    cr_assert(C.pid >= 0, "fork: %s", sf_err_errno_text(errno).text);
    if (C.pid > 0)
        return;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int o = open(C.out, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(C.err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
        _exit(126);
    if (ignore_term)
        signal(SIGTERM, SIG_IGN);
    tcfg cfg = {0};
    int rc = sf_daemon_main(&spec, argc, argv, &cfg);
    fflush(NULL);
    _exit(rc);
}

static int exited(void *ctx)
{
    (void)ctx;
    return waitpid(C.pid, &C.status, WNOHANG) == C.pid;
}

/* The child's exit code (-1 when a signal ended it); fails after WAIT_MS. */
static int wait_exit(void)
{
    cr_assert(sf_proc_wait_until(exited, NULL, WAIT_MS, 10), "the child did not exit");
    C.pid = 0;
    return WIFEXITED(C.status) ? WEXITSTATUS(C.status) : -1;
}

/* A file's text (at most 64 KiB); free() it. */
static char *slurp(const char *path)
{
    char *buf = calloc(1, 1 << 16);
    cr_assert_not_null(buf);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, (1 << 16) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    return buf;
}

static int has_(void *needle)
{
    char *s = slurp(C.out);
    int yes = strstr(s, needle) != NULL;
    free(s);
    return yes;
}

/* Wait until the child's stdout holds needle. */
static void wait_for(const char *needle)
{
    char *n = sf_proc_unconst_(needle);
    if (!sf_proc_wait_until(has_, n, WAIT_MS, 10)) {
        char *s = slurp(C.out);
        cr_assert_fail("no %s in the child's stdout: %s", needle, s);
    }
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(daemon, version_prints_the_build_version_and_exits_0_without_running)
{
    const char *args[] = {"--version", NULL};
    start(args, 0);
    cr_assert_eq(wait_exit(), 0);
    char *out = slurp(C.out), want[64];
    snprintf(want, sizeof want, "t-daemon %s\n", sf_daemon_version());
    cr_assert_str_eq(out, want);
    cr_assert_gt(strlen(sf_daemon_version()), 0);
    free(out);
}

Test(daemon, help_lists_the_configuration_and_exits_0_without_running)
{
    const char *args[] = {"--help", NULL};
    start(args, 0);
    cr_assert_eq(wait_exit(), 0);
    char *out = slurp(C.out), *err = slurp(C.err);
    cr_assert(strncmp(out, "usage: t-daemon [--help | --version]\n\nTests the daemon start-up.\n", 64) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "SF_T_DAEMON_N"), "%s", out);
    cr_assert_not_null(strstr(out, "a required string"), "%s", out);
    cr_assert_null(strstr(out, "run called"));
    cr_assert_str_eq(err, "");
    free(out);
    free(err);
}

Test(daemon, an_unknown_argument_or_a_second_one_exits_2_with_one_line)
{
    const char *args[] = {"--frobnicate", NULL};
    start(args, 0);
    cr_assert_eq(wait_exit(), 2);
    char *err = slurp(C.err);
    cr_assert_str_eq(err, "t-daemon: unknown argument \"--frobnicate\" (configuration is by environment;"
                          " see t-daemon --help)\n");
    free(err);
    const char *two[] = {"--help", "extra", NULL};
    start(two, 0);
    cr_assert_eq(wait_exit(), 2);
    err = slurp(C.err);
    cr_assert_not_null(strstr(err, "unknown argument \"extra\""), "%s", err);
    free(err);
}

Test(daemon, a_bad_configuration_exits_2_with_one_line_per_bad_variable)
{
    unsetenv("SF_T_DAEMON_S");
    setenv("SF_T_DAEMON_N", "x", 1);
    setenv("LOG_LEVEL", "loud", 1);
    start(NULL, 0);
    cr_assert_eq(wait_exit(), 2);
    char *out = slurp(C.out), *err = slurp(C.err);
    cr_assert_eq(count_lines(err), 3, "%s", err);
    cr_assert_not_null(strstr(err, "t-daemon: SF_T_DAEMON_N: must be an integer from 0 to 9, got \"x\"\n"), "%s", err);
    cr_assert_not_null(strstr(err, "t-daemon: SF_T_DAEMON_S: is required\n"), "%s", err);
    cr_assert_not_null(strstr(err, "t-daemon: LOG_LEVEL: must be one of"), "%s", err);
    cr_assert_str_eq(out, "", "nothing is logged before the configuration is good");
    free(out);
    free(err);
}

Test(daemon, the_programs_check_runs_after_a_clean_load_and_exits_2)
{
    setenv("SF_T_DAEMON_S", "drain", 1);
    setenv("SF_T_DAEMON_N", "7", 1);
    start(NULL, 0);
    cr_assert_eq(wait_exit(), 2);
    char *err = slurp(C.err);
    cr_assert_str_eq(err, "t-daemon: SF_T_DAEMON_N: must not be 7\n");
    free(err);
}

Test(daemon, an_unusable_log_dir_exits_2)
{
    setenv("SF_T_DAEMON_S", "drain", 1);
    setenv("LOG_DIR", "/nonexistent/sf-test", 1);
    start(NULL, 0);
    cr_assert_eq(wait_exit(), 2);
    char *err = slurp(C.err);
    cr_assert(strncmp(err, "t-daemon: could not open log file", 33) == 0, "%s", err);
    free(err);
}

Test(daemon, sigterm_drains_and_the_program_exits_0_with_the_shared_log_lines)
{
    setenv("SF_T_DAEMON_S", "drain", 1);
    start(NULL, 0);
    wait_for("\"message\":\"starting\"");
    kill(C.pid, SIGTERM);
    cr_assert_eq(wait_exit(), 0);
    char *out = slurp(C.out), version[64];
    snprintf(version, sizeof version, "\"version\":\"%s\"", sf_daemon_version());
    const char *in_order[] = {"\"message\":\"starting\"",
                              version,
                              "\"message\":\"draining\",\"signal\":\"SIGTERM\"",
                              "\"message\":\"drained by the program\",\"draining\":true",
                              "\"level\":\"info\"",
                              "\"message\":\"stopped\",\"exit_code\":0"};
    const char *at = out;
    for (size_t i = 0; i < sizeof in_order / sizeof in_order[0]; i++) {
        const char *p = strstr(at, in_order[i]);
        cr_assert_not_null(p, "no %s (in order) in: %s", in_order[i], out);
        at = p;
    }
    cr_assert_not_null(strstr(out, "\"service\":\"t-daemon\",\"environment\":\"unit\""), "%s", out);
    free(out);
}

Test(daemon, sigint_drains_too_even_when_sigterm_was_inherited_ignored)
{
    setenv("SF_T_DAEMON_S", "drain", 1);
    start(NULL, 1);
    wait_for("\"message\":\"starting\"");
    kill(C.pid, SIGTERM);
    cr_assert_eq(wait_exit(), 0);
    setenv("SF_T_DAEMON_S", "drain", 1);
    start(NULL, 0);
    wait_for("\"message\":\"starting\"");
    kill(C.pid, SIGINT);
    cr_assert_eq(wait_exit(), 0);
    char *out = slurp(C.out);
    cr_assert_not_null(strstr(out, "\"message\":\"draining\",\"signal\":\"SIGINT\""), "%s", out);
    free(out);
}

Test(daemon, a_second_signal_exits_1_at_once_while_the_program_drains)
{
    setenv("SF_T_DAEMON_S", "stuck", 1);
    start(NULL, 0);
    wait_for("\"message\":\"starting\"");
    kill(C.pid, SIGINT);
    wait_for("drained by the program"); /* the drain began and goes on for ever */
    kill(C.pid, SIGTERM);
    cr_assert_eq(wait_exit(), 1);
    char *out = slurp(C.out);
    cr_assert_not_null(strstr(out, "\"message\":\"second signal: exiting at once\",\"signal\":\"SIGTERM\""), "%s", out);
    cr_assert_null(strstr(out, "\"stopped\""), "%s", out);
    free(out);
}

Test(daemon, sighup_is_logged_and_ignored)
{
    setenv("SF_T_DAEMON_S", "drain", 1);
    start(NULL, 0);
    wait_for("\"message\":\"starting\"");
    kill(C.pid, SIGHUP);
    wait_for("\"message\":\"signal ignored\",\"signal\":\"SIGHUP\"");
    cr_assert_eq(waitpid(C.pid, &C.status, WNOHANG), 0, "SIGHUP ended the program");
    char *out = slurp(C.out);
    cr_assert_null(strstr(out, "draining"), "%s", out);
    free(out);
    kill(C.pid, SIGTERM);
    cr_assert_eq(wait_exit(), 0);
}

Test(daemon, threads_inherit_the_blocked_signals_and_sigpipe_is_ignored)
{
    setenv("SF_T_DAEMON_S", "probe", 1);
    start(NULL, 0);
    wait_for("\"message\":\"probed\"");
    char *out = slurp(C.out);
    cr_assert_not_null(strstr(out, "\"blocked\":true,\"epipe\":true"), "%s", out);
    free(out);
    kill(C.pid, SIGTERM);
    cr_assert_eq(wait_exit(), 0);
}

Test(daemon, a_failed_run_exits_1_and_logs_stopped_as_an_error)
{
    setenv("SF_T_DAEMON_S", "fail", 1);
    start(NULL, 0);
    cr_assert_eq(wait_exit(), 1);
    char *out = slurp(C.out);
    cr_assert_not_null(strstr(out, "\"level\":\"error\",\"service\":\"t-daemon\",\"environment\":\"unit\","
                                   "\"message\":\"stopped\",\"exit_code\":1"),
                       "%s", out);
    free(out);
}
