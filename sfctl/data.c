/* sfctl data: import, fetch and list data sets; see data.h. */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "progress.h"
#include "sf/bars.h"
#include "sf/config.h"
#include "sf/dataset.h"
#include "sf/time.h"

#define FETCH_MAX_DEFAULT ((int64_t)256 << 20)
#define READ_CHUNK ((size_t)1 << 20)

static const char data_usage[] =
    "usage: sfctl data import --symbol S --timeframe TF FILE.csv\n"
    "       sfctl data fetch --symbol S --timeframe TF URL [--max-bytes N] [--timeout-ms MS]\n"
    "       sfctl data list\n"
    "\n"
    "Market data sets in PostgreSQL (DATABASE_URL). The CSV has the header\n"
    "timestamp,open,high,low,close,volume (ISO-8601 UTC or Unix seconds, increasing);\n"
    "it is checked whole first, then replaces the data set's bars in one transaction\n"
    "and bumps its version. fetch downloads the CSV over HTTP(S) first. import shows\n"
    "the bytes read and the insert on stderr (a line rewritten on a terminal, plain\n"
    "\"progress:\" lines in a pipe).\n";

/* Each subcommand's own --help (cli_parse adds its options); `sfctl data
 * --help` prints data_usage, then all of them. */
static const char import_usage[] =
    "usage: sfctl data import --symbol S --timeframe TF FILE.csv\n\nImport a CSV file (\"-\": standard input).\n";
static const char fetch_usage[] =
    "usage: sfctl data fetch --symbol S --timeframe TF URL [--max-bytes N] [--timeout-ms MS]\n"
    "\nDownload a CSV file over HTTP(S) and import it.\n";
static const char list_usage[] = "usage: sfctl data list\n\nList the data sets: version, bars, first and last time.\n";

#define OPT_SYMBOL(v)                                                                                                  \
    {                                                                                                                  \
        "symbol", 1, &(v), NULL, "S", "the data set's symbol (e.g. BTCUSDT)"                                           \
    }
#define OPT_TIMEFRAME(v)                                                                                               \
    {                                                                                                                  \
        "timeframe", 1, &(v), NULL, "TF", "its timeframe (e.g. 1h, 1d)"                                                \
    }

static int names_ok(const char *symbol, const char *timeframe)
{
    sf_err err = {0};
    if (!cli_need("data", symbol, "symbol") || !cli_need("data", timeframe, "timeframe"))
        return 0;
    if (sf_dataset_validate_symbol(symbol, &err) != SF_OK || sf_dataset_validate_timeframe(timeframe, &err) != SF_OK) {
        cli_fail(CTL_EXIT_USAGE, "data: %s", err.msg);
        return 0;
    }
    return 1;
}

/* Import parsed bars (consumed) and report. */
static int import_bars(const char *symbol, const char *timeframe, sf_bars *bars)
{
    sf_db *db = NULL;
    int rc = cli_db_open(&db);
    if (rc >= 0) {
        sf_bars_free(bars);
        return rc;
    }
    sf_dataset_info info;
    sf_err err = {0};
    ctl_progress pr;
    char state[64];
    ctl_progress_start(&pr, "data import", "", 0, 0);
    snprintf(state, sizeof state, "inserting %zu bars", bars->n);
    ctl_progress_state(&pr, state);
    sf_status st = sf_dataset_import(db, symbol, timeframe, bars, &info, &err);
    ctl_progress_state(&pr, st == SF_OK ? "imported" : "failed");
    ctl_progress_end(&pr);
    sf_db_close(db);
    size_t n = bars->n;
    sf_bars_free(bars);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    printf("imported %zu bars into %s %s (version %lld)\n", n, info.symbol, info.timeframe, (long long)info.version);
    return CTL_EXIT_OK;
}

/* Read a regular file of size bytes into *text, the bytes read shown
 * against its size (progress.h); -1 or an exit status. */
static int read_shown(FILE *f, const char *path, size_t size, char **text)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return cli_fail(CTL_EXIT_FAIL, "out of memory reading %s", path);
    ctl_progress pr;
    ctl_progress_start(&pr, "data import: read", "", size, CTL_PROGRESS_BYTES);
    size_t n = 0, got = 1;
    while (n < size && got > 0) {
        got = fread(buf + n, 1, size - n < READ_CHUNK ? size - n : READ_CHUNK, f);
        n += got;
        ctl_progress_update(&pr, n, 0, NULL);
    }
    ctl_progress_end(&pr);
    if (n < size) {
        free(buf);
        return cli_fail(CTL_EXIT_FAIL, "could not read %s: %s", path, ferror(f) ? "read error" : "file shrank");
    }
    buf[n] = '\0';
    *text = buf;
    return -1;
}

/* The bars of a CSV file; standard input ("-") and other files that are
 * not regular are read without progress. -1 with *bars, or an exit status. */
static int load_csv(const char *path, sf_bars **bars)
{
    sf_err err = {0};
    struct stat sb;
    FILE *f = strcmp(path, "-") == 0 ? NULL : fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > SF_BARS_READ_MAX) {
        if (f)
            fclose(f);
        sf_status st = sf_bars_load_csv_file(path, SF_BARS_MAX_DEFAULT, bars, &err);
        return st == SF_OK ? -1 : cli_fail(cli_status_exit(st), "%s", err.msg);
    }
    char *text = NULL;
    int rc = read_shown(f, path, (size_t)sb.st_size, &text);
    fclose(f);
    if (rc >= 0)
        return rc;
    sf_status st = sf_bars_parse_csv(text, (size_t)sb.st_size, SF_BARS_MAX_DEFAULT, bars, &err);
    free(text);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s: %s", path, err.msg);
    return -1;
}

static int data_import(int argc, char **argv)
{
    const char *symbol = NULL, *timeframe = NULL, *pos[1];
    size_t npos = 0;
    const cli_opt opts[] = {OPT_SYMBOL(symbol), OPT_TIMEFRAME(timeframe)};
    int rc = cli_parse(argc, argv, 2, opts, 2, import_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (!names_ok(symbol, timeframe))
        return CTL_EXIT_USAGE;
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "data import: give the CSV file (see --help)");
    sf_bars *bars = NULL;
    int lrc = load_csv(pos[0], &bars);
    return lrc >= 0 ? lrc : import_bars(symbol, timeframe, bars);
}

/* GET url into resp; returns -1 on a 200, else the exit status. */
static int fetch_url(const char *url, int64_t max_bytes, int64_t timeout_ms, sf_http_response *resp)
{
    sf_http *http = NULL;
    sf_err err = {0};
    sf_http_opts o = {.connect_timeout_ms = 10000,
                      .timeout_ms = (long)timeout_ms,
                      .max_body = (size_t)max_bytes,
                      .user_agent = "sfctl",
                      .follow_redirects = 1};
    sf_status st = sf_http_global_init(&err);
    if (st == SF_OK)
        st = sf_http_new(&o, &http, &err);
    if (st == SF_OK)
        st = sf_http_request(http, "GET", url, NULL, NULL, 0, resp, &err);
    sf_http_free(http);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "data fetch: %s", err.msg);
    if (resp->status != 200)
        return cli_fail(cli_http_exit(resp->status), "data fetch: GET %s: HTTP %ld", url, resp->status);
    return -1;
}

static int data_fetch(int argc, char **argv)
{
    const char *symbol = NULL, *timeframe = NULL, *max_s = NULL, *timeout_s = NULL, *pos[1];
    size_t npos = 0;
    const cli_opt opts[] = {OPT_SYMBOL(symbol),
                            OPT_TIMEFRAME(timeframe),
                            {"max-bytes", 1, &max_s, NULL, "N", "refuse a download larger than N bytes (256 MiB)"},
                            {"timeout-ms", 1, &timeout_s, NULL, "MS", "the download's timeout (120000)"}};
    int rc = cli_parse(argc, argv, 2, opts, 4, fetch_usage, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    int64_t max_bytes = FETCH_MAX_DEFAULT, timeout_ms = 120000;
    sf_err err = {0};
    if (!names_ok(symbol, timeframe))
        return CTL_EXIT_USAGE;
    if (npos != 1)
        return cli_fail(CTL_EXIT_USAGE, "data fetch: give the URL (see --help)");
    if (max_s && sf_config_parse_int(max_s, 1, (int64_t)1 << 32, &max_bytes, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "data fetch: --max-bytes: %s", err.msg);
    if (timeout_s && sf_config_parse_int(timeout_s, 100, 3600000, &timeout_ms, &err) != SF_OK)
        return cli_fail(CTL_EXIT_USAGE, "data fetch: --timeout-ms: %s", err.msg);
    sf_http_response resp;
    sf_http_response_init(&resp);
    rc = fetch_url(pos[0], max_bytes, timeout_ms, &resp);
    sf_bars *bars = NULL;
    if (rc < 0 && sf_bars_parse_csv(resp.body.data ? resp.body.data : "", resp.body.len, SF_BARS_MAX_DEFAULT, &bars,
                                    &err) != SF_OK)
        rc = cli_fail(CTL_EXIT_USAGE, "data fetch: %s: %s", pos[0], err.msg);
    sf_http_response_destroy(&resp);
    return rc >= 0 ? rc : import_bars(symbol, timeframe, bars);
}

static int data_list(int argc, char **argv)
{
    const char *pos[1];
    size_t npos = 0;
    int rc = cli_parse(argc, argv, 2, NULL, 0, list_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    sf_db *db = NULL;
    if ((rc = cli_db_open(&db)) >= 0)
        return rc;
    sf_dataset_info *list = calloc(SF_DATASET_LIST_MAX, sizeof *list);
    size_t n = 0;
    int more = 0;
    sf_err err = {0};
    sf_status st = list ? sf_dataset_list(db, list, SF_DATASET_LIST_MAX, &n, &more, &err) : SF_ERR_NOMEM;
    sf_db_close(db);
    if (st != SF_OK) {
        free(list);
        return cli_fail(cli_status_exit(st), "%s", st == SF_ERR_NOMEM ? "out of memory" : err.msg);
    }
    printf("%-16s %-9s %7s %10s  %-20s  %-20s\n", "SYMBOL", "TIMEFRAME", "VERSION", "BARS", "FIRST", "LAST");
    for (size_t i = 0; i < n; i++) {
        char first[32], last[32];
        sf_time_format_iso8601(list[i].first_ts, first, sizeof first);
        sf_time_format_iso8601(list[i].last_ts, last, sizeof last);
        printf("%-16s %-9s %7lld %10lld  %-20s  %-20s\n", list[i].symbol, list[i].timeframe, (long long)list[i].version,
               (long long)list[i].bars, first, last);
    }
    if (more)
        fprintf(stderr, "sfctl: more than %d data sets; the rest are not shown\n", SF_DATASET_LIST_MAX);
    free(list);
    return CTL_EXIT_OK;
}

static const struct {
    const char *verb;
    int (*fn)(int argc, char **argv);
} DATA_COMMANDS[] = {{"import", data_import}, {"fetch", data_fetch}, {"list", data_list}};

int ctl_data(int argc, char **argv)
{
    for (size_t k = 0; argc >= 2 && k < sizeof DATA_COMMANDS / sizeof DATA_COMMANDS[0]; k++)
        if (strcmp(argv[1], DATA_COMMANDS[k].verb) == 0)
            return DATA_COMMANDS[k].fn(argc, argv);
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fputs(data_usage, help ? stdout : stderr);
    for (size_t k = 0; help && k < sizeof DATA_COMMANDS / sizeof DATA_COMMANDS[0]; k++) {
        char a0[] = "data", a2[] = "--help", verb[8];
        snprintf(verb, sizeof verb, "%s", DATA_COMMANDS[k].verb);
        char *sub[] = {a0, verb, a2, NULL};
        fputc('\n', stdout);
        DATA_COMMANDS[k].fn(3, sub);
    }
    return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}
