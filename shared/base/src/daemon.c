/* daemon: one start-up, signal thread and stop for every program; see sf/daemon.h. */
#include "sf/daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef SF_VERSION
#error "SF_VERSION is defined by CMakeLists.txt (the project's VERSION)"
#endif

#define OUT_MAX (1 << 16)

struct sf_daemon {
    const sf_daemon_spec *spec;
    sf_log *log;
    sigset_t set; /* SIGTERM, SIGINT, SIGHUP: blocked, taken by the thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* with mu: draining became 1 */
    int draining;      /* guarded by mu */
    int stopping;      /* guarded by mu: run returned, the signal thread ends */
};

const char *sf_daemon_version(void)
{
    return SF_VERSION;
}

/* strsignal is neither thread-safe nor stable in wording. */
static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "other";
    }
}

/* Step 1: before anything else, so every thread inherits the mask. */
static void take_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
    sigemptyset(&dfl.sa_mask);
    sigemptyset(&ign.sa_mask);
    sigaction(SIGTERM, &dfl, NULL); /* POSIX may drop an ignored signal even when blocked */
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    sigaction(SIGPIPE, &ign, NULL);
}

/* -1 = go on; otherwise the exit code, with what to say printed. */
static int parse_args(const sf_daemon_spec *spec, int argc, char *const *argv)
{
    if (argc < 2)
        return -1;
    const char *a = argv[argc > 2 ? 2 : 1]; /* one argument at most */
    if (argc == 2 && strcmp(a, "--version") == 0) {
        printf("%s %s\n", spec->prog, SF_VERSION);
        return 0;
    }
    if (argc > 2 || (strcmp(a, "--help") != 0 && strcmp(a, "-h") != 0)) {
        fprintf(stderr, "%s: unknown argument \"%.64s\" (configuration is by environment; see %s --help)\n", spec->prog,
                a, spec->prog);
        return 2;
    }
    char usage[128];
    snprintf(usage, sizeof usage, "%s [--help | --version]", spec->prog);
    sf_buf out;
    sf_buf_init(&out, OUT_MAX);
    sf_err err = {0};
    sf_status st = sf_config_help(usage, spec->summary, spec->vars, spec->n_vars, &out, &err);
    if (st == SF_OK)
        fputs(sf_buf_str(&out), stdout);
    else
        fprintf(stderr, "%s: could not write the help: %s\n", spec->prog, err.msg);
    sf_buf_destroy(&out);
    return st == SF_OK ? 0 : 1;
}

/* Step 3: 0, or 2 with one "prog: NAME: reason" line per bad variable. */
static int load_config(const sf_daemon_spec *spec, void *cfg)
{
    sf_buf errors, out;
    sf_buf_init(&errors, OUT_MAX);
    sf_status st = sf_config_load(spec->vars, spec->n_vars, cfg, &errors);
    if (st == SF_OK && spec->check)
        st = spec->check(cfg, &errors);
    if (st != SF_OK) {
        sf_buf_init(&out, OUT_MAX);
        sf_config_errors_format(spec->prog, &errors, &out, NULL);
        fputs(sf_buf_str(&out), stderr);
        sf_buf_destroy(&out);
    }
    sf_buf_destroy(&errors);
    return st == SF_OK ? 0 : 2;
}

static int open_log(sf_daemon *d, void *cfg)
{
    const sf_common_config *c = (const sf_common_config *)((const char *)cfg + d->spec->common_offset);
    sf_err err = {0};
    if (sf_log_open(d->spec->prog, c->environment, (sf_log_level)c->log_level, c->log_dir, 1, &d->log, &err) != SF_OK) {
        fprintf(stderr, "%s: %s\n", d->spec->prog, err.msg);
        return 2;
    }
    return 0;
}

static void on_signal(sf_daemon *d, int sig)
{
    if (sig == SIGHUP) {
        sf_log_info(d->log, "signal ignored", SF_LF_STR("signal", signal_name(sig)));
        return;
    }
    pthread_mutex_lock(&d->mu);
    int second = d->draining; /* only this thread writes it */
    pthread_mutex_unlock(&d->mu);
    if (second) {
        sf_log_warn(d->log, "second signal: exiting at once", SF_LF_STR("signal", signal_name(sig)));
        _exit(1);
    }
    sf_log_info(d->log, "draining", SF_LF_STR("signal", signal_name(sig))); /* before the program's own lines */
    pthread_mutex_lock(&d->mu);
    d->draining = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/*
 * The signal thread ends when run_program sets stopping and sends it a SIGHUP
 * of its own (pthread_kill), never by pthread_cancel: a thread cancelled in
 * sigwait unwinds without AddressSanitizer unpoisoning its frames, and the
 * poison left on its stack made ASan report its own thread teardown as a
 * stack-buffer-overflow in optimised sanitizer builds.
 */
static void *signal_main(void *arg)
{
    sf_daemon *d = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&d->set, &sig) != 0)
            continue;
        pthread_mutex_lock(&d->mu);
        int stopping = d->stopping;
        pthread_mutex_unlock(&d->mu);
        if (stopping && sig == SIGHUP)
            return NULL;
        on_signal(d, sig);
    }
}

/* Step 5 and the stop: the signal thread lives exactly as long as run. */
static int run_program(sf_daemon *d, void *cfg)
{
    if (pthread_create(&d->thread, NULL, signal_main, d) != 0) {
        sf_log_error(d->log, "could not start the signal thread");
        return 1;
    }
    pthread_setname_np(d->thread, "sf-signals");
    sf_log_info(d->log, "starting", SF_LF_STR("version", SF_VERSION), SF_LF_INT("pid", getpid()));
    int rc = d->spec->run(cfg, d) == 0 ? 0 : 1;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_mutex_unlock(&d->mu);
    pthread_kill(d->thread, SIGHUP);
    pthread_join(d->thread, NULL);
    sf_log_emit(d->log, rc == 0 ? SF_LOG_INFO : SF_LOG_ERROR, "stopped",
                (const sf_log_field[]){SF_LF_INT("exit_code", rc), {.type = SF_LF_END_}});
    return rc;
}

int sf_daemon_main(const sf_daemon_spec *spec, int argc, char *const *argv, void *cfg)
{
    sf_daemon d = {.spec = spec, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    take_signals(&d.set);
    int rc = parse_args(spec, argc, argv);
    if (rc >= 0)
        return rc;
    rc = load_config(spec, cfg);
    if (rc == 0)
        rc = open_log(&d, cfg);
    if (rc == 0) {
        rc = run_program(&d, cfg);
        sf_log_close(d.log);
    }
    sf_config_free(spec->vars, spec->n_vars, cfg);
    return rc;
}

sf_log *sf_daemon_log(const sf_daemon *d)
{
    return d->log;
}

void sf_daemon_wait(sf_daemon *d)
{
    pthread_mutex_lock(&d->mu);
    while (!d->draining)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

int sf_daemon_draining(sf_daemon *d)
{
    pthread_mutex_lock(&d->mu);
    int v = d->draining;
    pthread_mutex_unlock(&d->mu);
    return v;
}
