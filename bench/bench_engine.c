/* bench_engine: throughput of the backtest engine on a deterministic
 * 1,000,000-bar random walk, against a hand-written C loop (loop_sma.c).
 *
 * Each case runs in its own forked child, which generates the bars itself, so
 * the peak RSS reported (wait4's ru_maxrss) is that case's alone. A child
 * sends its figures back through a pipe. Timings are the best of --reps runs.
 * Both ratios compare the same work: the loop records its trades and calls
 * sf_perf_compute (and, over the sweep's grid, sf_blocks_compute and
 * sf_overfit_compute); the bench exits 1 when any metric differs by a bit.
 * The two ratios are measured apart from the table: one child runs the
 * engine and the loop in turns and reports the median of the per-pair
 * ratios with their range, so the machine's load weighs on both sides.
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
#include "sf/overfit.h"
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
    uint64_t hash;   /* of the metrics (every member's, and PBO and DSR, for sweeps) */
} figures;

/* FNV-1a over the bytes of the metrics: equal hashes, equal bits. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ c[i]) * 1099511628211u;
    return h;
}

static uint64_t hash_perf(uint64_t h, const sf_perf *p)
{
    const double d[] = {p->final_equity, p->total_return, p->cagr,          p->sharpe,   p->sortino,
                        p->max_drawdown, p->win_rate,     p->profit_factor, p->exposure, p->fees};
    const int64_t t[] = {p->drawdown_peak_time, p->drawdown_trough_time, (int64_t)p->trades};
    return hash_bytes(hash_bytes(h, d, sizeof d), t, sizeof t);
}

static uint64_t hash_overfit(uint64_t h, const sf_overfit *o)
{
    const double d[] = {o->pbo, o->dsr, o->best_sharpe, o->skewness, o->kurtosis};
    return hash_bytes(h, d, sizeof d);
}

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
        f->hash = hash_perf(14695981039346656037u, &res->perf);
    }
    sf_result_free(res);
    sf_bars_free(b);
    return rc;
}

/* arg "metrics": also record the trades and compute the metrics with
 * sf_perf_compute, as every engine run does. */
static int case_loop(size_t n, int reps, const char *arg, figures *f)
{
    int metrics = arg != NULL && strcmp(arg, "metrics") == 0;
    sf_bars *b = gen_bars(n);
    double *eq = b ? malloc(n * sizeof *eq) : NULL;
    sf_trade *trades = metrics ? malloc((n / 2 + 1) * sizeof *trades) : NULL;
    if (eq == NULL || (metrics && trades == NULL))
        return 1;
    loop_sma_out out = {0};
    sf_perf p;
    f->seconds = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        loop_sma_cross(b->open, b->close, n, 10, 30, 0.0001, 10000, eq, trades, &out);
        double t1 = now();
        if (metrics) {
            sf_perf_compute(b->ts, eq, n, 10000, trades, out.trades, out.bars_in_pos, 252, &p);
            f->extra[2] = f->extra[2] > 0 ? fmin(f->extra[2], now() - t1) : now() - t1;
            f->hash = hash_perf(14695981039346656037u, &p);
        }
        f->seconds = fmin(f->seconds, now() - t0);
    }
    f->units = (double)n;
    f->extra[0] = out.final_equity;
    f->extra[1] = (double)out.trades;
    free(trades);
    free(eq);
    sf_bars_free(b);
    return 0;
}

/* One hand-loop member of the sweep grid, with the metrics and the block
 * statistics a sweep member gets. */
static void loop_member(const sf_bars *b, size_t fast, size_t slow, double *eq, sf_trade *trades, sf_perf *p,
                        sf_blocks *blk)
{
    loop_sma_out out = {0};
    loop_sma_cross(b->open, b->close, b->n, fast, slow, 0.0001, 10000, eq, trades, &out);
    sf_perf_compute(b->ts, eq, b->n, 10000, trades, out.trades, out.bars_in_pos, 252, p);
    sf_blocks_compute(eq, b->n, SF_OVERFIT_BLOCKS_DEFAULT, blk);
}

/* The sweep's 100 combinations (fast 5..14 x slow 20..65 by 5, the last path
 * fastest, as sf_grid numbers them) by the hand loop, one after the other,
 * with PBO and DSR over them as the sweep computes. */
static int case_loop_grid(size_t n, int reps, const char *arg, figures *f)
{
    (void)arg;
    sf_bars *b = gen_bars(n);
    double *eq = b ? malloc(n * sizeof *eq) : NULL;
    sf_trade *trades = malloc((n / 2 + 1) * sizeof *trades);
    sf_overfit_set *set = NULL;
    if (eq == NULL || trades == NULL || sf_overfit_set_new(SF_OVERFIT_BLOCKS_DEFAULT, &set, NULL) != SF_OK ||
        sf_overfit_set_resize(set, 100, NULL) != SF_OK)
        return 1;
    f->seconds = INFINITY;
    for (int r = 0; r < reps; r++) {
        uint64_t h = 14695981039346656037u;
        double t0 = now();
        for (size_t k = 0; k < 100; k++) {
            sf_perf p;
            sf_blocks blk;
            loop_member(b, 5 + k / 10, 20 + 5 * (k % 10), eq, trades, &p, &blk);
            h = hash_perf(h, &p);
            if (sf_overfit_set_put(set, k, (int64_t)k, &blk, NULL) != SF_OK)
                return 1;
        }
        sf_overfit o;
        if (sf_overfit_compute(set, NULL, &o, NULL) != SF_OK)
            return 1;
        f->seconds = fmin(f->seconds, now() - t0);
        f->hash = hash_overfit(h, &o);
    }
    f->units = (double)n * 100;
    sf_overfit_set_free(set);
    free(trades);
    free(eq);
    sf_bars_free(b);
    return 0;
}

/* Every member's metrics in combination order, then PBO and DSR. */
static uint64_t hash_sweep(const sf_sweep_result *res)
{
    uint64_t h = 14695981039346656037u;
    for (size_t k = 0; k < res->n_combos; k++)
        for (size_t i = 0; i < res->n_members; i++)
            if (res->members[i].index == k)
                h = hash_perf(h, &res->members[i].perf);
    return res->has_overfit ? hash_overfit(h, &res->overfit) : 0;
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
    o.top_k = 0; /* every member, to compare them with the hand loop's */
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
        f->hash = hash_sweep(res);
        sf_sweep_result_free(res);
    }
    f->units = (double)n * (double)sf_grid_size(g);
    sf_grid_free(g);
    sf_bars_free(b);
    return 0;
}

/* ---- paired cases: the engine and the hand loop in turns ---- */

/* Engine and loop runs alternate (E L E L ...) in one process, so a change
 * in the machine's load falls on both sides alike; each pair gives a ratio
 * loop / engine, and the child reports their median (f->extra[0]), lowest
 * (extra[1]) and highest (extra[2]) and their count (units), and extra[3] = 1 when every run of both
 * sides gave the same metrics bit for bit. */
#define MAX_PAIRS 256

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pair_summary(double *ratio, int k, figures *f)
{
    qsort(ratio, (size_t)k, sizeof *ratio, cmp_dbl);
    f->extra[0] = k % 2 ? ratio[k / 2] : (ratio[k / 2 - 1] + ratio[k / 2]) / 2;
    f->extra[1] = ratio[0];
    f->extra[2] = ratio[k - 1];
    f->units = k;
}

/* One engine backtest (as case_engine) and one hand loop with trades and
 * sf_perf_compute (as case_loop "metrics"), reps * 4 + 1 pairs. */
static int case_pair_single(size_t n, int reps, const char *arg, figures *f)
{
    (void)arg;
    sf_bars *b = gen_bars(n);
    double *eq = b ? malloc(n * sizeof *eq) : NULL;
    sf_trade *trades = malloc((n / 2 + 1) * sizeof *trades);
    sf_logic *lg = NULL;
    if (eq == NULL || trades == NULL || sf_logic_parse(sma_logic, strlen(sma_logic), &lg, NULL, NULL) != SF_OK)
        return 1;
    sf_run_opts o;
    sf_run_opts_init(&o);
    o.keep_equity = 0;
    o.keep_trades = 0;
    double ratio[MAX_PAIRS];
    int k = reps * 4 + 1, same = 1;
    for (int r = -1; r < k; r++) { /* r = -1: both sides once untimed (first touch of their memory) */
        sf_result *res = NULL;
        double t0 = now();
        if (sf_engine_run(lg, b, &o, &res, NULL) != SF_OK)
            return 1;
        double t1 = now();
        loop_sma_out out = {0};
        sf_perf p;
        loop_sma_cross(b->open, b->close, n, 10, 30, 0.0001, 10000, eq, trades, &out);
        sf_perf_compute(b->ts, eq, n, 10000, trades, out.trades, out.bars_in_pos, 252, &p);
        double t2 = now();
        if (r >= 0)
            ratio[r] = (t2 - t1) / (t1 - t0);
        same &= hash_perf(0, &res->perf) == hash_perf(0, &p);
        sf_result_free(res);
    }
    pair_summary(ratio, k, f);
    f->extra[3] = same;
    sf_logic_free(lg);
    free(trades);
    free(eq);
    sf_bars_free(b);
    return 0;
}

/* One 100-member sweep on 1 thread (as case_sweep) and the hand loop over
 * its grid with the metrics, blocks and PBO/DSR (as case_loop_grid), reps
 * pairs. */
static int case_pair_sweep(size_t n, int reps, const char *arg, figures *f)
{
    (void)arg;
    sf_bars *b = gen_bars(n);
    sf_grid *g = NULL;
    double *eq = b ? malloc(n * sizeof *eq) : NULL;
    sf_trade *trades = malloc((n / 2 + 1) * sizeof *trades);
    sf_overfit_set *set = NULL;
    if (eq == NULL || trades == NULL || sf_grid_parse(sweep_grid, strlen(sweep_grid), 0, &g, NULL) != SF_OK ||
        sf_overfit_set_new(SF_OVERFIT_BLOCKS_DEFAULT, &set, NULL) != SF_OK ||
        sf_overfit_set_resize(set, 100, NULL) != SF_OK)
        return 1;
    sf_sweep_opts so;
    sf_sweep_opts_init(&so);
    so.threads = 1;
    so.top_k = 0;
    double ratio[MAX_PAIRS];
    int same = 1;
    for (int r = 0; r < reps; r++) {
        sf_sweep_result *res = NULL;
        double t0 = now();
        if (sf_sweep_run(g, sma_logic, strlen(sma_logic), b, &so, &res, NULL, NULL) != SF_OK)
            return 1;
        double t1 = now();
        uint64_t h = 14695981039346656037u;
        for (size_t m = 0; m < 100; m++) {
            sf_perf p;
            sf_blocks blk;
            loop_member(b, 5 + m / 10, 20 + 5 * (m % 10), eq, trades, &p, &blk);
            h = hash_perf(h, &p);
            if (sf_overfit_set_put(set, m, (int64_t)m, &blk, NULL) != SF_OK)
                return 1;
        }
        sf_overfit ov;
        if (sf_overfit_compute(set, NULL, &ov, NULL) != SF_OK)
            return 1;
        double t2 = now();
        ratio[r] = (t2 - t1) / (t1 - t0);
        same &= hash_sweep(res) == hash_overfit(h, &ov);
        sf_sweep_result_free(res);
    }
    pair_summary(ratio, reps, f);
    f->extra[3] = same;
    sf_overfit_set_free(set);
    sf_grid_free(g);
    free(trades);
    free(eq);
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
        {"(d') hand loop + trades + sf_perf_compute", case_loop, "metrics"},
        {"(b) engine 5 indicators, all/any, stops", case_engine, five_logic},
        {"(c) sweep 100 combos, 1 thread", case_sweep, "1"},
        {"(c) sweep 100 combos, 2 threads", case_sweep, "2"},
        {"(f) hand loop over the 100 combos + metrics", case_loop_grid, NULL},
        {"(e) CSV load (sf_bars_load_csv_file)", case_csv, csv},
        {"(a)/(d') in turns", case_pair_single, NULL},
        {"(c 1 thread)/(f) in turns", case_pair_sweep, NULL},
    };
    enum { N_CASES = sizeof cases / sizeof cases[0], N_TABLE = 8 };
    figures f[N_CASES];
    long rss[N_CASES];
    printf("%zu bars (random walk, seed %u), best of %d runs, pid-isolated cases\n\n", n, SEED, reps);
    printf("%-45s %12s %14s %12s\n", "case", "seconds", "bars/s", "peak RSS MB");
    for (int i = 0; i < N_CASES; i++) {
        memset(&f[i], 0, sizeof f[i]);
        if (i == N_TABLE)
            printf("\nratios, engine and hand loop in turns (E L E L ...), loop time / engine time per pair:\n");
        if (run_child(&cases[i], n, reps, &f[i], &rss[i]) != 0) {
            fprintf(stderr, "bench: case \"%s\" failed\n", cases[i].label);
            return 1;
        }
        if (i < N_TABLE)
            printf("%-45s %12.4f %14.0f %12.1f\n", cases[i].label, f[i].seconds, f[i].units / f[i].seconds,
                   (double)rss[i] / 1024.0);
    }
    /* same work on both sides: the trades, the curve and every metric (and,
     * for sweep members, the block statistics and PBO/DSR) */
    printf("single backtest: engine / (hand loop + the same metrics): %.2f median of %.0f pairs "
           "(%.2f .. %.2f)  (target >= 0.80)\n",
           f[8].extra[0], f[8].units, f[8].extra[1], f[8].extra[2]);
    printf("sweep member, 1 thread: engine sweep / (hand loop + the same metrics, blocks, PBO/DSR): %.2f median of "
           "%.0f pairs (%.2f .. %.2f)  (target >= 0.80)\n",
           f[9].extra[0], f[9].units, f[9].extra[1], f[9].extra[2]);
    printf("best of each apart (table above): single %.2f, sweep member %.2f\n", f[2].seconds / f[0].seconds,
           f[6].seconds / f[4].seconds);
    printf("engine / bare hand loop (no trades, no metrics): %.2f; sf_perf_compute alone: %.4f s\n",
           f[1].seconds / f[0].seconds, f[2].extra[2]);
    printf("sweep speed-up 2 threads / 1 thread: %.2fx (indicator specs computed per sweep: %.0f)\n",
           f[4].seconds / f[5].seconds, f[4].extra[0]);
    printf("CSV: write %.3f s, load %.3f s (%.0f bars/s)\n", f[7].extra[0], f[7].seconds, f[7].units / f[7].seconds);
    int same = f[0].extra[0] == f[1].extra[0] && f[0].extra[1] == f[1].extra[1] && f[0].hash == f[2].hash;
    printf("engine vs loop: final equity %.10g vs %.10g, trades %.0f vs %.0f, metrics %s\n", f[0].extra[0],
           f[1].extra[0], f[0].extra[1], f[1].extra[1], f[0].hash == f[2].hash ? "identical" : "DIFFERENT");
    int sweep_same = f[4].hash == f[6].hash && f[5].hash == f[6].hash && f[4].hash != 0;
    same &= f[8].extra[3] == 1;
    sweep_same &= f[9].extra[3] == 1;
    printf("sweep (1 and 2 threads) vs loop: every member's metrics, PBO and DSR %s\n",
           sweep_same ? "identical" : "DIFFERENT");
    if (!same || !sweep_same) {
        fprintf(stderr, "bench: the engine and the hand loop disagree: the ratios above compare different work\n");
        return 1;
    }
    return 0;
}
