/*
 * proc: child processes for the cross-process tests (header-only: CMake builds
 * each tests/<kind>/test_*.c as its own executable).
 *
 * sf_proc_start forks and execs a program with the test's environment plus
 * overrides ("NAME=value" strings replace a variable of the same name, a bare
 * "NAME" removes it), stdout and stderr appended to <dir>/<name>.log, stdin
 * /dev/null. The child gets PR_SET_PDEATHSIG SIGKILL, so a test process that
 * Criterion kills on a timeout takes its programs with it; sf_proc_stop_all
 * (call it from the suite's .fini) stops whatever is still running, by PID.
 * A child can drop root to another user (uid/gid) before exec: initdb and
 * postgres refuse to run as root.
 *
 * Waits are always bounded: sf_proc_stop sends a signal and waits up to a
 * deadline before SIGKILL; sf_proc_wait_until polls a predicate until a
 * deadline. Times are CLOCK_MONOTONIC milliseconds.
 *
 * Thread safety: call from the test's main thread (the registry of started
 * processes is a plain static array). Ownership: sf_proc structs live in the
 * registry until the test process exits; pointers to them stay valid.
 */
#ifndef SF_PROC_H
#define SF_PROC_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sf/err.h"

#define SF_PROC_MAX 64      /* processes one test may start */
#define SF_PROC_ENV_MAX 256 /* environment entries passed to a child */
#define SF_PROC_ARGV_MAX 32

extern char **environ;

typedef struct sf_proc {
    pid_t pid;
    char name[64];
    char log[512]; /* stdout + stderr of the child */
    int reaped;    /* 1 once waitpid collected it */
    int status;    /* waitpid status when reaped */
} sf_proc;

typedef struct sf_proc_registry_ {
    sf_proc procs[SF_PROC_MAX];
    int n;
} sf_proc_registry_;

static sf_proc_registry_ sf_proc_reg_;

static inline int64_t sf_proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sf_proc_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
 * ephemeral range (net.ipv4.ip_local_port_range, 32768 and up by default):
 * a port in that range can be taken at any moment as the local end of an
 * outgoing connection, and a Redis or PostgreSQL a test restarts there would
 * find it in use. Drawn at random (tests run side by side), then bound once
 * with SO_REUSEADDR, as those servers bind.
 */
static inline int sf_proc_free_port(void)
{
    int low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &low) != 1)
            low = 32768;
        fclose(f);
    }
    if (low > 65536 || low < 12000)
        low = 32768;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)now.tv_nsec;
    static int given[32]; /* never the same port twice in one process */
    static unsigned n_given;
    int room = low - 10000;
    int start = (int)(seed % (unsigned)room);
    for (int k = 0; k < room; k += 37) {
        int port = 10000 + (start + k) % room, seen = 0;
        for (unsigned i = 0; i < n_given && i < 32; i++)
            seen |= given[i] == port;
        if (seen)
            continue;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(fd >= 0, "socket: %s", sf_err_errno_text(errno).text);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {
            .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)port)};
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) {
            given[n_given++ % 32] = port;
            return port;
        }
    }
    cr_assert_fail("no free port on 127.0.0.1 below %d", low);
    return -1;
}

static inline size_t sf_proc_name_len_(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static inline int sf_proc_overridden_(const char *entry, const char *const *env)
{
    size_t n = sf_proc_name_len_(entry);
    for (size_t i = 0; env && env[i]; i++)
        if (sf_proc_name_len_(env[i]) == n && strncmp(entry, env[i], n) == 0)
            return 1;
    return 0;
}

/* environ minus the overridden names, plus the overrides that carry a value. */
static inline void sf_proc_build_env_(const char *const *env, const char **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; environ[i] && k + 1 < max; i++)
        if (!sf_proc_overridden_(environ[i], env))
            out[k++] = environ[i];
    for (size_t i = 0; env && env[i] && k + 1 < max; i++)
        if (strchr(env[i], '='))
            out[k++] = env[i];
    out[k] = NULL;
}

/* execve wants char *const[]; the strings are never written. */
static inline char *sf_proc_unconst_(const char *s)
{
    char *p;
    memcpy(&p, &s, sizeof p);
    return p;
}

/* In the child: never returns. */
static inline void sf_proc_child_(const char *path, const char *const *argv, const char *const *envp, const char *log,
                                  uid_t uid, gid_t gid)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0666);
    int in = open("/dev/null", O_RDONLY);
    if (fd < 0 || in < 0)
        _exit(126);
    fchmod(fd, 0666);
    dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (uid != 0 && (setgid(gid) != 0 || setuid(uid) != 0))
        _exit(126);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
    if (getppid() == 1)
        _exit(126); /* the test died before prctl */
    char *a[SF_PROC_ARGV_MAX], *e[SF_PROC_ENV_MAX];
    size_t i = 0;
    for (; argv[i] && i + 1 < SF_PROC_ARGV_MAX; i++)
        a[i] = sf_proc_unconst_(argv[i]);
    a[i] = NULL;
    for (i = 0; envp[i] && i + 1 < SF_PROC_ENV_MAX; i++)
        e[i] = sf_proc_unconst_(envp[i]);
    e[i] = NULL;
    execve(path, a, e);
    dprintf(2, "exec %s: %s\n", path, sf_err_errno_text(errno).text);
    _exit(127);
}

/*
 * Start path with argv (NULL-terminated; argv[0] may be NULL to use path) and
 * the environment overrides env (NULL-terminated, may be NULL), logging to
 * <dir>/<name>.log, as uid/gid when uid != 0. Fails the test when fork fails.
 */
static inline sf_proc *sf_proc_start_as(const char *name, const char *path, const char *const *argv,
                                        const char *const *env, const char *dir, uid_t uid, gid_t gid)
{
    cr_assert(sf_proc_reg_.n < SF_PROC_MAX, "more than %d processes", SF_PROC_MAX);
    sf_proc *p = &sf_proc_reg_.procs[sf_proc_reg_.n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", dir, name);
    const char *envp[SF_PROC_ENV_MAX];
    sf_proc_build_env_(env, envp, SF_PROC_ENV_MAX);
    const char *args[SF_PROC_ARGV_MAX] = {path};
    size_t na = 1;
    for (size_t i = 1; argv && argv[i] && na + 1 < SF_PROC_ARGV_MAX; i++)
        args[na++] = argv[i];
    args[na] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", sf_err_errno_text(errno).text);
    if (pid == 0)
        sf_proc_child_(path, args, envp, p->log, uid, gid);
    p->pid = pid;
    sf_proc_reg_.n++;
    return p;
}

static inline sf_proc *sf_proc_start(const char *name, const char *path, const char *const *argv,
                                     const char *const *env, const char *dir)
{
    return sf_proc_start_as(name, path, argv, env, dir, 0, 0);
}

/* Collect the child if it has exited; 1 when it is gone. */
static inline int sf_proc_poll(sf_proc *p)
{
    if (p->reaped)
        return 1;
    int st = 0;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->reaped = 1;
        p->status = st;
        return 1;
    }
    return 0;
}

static inline int sf_proc_alive(sf_proc *p)
{
    return !sf_proc_poll(p);
}

static inline void sf_proc_signal(sf_proc *p, int sig)
{
    if (!sf_proc_poll(p))
        kill(p->pid, sig);
}

/* Wait up to timeout_ms for the child to exit by itself; 1 when it did. */
static inline int sf_proc_wait_exit(sf_proc *p, int64_t timeout_ms)
{
    int64_t end = sf_proc_now_ms() + timeout_ms;
    while (!sf_proc_poll(p)) {
        if (sf_proc_now_ms() >= end)
            return 0;
        sf_proc_sleep_ms(10);
    }
    return 1;
}

/*
 * Send sig (SIGTERM normally; SIGCONT too, in case it is stopped) and wait up
 * to timeout_ms; then SIGKILL. Returns 1 when it exited within the time.
 */
static inline int sf_proc_stop(sf_proc *p, int sig, int64_t timeout_ms)
{
    if (sf_proc_poll(p))
        return 1;
    kill(p->pid, sig);
    kill(p->pid, SIGCONT);
    if (sf_proc_wait_exit(p, timeout_ms))
        return 1;
    kill(p->pid, SIGKILL);
    sf_proc_wait_exit(p, 10000);
    return 0;
}

/* SIGKILL and reap. */
static inline void sf_proc_kill(sf_proc *p)
{
    if (sf_proc_poll(p))
        return;
    kill(p->pid, SIGKILL);
    sf_proc_wait_exit(p, 10000);
}

/* Exit code (0..255) of a reaped child that exited, -1 for a signal or still running. */
static inline int sf_proc_exit_code(const sf_proc *p)
{
    return p->reaped && WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
}

/* Stop every process still running, newest first (SIGTERM, then SIGKILL after grace_ms). */
static inline void sf_proc_stop_all(int64_t grace_ms)
{
    for (int i = sf_proc_reg_.n - 1; i >= 0; i--)
        sf_proc_stop(&sf_proc_reg_.procs[i], SIGTERM, grace_ms);
    sf_proc_reg_.n = 0;
}

/* The whole log file (at most max bytes from its end); free() it. */
static inline char *sf_proc_log_read(const sf_proc *p, size_t max)
{
    FILE *f = fopen(p->log, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)max ? size - (long)max : 0;
    fseek(f, from, SEEK_SET);
    char *buf = calloc(1, (size_t)(size - from) + 1);
    size_t got = buf ? fread(buf, 1, (size_t)(size - from), f) : 0;
    fclose(f);
    if (buf)
        buf[got] = '\0';
    return buf ? buf : strdup("");
}

static inline int sf_proc_log_contains(const sf_proc *p, const char *needle)
{
    char *s = sf_proc_log_read(p, (size_t)64 << 20);
    int found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* Print the last bytes of every started process's log to stderr (on failure). */
static inline void sf_proc_dump_logs(size_t tail)
{
    for (int i = 0; i < sf_proc_reg_.n; i++) {
        char *s = sf_proc_log_read(&sf_proc_reg_.procs[i], tail);
        fprintf(stderr, "---- %s (pid %d) %s ----\n%s\n", sf_proc_reg_.procs[i].name, (int)sf_proc_reg_.procs[i].pid,
                sf_proc_reg_.procs[i].log, s);
        free(s);
    }
}

typedef int (*sf_proc_pred_fn)(void *ctx);

/* Poll pred every interval_ms until it returns non-zero or timeout_ms passes;
 * returns the last value of pred (0 = timed out). */
static inline int sf_proc_wait_until(sf_proc_pred_fn pred, void *ctx, int64_t timeout_ms, int64_t interval_ms)
{
    int64_t end = sf_proc_now_ms() + timeout_ms;
    for (;;) {
        int v = pred(ctx);
        if (v || sf_proc_now_ms() >= end)
            return v;
        sf_proc_sleep_ms(interval_ms);
    }
}

#endif
