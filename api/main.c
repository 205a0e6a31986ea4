/*
 * sf-api: the HTTP/JSON API of the backtest farm.
 *
 * main parses the configuration (exit 2 with one line per bad variable),
 * blocks SIGTERM/SIGINT before any thread starts, starts the HTTP daemon and
 * waits for a signal on one sigwait thread. The first SIGTERM/SIGINT drains:
 * the listener stops accepting, requests in flight get up to DRAIN_SECONDS to
 * finish, then the daemon stops and main exits 0. A second signal exits at
 * once with status 1.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#define PROG "sf-api"

static const sf_config_var config_vars[] = {
    SF_CONFIG_DATABASE_URL_VAR(api_config, database_url),
    SF_CONFIG_REDIS_URL_VAR(api_config, redis_url),
    {"PORT", SF_CFG_INT, "8080", 0, 65535, NULL, 0, offsetof(api_config, port),
     "TCP port to listen on (0 = any free port, logged at start)"},
    {"BIND_ADDRESS", SF_CFG_STRING, "0.0.0.0", 0, 0, NULL, 0, offsetof(api_config, bind_address),
     "IP address to listen on"},
    {"API_THREADS", SF_CFG_INT, "4", 1, 64, NULL, 0, offsetof(api_config, threads),
     "HTTP worker threads (each has its own database connection)"},
    {"MAX_BODY_BYTES", SF_CFG_INT, "1048576", 1024, 67108864, NULL, 0, offsetof(api_config, max_body),
     "largest request body accepted (413 above)"},
    {"SWEEP_MAX_COMBINATIONS", SF_CFG_INT, "100000", 1, 10000000, NULL, 0, offsetof(api_config, sweep_max),
     "most combinations in one sweep (400 above)"},
    SF_CONFIG_QUEUE_VAR(api_config, queue),
    {"DB_STATEMENT_TIMEOUT_MS", SF_CFG_INT, "30000", 0, 3600000, NULL, 0,
     offsetof(api_config, db_statement_timeout_ms), "statement timeout of API queries (0 = none)"},
    {"DRAIN_SECONDS", SF_CFG_INT, "10", 0, 3600, NULL, 0, offsetof(api_config, drain_s),
     "on SIGTERM, how long requests in flight may take to finish"},
    SF_CONFIG_COMMON_VARS(api_config, common),
};
#define N_VARS (sizeof config_vars / sizeof config_vars[0])

static const char summary[] =
    "The backtest farm's HTTP/JSON API: submissions, status, results, cancel, data sets,\n"
    "/health, /ready and /metrics. Configured by environment variables (NAME or NAME_FILE).";


/* One "PROG: VARIABLE: reason" line per bad variable, on stderr. */
static void print_config_errors(const sf_buf *errors)
{
    sf_buf out;
    sf_buf_init(&out, 1 << 16);
    sf_config_errors_format(PROG, errors, &out, NULL);
    fputs(sf_buf_str(&out), stderr);
    sf_buf_destroy(&out);
}

static int load_config(api_config *cfg)
{
    sf_buf errors;
    sf_buf_init(&errors, 1 << 16);
    sf_status st = sf_config_load(config_vars, N_VARS, cfg, &errors);
    if (st != SF_OK)
        print_config_errors(&errors);
    sf_buf_destroy(&errors);
    return st == SF_OK;
}

/* ---- signals ------------------------------------------------------------------ */

typedef struct sig_state {
    sigset_t set;
    sem_t stop;     /* posted on the first signal */
    sf_log *log;
} sig_state;

static void *sig_thread(void *arg)
{
    sig_state *s = arg;
    int count = 0, sig = 0;
    while (sigwait(&s->set, &sig) == 0) {
        if (++count == 1) {
            sf_log_info(s->log, "signal received: draining", SF_LF_STR("signal", strsignal(sig)));
            sem_post(&s->stop);
            continue;
        }
        sf_log_warn(s->log, "second signal: exiting now", SF_LF_STR("signal", strsignal(sig)));
        _exit(1);
    }
    return NULL;
}

/* ---- requests ------------------------------------------------------------------ */

static void on_done(const sf_httpd_done *d, void *appv)
{
    api_app *app = appv;
    char status[8];
    snprintf(status, sizeof status, "%d", d->status);
    const char *labels[] = {d->method, d->route, status};
    sf_metrics_observe(app->metrics, API_METRIC_HTTP_DURATION, labels, d->duration_s, NULL);
    if (sf_log_enabled(app->log, SF_LOG_DEBUG))
        sf_log_debug(app->log, "request", SF_LF_STR("request_id", d->request_id), SF_LF_STR("method", d->method),
                     SF_LF_STR("route", d->route), SF_LF_INT("status", d->status),
                     SF_LF_DBL("duration_ms", d->duration_s * 1000.0));
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int serve(api_app *app, sig_state *sigs)
{
    const api_config *cfg = app->cfg;
    sf_httpd_opts o = {.bind_address = cfg->bind_address, .port = (int)cfg->port,
                       .threads = (unsigned)cfg->threads, .max_body = (size_t)cfg->max_body,
                       .on_done = on_done, .app = app};
    sf_httpd *httpd = NULL;
    sf_err err = {0};
    if (sf_httpd_start(api_routes, api_n_routes, &o, &httpd, &err) != SF_OK) {
        sf_log_error(app->log, "could not start the HTTP server", SF_LF_STR("error", err.msg));
        return 1;
    }
    sf_log_info(app->log, "listening", SF_LF_STR("bind_address", cfg->bind_address),
                SF_LF_INT("port", sf_httpd_port(httpd)), SF_LF_INT("threads", cfg->threads));
    while (sem_wait(&sigs->stop) != 0)
        ;
    sf_httpd_quiesce(httpd);
    sf_log_info(app->log, "draining", SF_LF_INT("in_flight", sf_httpd_in_flight(httpd)));
    sf_httpd_stop(httpd, (int)cfg->drain_s * 1000);
    sf_log_info(app->log, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    sf_buf out;
    sf_buf_init(&out, 1 << 16);
    int rc = sf_config_args(PROG, summary, config_vars, N_VARS, argc, argv, &out);
    fputs(sf_buf_str(&out), rc == 0 ? stdout : stderr);
    sf_buf_destroy(&out);
    if (rc >= 0)
        return rc;
    api_config cfg = {0};
    if (!load_config(&cfg)) {
        sf_config_free(config_vars, N_VARS, &cfg);
        return 2;
    }
    sig_state sigs;
    sigemptyset(&sigs.set);
    sigaddset(&sigs.set, SIGTERM);
    sigaddset(&sigs.set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sem_init(&sigs.stop, 0, 0);

    sf_err err = {0};
    sf_log *log = NULL;
    if (sf_log_open(PROG, cfg.common.environment, (sf_log_level)cfg.common.log_level, cfg.common.log_dir, 1, &log,
                    &err) != SF_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        sf_config_free(config_vars, N_VARS, &cfg);
        return 2;
    }
    sigs.log = log;
    api_app app;
    rc = 1;
    pthread_t sig_tid;
    if (api_app_init(&app, &cfg, log, &err) != SF_OK) {
        sf_log_error(log, "could not start", SF_LF_STR("error", err.msg));
    } else if (pthread_create(&sig_tid, NULL, sig_thread, &sigs) != 0) {
        sf_log_error(log, "could not start the signal thread");
        api_app_destroy(&app);
    } else {
        pthread_detach(sig_tid);
        app.start_time = now_unix();
        rc = serve(&app, &sigs);
        api_app_destroy(&app);
    }
    sf_log_close(log);
    sf_config_free(config_vars, N_VARS, &cfg);
    return rc;
}
