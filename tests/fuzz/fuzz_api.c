/*
 * libFuzzer harness for the request handling of sf-api that runs before any
 * database access: routing through the real handler table (api_routes, by
 * sf_httpd_route_match as the server routes), the Authorization header
 * (sf_auth_bearer), the list arguments (?cursor= by sf_joblist_cursor_decode,
 * ?limit= by sf_config_parse_int as api_page_args reads them) and the list
 * filters turned into SQL (sf_joblist_jobs/batches/count). The input is
 * '\n'-separated fields: method, path, Authorization value, cursor, limit,
 * status, kind, symbol, batch id.
 *
 * Checks beyond "no crash, no leak, no UB": a route found has the method
 * asked and its pattern with the captures put back gives the path again;
 * the first route matching (by a separate matcher here) is the one found,
 * and with none, Allow names exactly the methods whose pattern matches; a
 * bearer key lies inside the header without surrounding blanks; a cursor
 * decoded encodes to one that decodes the same; a filter's values travel as
 * parameters (another symbol or cursor gives the same SQL text). Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "sf/auth.h"
#include "sf/buf.h"
#include "sf/config.h"
#include "sf/httpd.h"
#include "sf/joblist.h"

#define FIELDS 9

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does path match pattern? Segment by segment, "{x}" taking one non-empty segment. */
static int ref_match(const char *pattern, const char *path)
{
    const char *p = pattern + 1, *s = path + 1;
    size_t segs = 1;
    for (const char *c = s; *c; c++)
        segs += *c == '/';
    if (segs > SF_HTTPD_MAX_SEGMENTS)
        return 0;
    for (;;) {
        size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
        int capture = pl >= 2 && p[0] == '{' && p[pl - 1] == '}';
        if (capture ? sl == 0 : (pl != sl || memcmp(p, s, pl) != 0))
            return 0;
        if ((p[pl] == '/') != (s[sl] == '/'))
            return 0;
        if (p[pl] == '\0')
            return 1;
        p += pl + 1;
        s += sl + 1;
    }
}

/* The pattern with the captures of m put back. */
static void rebuild(const sf_httpd_match *m, char *out, size_t size)
{
    sf_buf b;
    sf_buf_init(&b, size - 1);
    int k = 0;
    for (const char *p = m->route->pattern; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 0) {
            sf_buf_puts(&b, "/", NULL);
            p++;
            continue;
        }
        if (p[0] == '{' && p[len - 1] == '}' && k < m->nparams) {
            if (m->pname_len[k] != len - 2 || memcmp(m->pname[k], p + 1, len - 2) != 0)
                __builtin_trap();
            sf_buf_puts(&b, m->pval[k++], NULL);
        } else {
            sf_buf_append(&b, p, len, NULL);
        }
        p += len;
    }
    if (k != m->nparams)
        __builtin_trap();
    snprintf(out, size, "%s", sf_buf_str(&b));
    sf_buf_destroy(&b);
}

static void check_route(const char *method, const char *path)
{
    static char segbuf[4096], again[4096];
    if (path[0] != '/' || strlen(path) >= sizeof segbuf)
        return;
    memcpy(segbuf, path, strlen(path) + 1);
    sf_httpd_match m;
    sf_buf allow, want;
    sf_buf_init(&allow, 4096);
    sf_buf_init(&want, 4096);
    const sf_httpd_route *r = sf_httpd_route_match(api_routes, api_n_routes, method, segbuf, &m, &allow);
    const sf_httpd_route *first = NULL;
    for (size_t i = 0; i < api_n_routes && first == NULL; i++) {
        if (!ref_match(api_routes[i].pattern, path))
            continue;
        if (strcmp(api_routes[i].method, method) == 0)
            first = &api_routes[i];
        else
            sf_buf_printf(&want, NULL, "%s%s", want.len ? ", " : "", api_routes[i].method);
    }
    if (r != first || r != m.route)
        __builtin_trap();
    if (r == NULL && (m.nparams != 0 || strcmp(sf_buf_str(&allow), sf_buf_str(&want)) != 0))
        __builtin_trap();
    if (r != NULL) {
        for (int i = 0; i < m.nparams; i++)
            if (m.pval[i][0] == '\0' || strchr(m.pval[i], '/') != NULL)
                __builtin_trap();
        rebuild(&m, again, sizeof again);
        if (strcmp(again, path) != 0)
            __builtin_trap();
    }
    sf_buf_destroy(&allow);
    sf_buf_destroy(&want);
}

static void check_bearer(const char *value)
{
    size_t len = 99;
    const char *key = sf_auth_bearer(value, &len);
    if (key == NULL) {
        if (len != 0)
            __builtin_trap();
        return;
    }
    if (strncasecmp(value, "bearer ", 7) != 0 || key < value + 7 || len == 0 || key + len > value + strlen(value) ||
        key[0] == ' ' || key[len - 1] == ' ' || key[len - 1] == '\t')
        __builtin_trap();
}

/* A decoded cursor: its id is a UUID or 1..18 digits, and it encodes back. */
static int check_cursor(const char *text, int64_t *us, char *id, size_t id_size)
{
    sf_err err = {0};
    if (sf_joblist_cursor_decode(text, us, id, id_size, &err) != SF_OK) {
        if (strncmp(err.msg, "cursor: ", 8) != 0)
            __builtin_trap();
        return 0;
    }
    size_t n = strlen(id);
    if (*us < 0 || !(api_is_uuid(id) || (n >= 1 && n <= 18 && strspn(id, "0123456789") == n)))
        __builtin_trap();
    char again[SF_JOBLIST_CURSOR_MAX], id2[64];
    int64_t us2 = -1;
    sf_joblist_cursor_encode(*us, id, again, sizeof again);
    if (sf_joblist_cursor_decode(again, &us2, id2, sizeof id2, &err) != SF_OK || us2 != *us || strcmp(id2, id) != 0)
        __builtin_trap();
    return 1;
}

typedef sf_status (*build_fn)(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err);

static sf_status build_count(const sf_joblist_filter *f, sf_joblist_query *q, sf_err *err)
{
    return sf_joblist_count(f, 1000, q, err);
}

/* The values that came in travel as parameters: the SQL is the same text
 * with the symbol and cursor id of another request, and every parameter is
 * set. */
static void check_sql(build_fn build, const sf_joblist_filter *f)
{
    static sf_joblist_query q, other;
    sf_err err = {0};
    if (build(f, &q, &err) != SF_OK)
        return;
    if (q.nparams < 1 || q.nparams > SF_JOBLIST_PARAMS_MAX || memchr(q.sql, '\0', sizeof q.sql) == NULL)
        __builtin_trap();
    for (int i = 0; i < q.nparams; i++)
        if (q.params[i] == NULL)
            __builtin_trap();
    sf_joblist_filter g = *f;
    if (g.symbol != NULL)
        g.symbol = "SYMBOLX";
    if (g.has_cursor)
        snprintf(g.cursor_id, sizeof g.cursor_id, "%s",
                 api_is_uuid(f->cursor_id) ? "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e" : "7");
    if (build(&g, &other, &err) == SF_OK && (strcmp(q.sql, other.sql) != 0 || q.nparams != other.nparams))
        __builtin_trap();
}

static void check_lists(char **fields)
{
    sf_joblist_filter f = {.user_id = "6f1c0a4e-2b1d-4c3e-9a0b-1234567890ab", .limit = SF_JOBLIST_LIMIT_DEFAULT};
    int64_t limit = 0;
    sf_err err = {0};
    if (sf_config_parse_int(fields[4], 1, SF_JOBLIST_LIMIT_MAX, &limit, &err) == SF_OK)
        f.limit = (int)limit;
    f.has_cursor = check_cursor(fields[3], &f.cursor_us, f.cursor_id, sizeof f.cursor_id);
    if (sf_joblist_status_valid(fields[5]))
        f.status[f.n_status++] = fields[5];
    if (sf_joblist_kind_valid(fields[6]))
        f.kind = fields[6];
    f.symbol = fields[7][0] ? fields[7] : NULL;
    f.batch_id = api_is_uuid(fields[8]) ? fields[8] : NULL;
    check_sql(sf_joblist_jobs, &f);
    check_sql(sf_joblist_batches, &f);
    check_sql(build_count, &f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *fields[FIELDS];
    char *p = text;
    for (int i = 0; i < FIELDS; i++) {
        fields[i] = p;
        char *nl = p ? strchr(p, '\n') : NULL;
        if (nl)
            *nl = '\0';
        p = nl ? nl + 1 : p + strlen(p);
    }
    check_route(fields[0], fields[1]);
    check_bearer(fields[2]);
    check_lists(fields);
    free(text);
    return 0;
}
