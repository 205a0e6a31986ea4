/* bench_engine: throughput of the backtest engine on a deterministic
 * 1,000,000-bar random walk, against a hand-written C loop (loop_sma.c).
 *
 * Each case runs in its own forked child, which generates the bars itself, so
 * the peak RSS reported (wait4's ru_maxrss) is that case's alone. A child
 * sends its figures back through a pipe. Timings are the best of --reps runs.
 *
 *   sf-bench-engine [--bars N] [--reps R] [--csv PATH]
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop_sma.h"
#include "sf/bars.h"
#include "sf/engine.h"
#include "sf/grid.h"
#include "sf/logic.h"
#include "sf/perf.h"
#include "sf/sweep.h"
#include "sf/time.h"

#define SEED 20240101u

static const char sma_logic[] =
    "{\"name\": \"sma-cross\", \"indicators\": {"
    "\"fast\": {\"type\": \"sma\", \"period\": 10}, \"slow\": {\"type\": \"sma\", \"period\": 30}},"
    "\"entry\": {\"crosses_above\": [\"fast\", \"slow\"]},"
    "\"exit\": {\"crosses_below\": [\"fast\", \"slow\"]},"
    "\"execution\": {\"fill\": \"next_open\", \"fee_bps\": 1}}";

static const char five_logic[] =
    "{\"name\": \"five\", \"indicators\": {"
    "\"rsi\": {\"type\": \"rsi\", \"period\": 14},"
    "\"macd\": {\"type\": \"macd\"},"
    "\"bb\": {\"type\": \"bbands\", \"period\": 20, \"stddev\": 2},"
    "\"atr\": {\"type\": \"atr\", \"period\": 14},"
    "\"ema\": {\"type\": \"ema\", \"period\": 50}},"
    "\"entry\": {\"all\": [{\"lt\": [\"rsi\", 40]}, {\"gt\": [\"close\", \"ema\"]},"
    "  {\"any\": [{\"crosses_above\": [\"macd.macd\", \"macd.signal\"]}, {\"lt\": [\"close\", \"bb.lower\"]}]},"
    "  {\"gt\": [\"atr\", 0.1]}]},"
    "\"exit\": {\"any\": [{\"gt\": [\"rsi\", 70]}, {\"gt\": [\"close\", \"bb.upper\"]},"
    "  {\"crosses_below\": [\"macd.macd\", \"macd.signal\"]}]},"
    "\"risk\": {\"stop_loss_pct\": 3, \"take_profit_pct\": 6},"
    "\"execution\": {\"fill\": \"next_open\", \"fee_bps\": 10, \"slippage_bps\": 2}}";

/* 10 x 10 = 100 combinations */
static const char sweep_grid[] = "{\"indicators.fast.period\": {\"from\": 5, \"to\": 14, \"step\": 1},"
                                 " \"indicators.slow.period\": {\"from\": 20, \"to\": 65, \"step\": 5}}";

typedef struct figures {
    double seconds;  /* best run */
    double units;    /* bars processed per run (bars x members for sweeps) */
    double extra[4]; /* case-specific */
} figures;

typedef int (*case_fn)(size_t n, int reps, const char *arg, figures *f);

/* ---- data ---- */

static double unit(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

static sf_bars *gen_bars(size_t n)
{
    sf_bars *b = NULL;
    if (sf_bars_new(n, &b, NULL) != SF_OK)
        return NULL;
    uint64_t s = SEED;
    double px = 100;
    for (size_t i = 0; i < n; i++) {
        double o = px * (1 + (unit(&s) - 0.5) * 0.004);
        double c = o * (1 + (unit(&s) - 0.5) * 0.02);
        b->ts[i] = 946684800 + (int64_t)i * 60;
        b->open[i] = o;
        b->close[i] = c;
        b->high[i] = fmax(o, c) * (1 + unit(&s) * 0.003);
        b->low[i] = fmin(o, c) * (1 - unit(&s) * 0.003);
        b->volume[i] = 1000 + 1000 * unit(&s);
        px = c;
    }
    return b;
}

static double now(void)
{
    return (double)sf_time_mono_ns() / 1e9;
}

/* ---- cases (run in the child) ---- */

static int run_logic(const char *json, const sf_bars *b, int reps, figures *f, sf_result **keep)
{
    sf_logic *lg = NULL;
    sf_err err;
    if (sf_logic_parse(json, strlen(json), &lg, NULL, &err) != SF_OK) {
        fprintf(stderr, "bench: logic: %s\n", err.msg);
        return 1;
    }
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.keep_equity = 0;
    o.keep_trades = 0;
    f->seconds = INFINITY;
    for (int r = 0; r < reps; r++) {
        sf_result *res = NULL;
        double t0 = now();
        if (sf_engine_run(lg, b, &o, &res, &err) != SF_OK) {
            fprintf(stderr, "bench: run: %s\n", err.msg);
            return 1;
        }
        f->seconds = fmin(f->seconds, now() - t0);
        if (r == reps - 1 && keep != NULL)
            *keep = res;
        else
            sf_result_free(res);
    }
    f->units = (double)b->n;
    sf_logic_free(lg);
    return 0;
}

static int case_engine(size_t n, int reps, const char *json, figures *f)
{
    sf_bars *b = gen_bars(n);
    sf_result *res = NULL;
    int rc = b ? run_logic(json, b, reps, f, &res) : 1;
    if (rc == 0) {
        f->extra[0] = res->perf.final_equity;
        f->extra[1] = (double)res->n_trades;
    }
    sf_result_free(res);
    sf_bars_free(b);
    return rc;
}

/* arg "metrics": also compute the metrics of its curve with sf_perf_compute,
 * as every engine run does. */
static int case_loop(size_t n, int reps, const char *arg, figures *f)
{
    int metrics = arg != NULL && strcmp(arg, "metrics") == 0;
    sf_bars *b = gen_bars(n);
    double *eq = b ? malloc(n * sizeof *eq) : NULL;
    if (eq == NULL)
        return 1;
    loop_sma_out out = {0};
    f->seconds = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        loop_sma_cross(b->open, b->close, n, 10, 30, 0.0001, 10000, eq, &out);
        double t1 = now();
        if (metrics) {
            sf_perf p;
            sf_perf_compute(b->ts, eq, n, 10000, NULL, 0, 0, 252, &p);
            f->extra[2] = f->extra[2] > 0 ? fmin(f->extra[2], now() - t1) : now() - t1;
        }
        f->seconds = fmin(f->seconds, now() - t0);
    }
    f->units = (double)n;
    f->extra[0] = out.final_equity;
    f->extra[1] = (double)out.trades;
    free(eq);
    sf_bars_free(b);
    return 0;
}

static int case_sweep(size_t n, int reps, const char *threads, figures *f)
{
    sf_bars *b = gen_bars(n);
    sf_grid *g = NULL;
    sf_err err;
    if (b == NULL || sf_grid_parse(sweep_grid, strlen(sweep_grid), 0, &g, &err) != SF_OK)
        return 1;
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    o.threads = (int)strtol(threads, NULL, 10);
    o.top_k = 1;
    f->seconds = INFINITY;
    for (int r = 0; r < reps; r++) {
        sf_sweep_result *res = NULL;
        double t0 = now();
        if (sf_sweep_run(g, sma_logic, strlen(sma_logic), b, &o, &res, NULL, &err) != SF_OK) {
            fprintf(stderr, "bench: sweep: %s\n", err.msg);
            return 1;
        }
        f->seconds = fmin(f->seconds, now() - t0);
        f->extra[0] = (double)res->cache.computed;
        sf_sweep_result_free(res);
    }
    f->units = (double)n * (double)sf_grid_size(g);
    sf_grid_free(g);
    sf_bars_free(b);
    return 0;
}

static int write_csv(const sf_bars *b, const char *path)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return 1;
    fputs("timestamp,open,high,low,close,volume\n", fp);
    for (size_t i = 0; i < b->n; i++) {
        char t[SF_TIME_ISO_MAX];
        sf_time_format_iso8601(b->ts[i], t, sizeof t);
        fprintf(fp, "%s,%.6f,%.6f,%.6f,%.6f,%.2f\n", t, b->open[i], b->high[i], b->low[i], b->close[i], b->volume[i]);
    }
    return fclose(fp) != 0;
}

static int case_csv(size_t n, int reps, const char *path, figures *f)
{
    (void)reps;
    sf_bars *b = gen_bars(n);
    if (b == NULL)
        return 1;
    double t0 = now();
    int rc = write_csv(b, path);
    f->extra[0] = now() - t0;
    sf_bars_free(b);
    if (rc != 0)
        return 1;
    sf_bars *back = NULL;
    sf_err err;
    t0 = now();
    if (sf_bars_load_csv_file(path, SF_BARS_MAX_DEFAULT, &back, &err) != SF_OK) {
        fprintf(stderr, "bench: load: %s\n", err.msg);
        return 1;
    }
    f->seconds = now() - t0;
    f->units = (double)back->n;
    sf_bars_free(back);
    unlink(path);
    return 0;
}

/* ---- the parent: fork, collect, print ---- */

typedef struct bench_case {
    const char *label;
    case_fn fn;
    const char *arg;
} bench_case;

/* Run one case in a child; returns 0 and fills f and the child's peak RSS. */
static int run_child(const bench_case *c, size_t n, int reps, figures *f, long *rss_kb)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(fds[0]);
        figures mine = {0};
        int rc = c->fn(n, reps, c->arg, &mine);
        if (rc == 0 && write(fds[1], &mine, sizeof mine) != (ssize_t)sizeof mine)
            rc = 1;
        _exit(rc);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], f, sizeof *f);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return 1;
    *rss_kb = ru.ru_maxrss;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof *f);
}

static int parse_args(int argc, char **argv, size_t *n, int *reps, const char **csv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (strcmp(argv[i], "--csv") == 0)
            *csv = argv[i + 1];
        else if (strcmp(argv[i], "--bars") == 0 && *end == '\0' && v >= 100)
            *n = (size_t)v;
        else if (strcmp(argv[i], "--reps") == 0 && *end == '\0' && v >= 1 && v <= 100)
            *reps = (int)v;
        else
            return 1;
    }
    return argc % 2 == 0;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    int reps = 5;
    const char *csv = "/tmp/sf-bench-bars.csv";
    if (parse_args(argc, argv, &n, &reps, &csv)) {
        fprintf(stderr, "usage: sf-bench-engine [--bars N] [--reps R] [--csv PATH]\n");
        return 2;
    }
    const bench_case cases[] = {
        {"(a) engine sma(10)/sma(30) cross, 1 thread", case_engine, sma_logic},
        {"(d) hand-written C loop, same crossover", case_loop, NULL},
        {"(d') hand loop + sf_perf_compute metrics", case_loop, "metrics"},
        {"(b) engine 5 indicators, all/any, stops", case_engine, five_logic},
        {"(c) sweep 100 combos, 1 thread", case_sweep, "1"},
        {"(c) sweep 100 combos, 2 threads", case_sweep, "2"},
        {"(e) CSV load (sf_bars_load_csv_file)", case_csv, csv},
    };
    enum { N_CASES = sizeof cases / sizeof cases[0] };
    figures f[N_CASES];
    long rss[N_CASES];
    printf("%zu bars (random walk, seed %u), best of %d runs, pid-isolated cases\n\n", n, SEED, reps);
    printf("%-45s %12s %14s %12s\n", "case", "seconds", "bars/s", "peak RSS MB");
    for (int i = 0; i < N_CASES; i++) {
        memset(&f[i], 0, sizeof f[i]);
        if (run_child(&cases[i], n, reps, &f[i], &rss[i]) != 0) {
            fprintf(stderr, "bench: case \"%s\" failed\n", cases[i].label);
            return 1;
        }
        printf("%-45s %12.4f %14.0f %12.1f\n", cases[i].label, f[i].seconds, f[i].units / f[i].seconds,
               (double)rss[i] / 1024.0);
    }
    double ratio = (f[0].units / f[0].seconds) / (f[1].units / f[1].seconds);
    printf("\nengine / hand loop (bars/s): %.2f  (target >= 0.50)\n", ratio);
    printf("engine / (hand loop + the same metrics): %.2f; sf_perf_compute alone: %.4f s\n",
           (f[0].units / f[0].seconds) / (f[2].units / f[2].seconds), f[2].extra[2]);
    /* the curves are identical, so the metrics cost the engine the same time */
    printf("engine without its metrics (a minus sf_perf_compute) / hand loop: %.2f\n",
           f[1].seconds / (f[0].seconds - f[2].extra[2]));
    printf("engine vs loop: final equity %.10g vs %.10g, trades %.0f vs %.0f (%s)\n", f[0].extra[0], f[1].extra[0],
           f[0].extra[1], f[1].extra[1],
           f[0].extra[0] == f[1].extra[0] && f[0].extra[1] == f[1].extra[1] ? "identical" : "DIFFERENT");
    printf("sweep speed-up 2 threads / 1 thread: %.2fx (indicator specs computed per sweep: %.0f)\n",
           f[4].seconds / f[5].seconds, f[4].extra[0]);
    printf("CSV: write %.3f s, load %.3f s (%.0f bars/s)\n", f[6].extra[0], f[6].seconds, f[6].units / f[6].seconds);
    return 0;
}
