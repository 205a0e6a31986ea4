/* local: sfctl backtest / sweep / indicator on local files; see local.h.
 *
 * Each command: parse options from its table with getopt_long, load the
 * inputs (every size bounded), run the engine, print. Errors are printed
 * once, here, as "sfctl: <message>". */
#include "local.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sf/bars.h"
#include "sf/buf.h"
#include "sf/engine.h"
#include "sf/err.h"
#include "sf/grid.h"
#include "sf/indicator.h"
#include "sf/logic.h"
#include "sf/rank.h"
#include "sf/result.h"
#include "sf/sweep.h"
#include "sf/time.h"
#include "cli.h"
#include "progress.h"
#include "table.h"

#define CTL_MAX_OPTS 16
#define CTL_SPEC_MAX 4096
#define CTL_JSON_MAX ((size_t)1 << 34) /* 16 GiB: bigger than any equity curve we load */

/* ---- messages and options ---- */

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sfctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* An sf_err: bad input is a usage error (2), the rest a failure (1). */
static int fail_err(const sf_err *err)
{
    int input = err->code == SF_ERR_INVALID || err->code == SF_ERR_PARSE || err->code == SF_ERR_LIMIT ||
                err->code == SF_ERR_NOTFOUND || err->code == SF_ERR_IO;
    return fail(input ? CTL_EXIT_USAGE : CTL_EXIT_FAIL, "%s", err->msg[0] ? err->msg : sf_status_str(err->code));
}

/* Returns -1 to go on, else the exit status (0 after --help). */
static int parse_opts(int argc, char **argv, const cli_opt *opts, size_t n, const char *usage)
{
    struct option lo[CTL_MAX_OPTS + 2];
    size_t k = 0;
    for (; k < n && k < CTL_MAX_OPTS; k++)
        lo[k] = (struct option){opts[k].name, opts[k].has_arg ? required_argument : no_argument, NULL, 256 + (int)k};
    lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[k] = (struct option){NULL, 0, NULL, 0};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            cli_print_opts(stdout, opts, n);
            return CTL_EXIT_OK;
        }
        if (c == '?' || c == ':')
            return fail(CTL_EXIT_USAGE, "%s: %s %.64s (see sfctl %s --help)", argv[0],
                        c == '?' ? "unknown option" : "missing value for", argv[optind - 1], argv[0]);
        const cli_opt *o = &opts[c - 256];
        if (o->has_arg)
            *o->value = optarg;
        else
            *o->flag = 1;
    }
    if (optind < argc)
        return fail(CTL_EXIT_USAGE, "%s: unexpected argument \"%.64s\"", argv[0], argv[optind]);
    return -1;
}

static int need(const char *cmd, const char *value, const char *name)
{
    if (value != NULL && value[0] != '\0')
        return -1;
    return fail(CTL_EXIT_USAGE, "%s: --%s is required (see sfctl %s --help)", cmd, name, cmd);
}

/* A whole decimal number in [min, max]. */
static int parse_count(const char *cmd, const char *name, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return fail(CTL_EXIT_USAGE, "%s: --%s: must be a whole number between %ld and %ld (got \"%.32s\")", cmd, name,
                    min, max, s);
    *out = v;
    return -1;
}

/* ---- inputs ---- */

/* Read a whole file ("-": standard input) of at most max bytes. */
static int read_text(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return fail(CTL_EXIT_USAGE, "could not open \"%s\": %s", path, sf_err_errno_text(errno).text);
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        if (f != stdin)
            fclose(f);
        return fail(CTL_EXIT_FAIL, "out of memory reading \"%s\"", path);
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad || n > max) {
        free(buf);
        return bad ? fail(CTL_EXIT_USAGE, "could not read \"%s\"", path)
                   : fail(CTL_EXIT_USAGE, "\"%s\" is larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return -1;
}

/* Print "sfctl: <prefix>path: message" for each logic error. */
static int fail_logic(const char *prefix, const sf_logic_errors *errs, const sf_err *err)
{
    if (errs->count == 0)
        return fail_err(err);
    for (int i = 0; i < errs->count; i++)
        fprintf(stderr, "sfctl: %s%s%s%s\n", prefix, errs->path[i], errs->path[i][0] ? ": " : "", errs->message[i]);
    if (errs->dropped > 0)
        fprintf(stderr, "sfctl: (and %d more errors)\n", errs->dropped);
    return CTL_EXIT_USAGE;
}

static int load_logic(const char *path, char **text, size_t *len, sf_logic **lg)
{
    int rc = read_text(path, SF_LOGIC_MAX_INPUT, text, len);
    if (rc >= 0)
        return rc;
    sf_logic_errors errs;
    memset(&errs, 0, sizeof errs);
    sf_err err;
    sf_err_clear(&err);
    if (sf_logic_parse(*text, *len, lg, &errs, &err) == SF_OK)
        return -1;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%.250s: ", path);
    return fail_logic(prefix, &errs, &err);
}

static int load_bars(const char *path, sf_bars **bars)
{
    sf_err err;
    sf_err_clear(&err);
    if (sf_bars_load_csv_file(path, SF_BARS_MAX_DEFAULT, bars, &err) != SF_OK)
        return fail_err(&err);
    if ((*bars)->n == 0) {
        sf_bars_free(*bars);
        *bars = NULL;
        return fail(CTL_EXIT_USAGE, "%s: no bars", path);
    }
    return -1;
}

static int write_out(const sf_buf *b)
{
    if (fwrite(sf_buf_str(b), 1, b->len, stdout) != b->len || fflush(stdout) != 0)
        return fail(CTL_EXIT_FAIL, "could not write the output: %s", sf_err_errno_text(errno).text);
    return CTL_EXIT_OK;
}

/* ---- readable tables (the metrics and leaderboards: table.h) ---- */

static void iso(int64_t t, char *buf)
{
    sf_time_format_iso8601(t, buf, SF_TIME_ISO_MAX);
}

static void print_trades(const sf_result *r)
{
    printf("\n  %4s  %-20s %12s  %-20s %12s %14s %12s  %-5s  %s\n", "#", "entry time", "entry", "exit time", "exit",
           "qty", "pnl", "side", "exit reason");
    for (size_t i = 0; i < r->n_trades && r->trades != NULL; i++) {
        const sf_trade *t = &r->trades[i];
        char et[SF_TIME_ISO_MAX], xt[SF_TIME_ISO_MAX];
        iso(t->entry_time, et);
        iso(t->exit_time, xt);
        printf("  %4zu  %-20s %12.4f  %-20s %12.4f %14.6f %12.2f  %-5s  %s\n", i + 1, et, t->entry_price, xt,
               t->exit_price, t->qty, t->pnl, t->side < 0 ? "short" : "long", sf_exit_reason_name(t->exit_reason));
    }
}

/* ---- backtest ---- */

static const char backtest_usage[] = "usage: sfctl backtest --logic L.json --data bars.csv [--json] [--trades]\n"
                                     "\n"
                                     "Runs the logic over the CSV bars (timestamp,open,high,low,close,volume)\n"
                                     "on this machine, with no servers, and prints its metrics.\n";

static int backtest_run(const sf_logic *lg, const sf_bars *bars, int json, int trades)
{
    sf_result *r = NULL;
    sf_err err;
    sf_err_clear(&err);
    if (sf_engine_run(lg, bars, NULL, &r, &err) != SF_OK)
        return fail_err(&err);
    int rc = CTL_EXIT_OK;
    if (json) {
        sf_buf b;
        sf_buf_init(&b, CTL_JSON_MAX);
        rc = sf_result_to_json(r, 1, 1, &b, &err) == SF_OK && sf_buf_puts(&b, "\n", &err) == SF_OK ? write_out(&b)
                                                                                                   : fail_err(&err);
        sf_buf_destroy(&b);
    } else {
        char a[SF_TIME_ISO_MAX], z[SF_TIME_ISO_MAX];
        iso(bars->ts[0], a);
        iso(bars->ts[bars->n - 1], z);
        printf("logic %s: %zu bars, %s .. %s\n\n", lg->name, bars->n, a, z);
        tbl_metrics(&r->perf);
        if (trades)
            print_trades(r);
        if (fflush(stdout) != 0)
            rc = fail(CTL_EXIT_FAIL, "could not write the output: %s", sf_err_errno_text(errno).text);
    }
    sf_result_free(r);
    return rc;
}

int ctl_backtest(int argc, char **argv)
{
    const char *logic = NULL, *data = NULL;
    int json = 0, trades = 0;
    const cli_opt opts[] = {
        {"logic", 1, &logic, NULL, "FILE", "trading logic JSON (\"-\" reads standard input)"},
        {"data", 1, &data, NULL, "FILE", "OHLCV CSV file (\"-\" reads standard input)"},
        {"json", 0, NULL, &json, NULL, "print one JSON object {\"metrics\", \"trades\", \"equity\"}"},
        {"trades", 0, NULL, &trades, NULL, "also list the trades (table output)"},
    };
    int rc = parse_opts(argc, argv, opts, sizeof opts / sizeof opts[0], backtest_usage);
    if (rc < 0)
        rc = need(argv[0], logic, "logic");
    if (rc < 0)
        rc = need(argv[0], data, "data");
    if (rc >= 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    sf_logic *lg = NULL;
    sf_bars *bars = NULL;
    rc = load_logic(logic, &text, &len, &lg);
    if (rc < 0)
        rc = load_bars(data, &bars);
    if (rc < 0)
        rc = backtest_run(lg, bars, json, trades);
    sf_bars_free(bars);
    sf_logic_free(lg);
    free(text);
    return rc;
}

/* ---- sweep ---- */

static const char sweep_usage[] = "usage: sfctl sweep --logic L.json --data bars.csv --grid G.json\n"
                                  "                   [--threads N] [--top K] [--by METRIC] [--blocks S]\n"
                                  "                   [--effective-trials N] [--json]\n"
                                  "\n"
                                  "Runs every combination of the grid over the CSV bars on this machine and\n"
                                  "prints the leaderboard, best first. Its progress goes to stderr: a line\n"
                                  "rewritten on a terminal, \"progress:\" lines (every 10%) in a pipe.\n";

typedef struct sweep_args {
    const char *logic, *data, *grid, *threads, *top, *by, *blocks, *trials;
    int json;
} sweep_args;

/* Called from the sweep's worker threads (progress.h keeps the count from
 * going backwards). */
static void on_progress(void *user, uint64_t done, uint64_t total)
{
    ctl_progress_update(user, done, total, NULL);
}

static void print_leaderboard(const sf_sweep_result *s)
{
    printf("%zu combinations, ranked by %s\n\n", s->n_combos, s->rank_by);
    tbl_board_head(s->rank_by, 0);
    for (size_t i = 0; i < s->n_members; i++) {
        const sf_sweep_member *m = &s->members[i];
        tbl_board_row(s->rank_by, m->rank, m->index, NULL, &m->perf, m->params_json);
    }
    if (s->has_overfit)
        tbl_overfit(&s->overfit);
}

static int sweep_print(const sf_sweep_result *s, int json)
{
    if (!json) {
        print_leaderboard(s);
        return fflush(stdout) == 0
                   ? CTL_EXIT_OK
                   : fail(CTL_EXIT_FAIL, "could not write the output: %s", sf_err_errno_text(errno).text);
    }
    sf_buf b;
    sf_buf_init(&b, CTL_JSON_MAX);
    sf_err err;
    sf_err_clear(&err);
    int rc =
        sf_sweep_to_json(s, &b, &err) == SF_OK && sf_buf_puts(&b, "\n", &err) == SF_OK ? write_out(&b) : fail_err(&err);
    sf_buf_destroy(&b);
    return rc;
}

/* The first problem in err (it names the combination), then the rest. */
static int fail_sweep(const sf_logic_errors *errs, const sf_err *err)
{
    int rc = fail_err(err);
    for (int i = 1; i < errs->count; i++)
        fprintf(stderr, "sfctl: %s%s%s\n", errs->path[i], errs->path[i][0] ? ": " : "", errs->message[i]);
    return rc;
}

/* o->progress_user: the started ctl_progress, ended here. */
static int sweep_exec(const sweep_args *a, const sf_sweep_opts *o)
{
    char *logic = NULL, *gtext = NULL;
    size_t llen = 0, glen = 0;
    sf_grid *grid = NULL;
    sf_bars *bars = NULL;
    sf_sweep_result *res = NULL;
    sf_logic_errors errs;
    memset(&errs, 0, sizeof errs);
    sf_err err;
    sf_err_clear(&err);
    int rc = read_text(a->logic, SF_LOGIC_MAX_INPUT, &logic, &llen);
    if (rc < 0)
        rc = read_text(a->grid, SF_GRID_MAX_INPUT, &gtext, &glen);
    if (rc < 0 && sf_grid_parse(gtext, glen, 0, &grid, &err) != SF_OK)
        rc = fail(err.code == SF_ERR_NOMEM ? CTL_EXIT_FAIL : CTL_EXIT_USAGE, "%.200s: %s", a->grid, err.msg);
    if (rc < 0)
        rc = load_bars(a->data, &bars);
    sf_status run = rc < 0 ? sf_sweep_run(grid, logic, llen, bars, o, &res, &errs, &err) : SF_OK;
    ctl_progress_end(o->progress_user); /* its line ends before any other output */
    if (run != SF_OK)
        rc = fail_sweep(&errs, &err);
    if (rc < 0)
        rc = sweep_print(res, a->json);
    sf_sweep_result_free(res);
    sf_bars_free(bars);
    sf_grid_free(grid);
    free(gtext);
    free(logic);
    return rc;
}

int ctl_sweep(int argc, char **argv)
{
    sweep_args a = {0};
    const cli_opt opts[] = {
        {"logic", 1, &a.logic, NULL, "FILE", "trading logic JSON"},
        {"data", 1, &a.data, NULL, "FILE", "OHLCV CSV file (this makes the sweep local)"},
        {"grid", 1, &a.grid, NULL, "FILE",
         "sweep grid JSON: {\"indicators.fast.period\": [5, 10],\n"
         "\"indicators.slow.period\": {\"from\": 20, \"to\": 100, \"step\": 10}}"},
        {"threads", 1, &a.threads, NULL, "N", "worker threads, 1-256 (default 1)"},
        {"top", 1, &a.top, NULL, "K", "members to print, 1 to 1000 (default 10), as on the farm"},
        {"by", 1, &a.by, NULL, "METRIC",
         "rank by one of: " SF_RANK_LIST "\n(default sharpe; lowest first: " SF_RANK_LOWER_LIST
         ";\nvalues that are not numbers last)"},
        {"json", 0, NULL, &a.json, NULL, "print the leaderboard as one JSON object"},
        {"blocks", 1, &a.blocks, NULL, "S",
         "overfitting statistics (PBO, DSR) over S blocks of the\nreturns: even, 2 to 32 (default 16)"},
        {"effective-trials", 1, &a.trials, NULL, "N", "trials the DSR deflates for (default: the members)"},
    };
    int rc = parse_opts(argc, argv, opts, sizeof opts / sizeof opts[0], sweep_usage);
    const char *req[3][2] = {{a.logic, "logic"}, {a.data, "data"}, {a.grid, "grid"}};
    for (int i = 0; i < 3 && rc < 0; i++)
        rc = need(argv[0], req[i][0], req[i][1]);
    sf_sweep_opts o;
    sf_sweep_opts_init(&o);
    long threads = 1;
    size_t top = SF_RANK_TOP_DEFAULT;
    sf_err err;
    sf_err_clear(&err);
    if (rc < 0 && a.threads)
        rc = parse_count(argv[0], "threads", a.threads, 1, SF_SWEEP_MAX_THREADS, &threads);
    if (rc < 0 && sf_rank_top_parse(a.top, &top, &err) != SF_OK)
        rc = fail(CTL_EXIT_USAGE, "%s: --%s", argv[0], err.msg);
    if (rc < 0 && a.by && sf_rank_find(a.by) == NULL)
        rc = fail(CTL_EXIT_USAGE, "%s: --by: unknown metric \"%.40s\" (one of %s)", argv[0], a.by, SF_RANK_LIST);
    long blocks = SF_OVERFIT_BLOCKS_DEFAULT, trials = 0;
    if (rc < 0 && a.blocks)
        rc = parse_count(argv[0], "blocks", a.blocks, SF_OVERFIT_BLOCKS_MIN, SF_OVERFIT_BLOCKS_MAX, &blocks);
    if (rc < 0 && sf_overfit_blocks_check(blocks, &err) != SF_OK)
        rc = fail(CTL_EXIT_USAGE, "%s: --%s", argv[0], err.msg);
    if (rc < 0 && a.trials)
        rc = parse_count(argv[0], "effective-trials", a.trials, 1, 1000000000, &trials);
    if (rc >= 0)
        return rc;
    o.blocks = (int)blocks;
    o.effective_trials = (double)trials;
    o.threads = (int)threads;
    o.top_k = top;
    o.rank_by = a.by;
    ctl_progress pr;
    ctl_progress_start(&pr, "sweep", "members", 0, 0);
    o.progress = on_progress;
    o.progress_user = &pr;
    return sweep_exec(&a, &o);
}

/* ---- indicator ---- */

static const char indicator_usage[] =
    "usage: sfctl indicator --data bars.csv --spec '{\"type\": \"rsi\", \"period\": 14}'\n"
    "\n"
    "Prints the indicator's outputs over the CSV bars as CSV:\n"
    "timestamp,<output>... with empty cells before the indicator is defined.\n"
    "The spec is an entry of a logic's \"indicators\" object (type, source,\n"
    "parameters); missing parameters take their defaults.\n";

/* Compile the spec by wrapping it into the smallest logic that uses it. */
static int spec_compile(const char *spec, sf_logic **lg)
{
    size_t n = strlen(spec);
    if (n > CTL_SPEC_MAX)
        return fail(CTL_EXIT_USAGE, "indicator: --spec is longer than %d bytes", CTL_SPEC_MAX);
    size_t i = strspn(spec, " \t\r\n");
    if (spec[i] != '{')
        return fail(CTL_EXIT_USAGE,
                    "indicator: --spec: must be a JSON object such as {\"type\": \"sma\", \"period\": 20}");
    char json[CTL_SPEC_MAX + 128];
    int len = snprintf(json, sizeof json,
                       "{\"name\": \"indicator\", \"indicators\": {\"spec\": %s},\n"
                       "\"entry\": {\"gt\": [\"close\", 0]}}",
                       spec);
    sf_logic_errors errs;
    memset(&errs, 0, sizeof errs);
    sf_err err;
    sf_err_clear(&err);
    if (sf_logic_parse(json, (size_t)len, lg, &errs, &err) == SF_OK)
        return -1;
    if (err.code == SF_ERR_PARSE)
        return fail(CTL_EXIT_USAGE, "indicator: --spec: not valid JSON");
    for (int k = 0; k < errs.count; k++) {
        const char *p = errs.path[k];
        const char *rest = strncmp(p, "indicators.spec", 15) == 0 ? p + 15 : p;
        fprintf(stderr, "sfctl: indicator: spec%s: %s\n", rest, errs.message[k]);
    }
    return errs.count ? CTL_EXIT_USAGE : fail_err(&err);
}

static int indicator_print(const sf_logic *lg, const sf_bars *bars)
{
    const sf_ind_spec *spec = &lg->indicators[0].spec;
    const sf_ind_info *info = sf_ind_info_get(spec->type);
    double *block = malloc((size_t)info->n_outputs * bars->n * sizeof(double));
    if (block == NULL)
        return fail(CTL_EXIT_FAIL, "out of memory for %zu bars", bars->n);
    double *outs[SF_IND_MAX_OUTPUTS] = {0};
    for (int k = 0; k < info->n_outputs; k++)
        outs[k] = block + (size_t)k * bars->n;
    sf_err err;
    sf_err_clear(&err);
    if (sf_ind_compute(spec, bars, outs, &err) != SF_OK) {
        free(block);
        return fail_err(&err);
    }
    printf("timestamp");
    for (int k = 0; k < info->n_outputs; k++)
        printf(",%s", info->outputs[k]);
    putchar('\n');
    for (size_t i = 0; i < bars->n; i++) {
        char t[SF_TIME_ISO_MAX];
        iso(bars->ts[i], t);
        fputs(t, stdout);
        for (int k = 0; k < info->n_outputs; k++) {
            if (isfinite(outs[k][i]))
                printf(",%.17g", outs[k][i]);
            else
                putchar(',');
        }
        putchar('\n');
    }
    free(block);
    return fflush(stdout) == 0 ? CTL_EXIT_OK
                               : fail(CTL_EXIT_FAIL, "could not write the output: %s", sf_err_errno_text(errno).text);
}

int ctl_indicator(int argc, char **argv)
{
    const char *data = NULL, *spec = NULL;
    const cli_opt opts[] = {{"data", 1, &data, NULL, "FILE", "OHLCV CSV file (\"-\" reads standard input)"},
                            {"spec", 1, &spec, NULL, "JSON", "indicator spec"}};
    int rc = parse_opts(argc, argv, opts, sizeof opts / sizeof opts[0], indicator_usage);
    if (rc < 0)
        rc = need(argv[0], data, "data");
    if (rc < 0)
        rc = need(argv[0], spec, "spec");
    if (rc >= 0)
        return rc;
    sf_logic *lg = NULL;
    sf_bars *bars = NULL;
    rc = spec_compile(spec, &lg);
    if (rc < 0)
        rc = load_bars(data, &bars);
    if (rc < 0)
        rc = indicator_print(lg, bars);
    sf_bars_free(bars);
    sf_logic_free(lg);
    return rc;
}
