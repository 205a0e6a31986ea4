/* cli: helpers of the sfctl server commands; see cli.h. */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/config.h"
#include "sf/jsonnum.h"
#include "sf/queue.h"
#include "sf/redis.h"

#define CLI_MAX_OPTS 24

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sfctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cli_status_exit(sf_status st)
{
    static const struct {
        sf_status st;
        ctl_exit code;
    } MAP[] = {
        {SF_ERR_AUTH, CTL_EXIT_AUTH},
        {SF_ERR_NOTFOUND, CTL_EXIT_NOTFOUND},
        {SF_ERR_UNAVAILABLE, CTL_EXIT_UNREACHABLE},
        {SF_ERR_TIMEOUT, CTL_EXIT_UNREACHABLE},
        {SF_ERR_HTTP, CTL_EXIT_UNREACHABLE},
        {SF_ERR_INVALID, CTL_EXIT_USAGE},
        {SF_ERR_PARSE, CTL_EXIT_USAGE},
        {SF_ERR_LIMIT, CTL_EXIT_USAGE},
        {SF_ERR_CONFLICT, CTL_EXIT_USAGE},
        {SF_ERR_CONFIG, CTL_EXIT_USAGE},
    };
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (st == MAP[i].st)
            return MAP[i].code;
    return CTL_EXIT_FAIL;
}

int cli_http_exit(long status)
{
    if (status == 401 || status == 403)
        return CTL_EXIT_AUTH;
    if (status == 404)
        return CTL_EXIT_NOTFOUND;
    if (status >= 400 && status < 500)
        return CTL_EXIT_USAGE;
    return status >= 500 && status < 600 ? CTL_EXIT_UNREACHABLE : CTL_EXIT_FAIL;
}

int cli_need(const char *cmd, const char *value, const char *name)
{
    if (value != NULL && value[0] != '\0')
        return 1;
    cli_fail(CTL_EXIT_USAGE, "%s: --%s is required (see sfctl %s --help)", cmd, name, cmd);
    return 0;
}

static int take_opt(const cli_opt *o, const char *arg)
{
    if (o->value)
        *o->value = arg;
    if (o->flag)
        *o->flag = 1;
    return 0;
}

void cli_print_opts(FILE *f, const cli_opt *opts, size_t n_opts)
{
    fputs("\noptions:\n", f);
    for (size_t i = 0; i <= n_opts; i++) {
        const char *name = i < n_opts ? opts[i].name : "help";
        const char *help = i < n_opts ? opts[i].help : "show this help";
        const char *arg = i < n_opts && opts[i].has_arg ? opts[i].arg : NULL;
        char head[64];
        int len = snprintf(head, sizeof head, "--%s%s%s", name, arg ? " " : "", arg ? arg : "");
        if (len <= 20)
            fprintf(f, "  %-20s  ", head);
        else
            fprintf(f, "  %s\n%24s", head, "");
        for (const char *p = help ? help : "", *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
            nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);
            fprintf(f, "%s%*s%.*s", p == help ? "" : "\n", p == help ? 0 : 24, "", n, p);
        }
        fputc('\n', f);
    }
}

int cli_parse(int argc, char **argv, int first, const cli_opt *opts, size_t n_opts, const char *usage, const char **pos,
              size_t max_pos, size_t *n_pos)
{
    struct option lo[CLI_MAX_OPTS + 2];
    size_t k = 0;
    for (; k < n_opts && k < CLI_MAX_OPTS; k++)
        lo[k] = (struct option){opts[k].name, opts[k].has_arg ? required_argument : no_argument, NULL, 1000 + (int)k};
    lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[k] = (struct option){NULL, 0, NULL, 0};
    *n_pos = 0;
    optind = 0; /* full re-initialisation (glibc) */
    opterr = 0;
    int c, sub_argc = argc - first + 1;
    char **sub_argv = argv + first - 1;
    while ((c = getopt_long(sub_argc, sub_argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            cli_print_opts(stdout, opts, n_opts);
            return CTL_EXIT_OK;
        }
        if (c >= 1000)
            take_opt(&opts[c - 1000], optarg);
        else if (c == ':')
            return cli_fail(CTL_EXIT_USAGE, "%s needs a value (see --help)", sub_argv[optind - 1]);
        else
            return cli_fail(CTL_EXIT_USAGE, "unknown option %s (see --help)", sub_argv[optind - 1]);
    }
    for (int i = optind; i < sub_argc; i++) {
        if (*n_pos >= max_pos)
            return cli_fail(CTL_EXIT_USAGE, "unexpected argument \"%.64s\" (see --help)", sub_argv[i]);
        pos[(*n_pos)++] = sub_argv[i];
    }
    return -1;
}

/* ---- configuration --------------------------------------------------------------- */

typedef struct db_cfg {
    char *database_url;
} db_cfg;

static int load_config(const sf_config_var *vars, size_t n, void *out)
{
    sf_buf errors;
    sf_buf_init(&errors, 1 << 14);
    sf_status st = sf_config_load(vars, n, out, &errors);
    if (st != SF_OK) {
        const char *p = sf_buf_str(&errors);
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len > 0)
                fprintf(stderr, "sfctl: %.*s\n", (int)len, p);
            p += len + (nl != NULL);
        }
    }
    sf_buf_destroy(&errors);
    return st == SF_OK;
}

int cli_db_open(sf_db **db)
{
    static const sf_config_var vars[] = {
        SF_CONFIG_DATABASE_URL_VAR(db_cfg, database_url),
    };
    db_cfg cfg = {NULL};
    if (!load_config(vars, 1, &cfg)) {
        sf_config_free(vars, 1, &cfg);
        return CTL_EXIT_USAGE;
    }
    sf_err err = {0};
    sf_db_opts o = {.connect_timeout_s = 5, .connect_attempts = 2, .application_name = "sfctl"};
    sf_status st = sf_db_open(cfg.database_url, &o, db, &err);
    sf_config_free(vars, 1, &cfg);
    if (st != SF_OK)
        return cli_fail(cli_status_exit(st), "%s", err.msg);
    return -1;
}

typedef struct auth_cfg {
    char *redis_url;
    char *queue;
} auth_cfg;

void cli_publish_auth(const char *what)
{
    static const sf_config_var vars[] = {
        {"REDIS_URL", SF_CFG_STRING, "", 0, 0, NULL, 1, offsetof(auth_cfg, redis_url),
         "Redis URL, redis://[:password@]host[:port][/db]"},
        SF_CONFIG_QUEUE_VAR(auth_cfg, queue),
    };
    auth_cfg cfg = {NULL, NULL};
    sf_redis *r = NULL;
    sf_queue *q = NULL;
    sf_err err = {0};
    sf_status st = load_config(vars, 2, &cfg) ? SF_OK : SF_ERR_CONFIG;
    if (st == SF_OK && cfg.redis_url[0] == '\0')
        st = sf_err_set(&err, SF_ERR_CONFIG, "REDIS_URL is not set");
    sf_redis_opts o = {.connect_timeout_ms = 2000, .command_timeout_ms = 2000, .connect_attempts = 2};
    if (st == SF_OK)
        st = sf_redis_open(cfg.redis_url, &o, &r, &err);
    if (st == SF_OK)
        st = sf_queue_new(cfg.queue, r, &q, &err);
    if (st == SF_OK)
        st = sf_queue_publish_auth(q, what, &err);
    if (st != SF_OK)
        fprintf(stderr,
                "sfctl: could not tell sf-api at once (%s): its cache of keys keeps the old state for up to "
                "API_KEY_CACHE_SECONDS\n",
                err.msg[0] ? err.msg : "bad configuration");
    sf_queue_free(q);
    sf_redis_close(r);
    sf_config_free(vars, 2, &cfg);
}

typedef struct api_cfg {
    char *url;
    char *key;
    int64_t timeout_ms;
} api_cfg;

int cli_api_open(cli_api *api)
{
    static const sf_config_var vars[] = {
        {"SF_API_URL", SF_CFG_STRING, "http://127.0.0.1:8080", 0, 0, NULL, 0, offsetof(api_cfg, url),
         "base URL of sf-api"},
        {"SF_API_KEY", SF_CFG_STRING, NULL, 0, 0, NULL, 1, offsetof(api_cfg, key), "API key (sf_...)"},
        {"SF_HTTP_TIMEOUT_MS", SF_CFG_INT, "30000", 100, 3600000, NULL, 0, offsetof(api_cfg, timeout_ms),
         "timeout of one API request"},
    };
    api_cfg cfg = {0};
    memset(api, 0, sizeof *api);
    if (!load_config(vars, 3, &cfg)) {
        sf_config_free(vars, 3, &cfg);
        return CTL_EXIT_USAGE;
    }
    api->url = cfg.url;
    api->key = cfg.key;
    api->timeout_ms = (long)cfg.timeout_ms;
    size_t n = strlen(api->url);
    while (n > 0 && api->url[n - 1] == '/')
        api->url[--n] = '\0';
    sf_err err = {0};
    sf_http_opts o = {
        .connect_timeout_ms = 5000, .timeout_ms = api->timeout_ms, .max_body = 256u << 20, .user_agent = "sfctl"};
    if (sf_http_global_init(&err) != SF_OK || sf_http_new(&o, &api->http, &err) != SF_OK) {
        cli_api_close(api);
        return cli_fail(CTL_EXIT_FAIL, "%s", err.msg);
    }
    return -1;
}

void cli_api_close(cli_api *api)
{
    sf_http_free(api->http);
    free(api->url);
    free(api->key);
    memset(api, 0, sizeof *api);
}

/* "code: message" from an API error body, or the raw status. */
static void print_api_error(long status, const sf_buf *body, const char *path)
{
    json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (msg != NULL)
        cli_fail(0, "%s", msg);
    else
        cli_fail(0, "%s: HTTP %ld", path, status);
    json_t *list = json_object_get(e, "errors");
    for (size_t i = 1; i < json_array_size(list); i++) {
        json_t *it = json_array_get(list, i);
        fprintf(stderr, "sfctl: %s: %s\n", json_string_value(json_object_get(it, "field")),
                json_string_value(json_object_get(it, "message")));
    }
    json_decref(j);
}

/* An answer of the API. Its results are JSON that PostgreSQL printed, where a
 * number at or above 2^63 (a metric of 1e20) is an integer without exponent
 * that jansson refuses: such integers are read as reals (sf/jsonnum.h). */
static json_t *load_answer(const char *data, size_t len)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    if (j != NULL)
        return j;
    size_t widened = 0;
    sf_buf b;
    sf_buf_init(&b, 2 * len + 64); /* ".0" after integers of 20 digits or more */
    if (sf_jsonnum_widen(data, len, &b, &widened, NULL) == SF_OK && widened > 0)
        j = json_loadb(b.data, b.len, 0, NULL);
    sf_buf_destroy(&b);
    return j;
}

int cli_api_call(cli_api *api, const char *method, const char *path, const char *body, const char *idempotency_key,
                 int quiet_404, long *status, json_t **out)
{
    char url[2048], auth[256], idem[256];
    snprintf(url, sizeof url, "%s%s", api->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", api->key);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", idempotency_key ? idempotency_key : "");
    const char *headers[] = {auth, "Content-Type: application/json", "Accept: application/json",
                             idempotency_key ? idem : NULL, NULL};
    sf_http_response resp;
    sf_http_response_init(&resp);
    sf_err err = {0};
    *out = NULL;
    sf_status st = sf_http_request(api->http, method, url, headers, body, body ? strlen(body) : 0, &resp, &err);
    int rc = -1;
    *status = resp.status;
    if (st != SF_OK) {
        rc = cli_fail(cli_status_exit(st), "%s", err.msg);
    } else if (resp.status < 200 || resp.status >= 300) {
        if (!(quiet_404 && resp.status == 404))
            print_api_error(resp.status, &resp.body, path);
        rc = cli_http_exit(resp.status);
    } else if (resp.body.len > 0 && (*out = load_answer(resp.body.data, resp.body.len)) == NULL) {
        rc = cli_fail(CTL_EXIT_UNREACHABLE, "%s: the API answered with invalid JSON", path);
    }
    sf_http_response_destroy(&resp);
    return rc;
}

json_t *cli_read_json_file(const char *path, const char *what)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL && je.line < 0) { /* not read at all: jansson's text names the file and errno */
        cli_fail(CTL_EXIT_USAGE, "%s: %s", what, je.text);
        return NULL;
    }
    if (j == NULL) {
        cli_fail(CTL_EXIT_USAGE, "%s: %s: line %d, column %d: %s", what, path, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        cli_fail(CTL_EXIT_USAGE, "%s: %s: must be a JSON object", what, path);
        return NULL;
    }
    return j;
}
