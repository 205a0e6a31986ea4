/*
 * A stand-in for <criterion/criterion.h> under ThreadSanitizer (SF_TSAN).
 *
 * Criterion cannot run in a TSan process: its shared arena is mapped at
 * random addresses in a range TSan's shadow holds, and every suite aborts at
 * start ("could not initialize inheritable arena"). The threaded suites
 * (CMakeLists.txt: SF_TSAN_SUITES) are built a second time as tsan_<suite>
 * with tests/tsan first on the include path, so they find this header and
 * run unchanged, instrumented, on the instrumented libraries.
 *
 * What it keeps of Criterion: Test and TestSuite with .init, .fini,
 * .timeout and .disabled; the cr_assert family these suites use (a failed
 * assertion prints its file, line and message and ends the test, from any
 * thread); cr_log_*; every test in a forked child of its own, killed at its
 * timeout; the closing "[====] Synthesis: Tested: N | Passing: P |
 * Failing: F | Crashing: C" line and exit status 1 on a failure. A test
 * whose child exits with TSan's status (66) or any other non-zero status, or
 * dies of a signal, fails. Arguments are ignored (ctest passes --jobs 1).
 * Tests run one at a time in the order they are defined.
 */
#ifndef SF_TSAN_CRITERION_SHIM_H
#define SF_TSAN_CRITERION_SHIM_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct criterion_test_extra_data {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    int disabled;
    const char *description;
};

typedef struct shim_test {
    const char *suite, *name;
    void (*fn)(void);
    struct criterion_test_extra_data data;
    struct shim_test *next;
} shim_test;

typedef struct shim_suite {
    const char *name;
    struct criterion_test_extra_data data;
    struct shim_suite *next;
} shim_suite;

static shim_test *shim_tests, **shim_tests_tail = &shim_tests;
static shim_suite *shim_suites;

static inline void shim_add_test(shim_test *t)
{
    *shim_tests_tail = t;
    shim_tests_tail = &t->next;
}

static inline void shim_add_suite(shim_suite *s)
{
    s->next = shim_suites;
    shim_suites = s;
}

#define Test(suite, name, ...)                                                                                         \
    static void suite##__##name(void);                                                                                 \
    __attribute__((constructor)) static void suite##__##name##__reg(void)                                              \
    {                                                                                                                  \
        static shim_test t = {#suite, #name, suite##__##name, {__VA_ARGS__}, NULL};                                    \
        shim_add_test(&t);                                                                                             \
    }                                                                                                                  \
    static void suite##__##name(void)

#define TestSuite(suite, ...)                                                                                          \
    __attribute__((constructor)) static void suite##__suite__reg(void)                                                 \
    {                                                                                                                  \
        static shim_suite s = {#suite, {__VA_ARGS__}, NULL};                                                           \
        shim_add_suite(&s);                                                                                            \
    }                                                                                                                  \
    _Static_assert(1, "")

__attribute__((format(printf, 4, 5), noreturn)) static inline void shim_fail(const char *file, int line,
                                                                             const char *expr, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[----] %s:%d: Assertion failed: %s:%s\n", file, line, expr, msg);
    fflush(stderr);
    _exit(1);
}

__attribute__((format(printf, 2, 3))) static inline void shim_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The message is optional, as in Criterion: " " before it keeps the format
 * non-empty (-Wformat-zero-length) when there is none. */
#define cr_assert(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            shim_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                                                     \
    } while (0)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "fail", " " __VA_ARGS__)
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_log_info(...) shim_log("LOG", __VA_ARGS__)
#define cr_log_warn(...) shim_log("WARN", __VA_ARGS__)
#define cr_log_error(...) shim_log("ERR", __VA_ARGS__)

static inline const struct criterion_test_extra_data *shim_suite_data(const char *suite)
{
    for (const shim_suite *s = shim_suites; s; s = s->next)
        if (strcmp(s->name, suite) == 0)
            return &s->data;
    return NULL;
}

/* Run one test in a child: the suite's then the test's init, the test, the
 * fini (as Criterion: fini runs after a test that returns). Its status. */
static inline int shim_run(const shim_test *t)
{
    const struct criterion_test_extra_data *sd = shim_suite_data(t->suite);
    double timeout = t->data.timeout > 0 ? t->data.timeout : (sd && sd->timeout > 0 ? sd->timeout : 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (timeout > 0)
            alarm((unsigned)timeout + 1);
        void (*init)(void) = t->data.init ? t->data.init : (sd ? sd->init : NULL);
        void (*fini)(void) = t->data.fini ? t->data.fini : (sd ? sd->fini : NULL);
        if (init)
            init();
        t->fn();
        if (fini)
            fini();
        fflush(NULL);
        exit(0); /* exit, not _exit: TSan reports and sets the status at exit */
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

int main(void)
{
    int tested = 0, passing = 0, failing = 0, crashing = 0;
    for (const shim_test *t = shim_tests; t; t = t->next) {
        if (t->data.disabled)
            continue;
        tested++;
        int status = shim_run(t);
        if (status == 0) {
            passing++;
        } else if (status != -1 && WIFSIGNALED(status)) {
            crashing++;
            fprintf(stderr, "[FAIL] %s::%s: CRASH (signal %d%s)\n", t->suite, t->name, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? ": timed out" : "");
        } else {
            failing++;
            fprintf(stderr, "[FAIL] %s::%s: exit status %d%s\n", t->suite, t->name,
                    status == -1 ? -1 : WEXITSTATUS(status),
                    status != -1 && WEXITSTATUS(status) == 66 ? " (ThreadSanitizer report)" : "");
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n", tested, passing,
            failing, crashing);
    return failing + crashing ? 1 : 0;
}

#endif
