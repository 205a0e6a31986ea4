/*
 * grid: sweep grids over logic JSON; see sf/grid.h.
 *
 * Design: parsing materialises every path's values as jansson scalars owned
 * by the grid (never handed out, only copied), after checking the product of
 * the value counts against the limit, so nothing large is allocated for a
 * grid that will be refused. A combination index is decoded like an odometer
 * (last path fastest). Applying walks each parsed path in a parsed logic tree
 * and sets a copy of the value; the tree is written back with a small writer
 * of our own, because jansson prints 0.1 as 0.10000000000000001 (ours prints
 * the shortest text that reads back as the same double).
 *
 * A cursor parses the logic once and moves its tree from combination to
 * combination by setting only the values that moved, then compiles the tree
 * itself (sf_logic_from_json): no text is written or parsed per member.
 * Validation walks every combination with one cursor. A cursor gives what
 * sf_logic_parse gives on sf_grid_apply's text, because that text parses back
 * to an equal tree: same keys in the same order (jansson replaces an existing
 * key's value in place, and every member sets the same paths), and numbers
 * and strings that read back as the same values. The text's two limits are
 * kept without writing it per member: its length is the length of the parts
 * that never change (measured once, by writing the first member) plus the
 * written length of each path's current value, checked against
 * SF_LOGIC_MAX_INPUT; its depth is the first member's (values are scalars at
 * fixed paths). A member over either limit is written, for the writer's error.
 *
 * sf_grid_check walks the same cursor over a plan of members (the whole grid
 * when it fits the member budget, else first values, last values, every
 * value of each path, then an even spread) and stops at the budget or the
 * deadline; sf_grid_validate is the same walk with no budget and no deadline.
 *
 * Failure behaviour: every error names the grid path; a failed parse leaves
 * nothing allocated.
 */
#include "sf/grid.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/time.h"

#include "logic_json.h"

#define MAX_SEGS 64
#define MAX_WRITE_DEPTH 256
#define INT_EXACT 9007199254740992.0 /* 2^53 */
#define PATH_SYNTAX "not a valid path (object keys joined by '.', array elements as [i])"

typedef struct seg {
    const char *key; /* NULL for an array index */
    size_t index;
    size_t end; /* length of the path up to and including this step */
} seg;

typedef struct gparam {
    char path[SF_GRID_PATH_MAX];
    char keys[SF_GRID_PATH_MAX]; /* the path with separators as NULs */
    int n_segs;
    seg segs[MAX_SEGS];
    json_t *values; /* array of scalars, owned */
} gparam;

struct sf_grid {
    size_t n;
    size_t size;
    gparam *params;
};

/* ---- paths -------------------------------------------------------------- */

static int parse_index(const char *s, size_t *i, size_t *idx)
{
    size_t start = *i, v = 0;
    while (s[*i] >= '0' && s[*i] <= '9' && *i - start < 9)
        v = v * 10 + (size_t)(s[(*i)++] - '0');
    size_t nd = *i - start;
    if (nd == 0 || (nd > 1 && s[start] == '0') || s[*i] != ']')
        return -1;
    (*i)++;
    *idx = v;
    return 0;
}

/* Split p->path into steps; -1 when malformed. */
static int parse_path(gparam *p)
{
    const char *s = p->path;
    memcpy(p->keys, s, strlen(s) + 1);
    size_t i = 0;
    p->n_segs = 0;
    while (s[i] != '\0' || p->n_segs == 0) {
        if (p->n_segs == MAX_SEGS)
            return -1;
        seg *sg = &p->segs[p->n_segs];
        if (p->n_segs > 0 && s[i] == '[') {
            i++;
            sg->key = NULL;
            if (parse_index(s, &i, &sg->index) < 0)
                return -1;
        } else {
            if (p->n_segs > 0 && s[i++] != '.')
                return -1;
            size_t start = i;
            while (s[i] != '\0' && s[i] != '.' && s[i] != '[' && s[i] != ']')
                i++;
            if (i == start || s[i] == ']')
                return -1;
            sg->key = p->keys + start;
            p->keys[i] = '\0';
        }
        sg->end = i;
        p->n_segs++;
    }
    return 0;
}

/* a is b, or a path to something inside b. */
static int path_within(const char *a, const char *b)
{
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '.' || a[n] == '[');
}

/* ---- values ------------------------------------------------------------- */

/* Decimal places (0..15) that represent x exactly as a double, or -1. */
static int decimals(double x)
{
    double s = 1;
    for (int d = 0; d <= 15; d++, s *= 10)
        if (round(x * s) / s == x)
            return d;
    return -1;
}

static json_t *range_value(double from, double step, size_t k, int dec, int as_int)
{
    if (as_int)
        return json_integer((json_int_t)from + (json_int_t)k * (json_int_t)step);
    double v = from + (double)k * step;
    if (dec >= 0) {
        double s = pow(10, dec);
        if (fabs(v * s) < INT_EXACT)
            v = round(v * s) / s;
    }
    return json_real(v);
}

static sf_status range_field(json_t *r, const char *path, const char *key, double *out, sf_err *err)
{
    json_t *v = json_object_get(r, key);
    if (!json_is_number(v))
        return sf_err_set(err, SF_ERR_INVALID, "\"%s\".%s: must be a number", path, key);
    *out = json_number_value(v);
    return SF_OK;
}

/* Check a {"from", "to", "step"} range and count its values. */
static sf_status range_count(json_t *r, const char *path, size_t *count, sf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(r, key, v)
    {
        if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "step"))
            return sf_err_set(err, SF_ERR_INVALID, "\"%s\".%s: unknown key (expected from, to, step)", path, key);
    }
    double from = 0, to = 0, step = 0; /* set by range_field; zeroed for -O3 flow analysis */
    sf_status st;
    if ((st = range_field(r, path, "from", &from, err)) != SF_OK ||
        (st = range_field(r, path, "to", &to, err)) != SF_OK ||
        (st = range_field(r, path, "step", &step, err)) != SF_OK)
        return st;
    if (!(step > 0))
        return sf_err_set(err, SF_ERR_INVALID, "\"%s\".step: must be a number > 0", path);
    if (from > to)
        return sf_err_set(err, SF_ERR_INVALID, "\"%s\": from (%g) must be <= to (%g)", path, from, to);
    double q = floor((to - from) / step + 1e-9);
    if (!(q < SF_GRID_MAX_VALUES))
        return sf_err_set(err, SF_ERR_LIMIT, "\"%s\": range has more than %d values", path, SF_GRID_MAX_VALUES);
    *count = (size_t)q + 1;
    return SF_OK;
}

static sf_status range_values(json_t *r, size_t count, json_t *out)
{
    json_t *jf = json_object_get(r, "from"), *js = json_object_get(r, "step");
    double from = json_number_value(jf), step = json_number_value(js);
    double last = fabs(from) + (double)count * step;
    int as_int = json_is_integer(jf) && json_is_integer(js) && last < INT_EXACT;
    int dec = decimals(from), ds = decimals(step);
    dec = dec < 0 || ds < 0 ? -1 : (dec > ds ? dec : ds);
    for (size_t k = 0; k < count; k++)
        if (json_array_append_new(out, range_value(from, step, k, dec, as_int)) != 0)
            return SF_ERR_NOMEM;
    return SF_OK;
}

static sf_status list_check(json_t *a, const char *path, size_t *count, sf_err *err)
{
    if (json_array_size(a) == 0)
        return sf_err_set(err, SF_ERR_INVALID, "\"%s\": must not be an empty list", path);
    if (json_array_size(a) > SF_GRID_MAX_VALUES)
        return sf_err_set(err, SF_ERR_LIMIT, "\"%s\": list has more than %d values", path, SF_GRID_MAX_VALUES);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_number(v) && !json_is_string(v) && !json_is_boolean(v))
            return sf_err_set(err, SF_ERR_INVALID, "\"%s\"[%zu]: must be a number, a string or a boolean", path, i);
    }
    *count = json_array_size(a);
    return SF_OK;
}

static sf_status values_count(json_t *v, const char *path, size_t *count, sf_err *err)
{
    if (json_is_array(v))
        return list_check(v, path, count, err);
    if (json_is_object(v))
        return range_count(v, path, count, err);
    return sf_err_set(err, SF_ERR_INVALID,
                      "\"%s\": must be a list of values or a "
                      "{\"from\", \"to\", \"step\"} range",
                      path);
}

/* ---- parsing the grid --------------------------------------------------- */

void sf_grid_free(sf_grid *grid)
{
    if (grid == NULL)
        return;
    for (size_t i = 0; i < grid->n; i++)
        json_decref(grid->params[i].values);
    free(grid->params);
    free(grid);
}

static sf_status check_paths(sf_grid *g, json_t *root, sf_err *err)
{
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(root, key, v)
    {
        gparam *p = &g->params[i++];
        if (strlen(key) >= SF_GRID_PATH_MAX)
            return sf_err_set(err, SF_ERR_LIMIT, "\"%.40s...\": path longer than %d bytes", key, SF_GRID_PATH_MAX - 1);
        memcpy(p->path, key, strlen(key) + 1);
        if (parse_path(p) < 0)
            return sf_err_set(err, SF_ERR_INVALID, "\"%s\": " PATH_SYNTAX, key);
        for (size_t j = 0; j + 1 < i; j++)
            if (path_within(p->path, g->params[j].path) || path_within(g->params[j].path, p->path))
                return sf_err_set(err, SF_ERR_INVALID, "\"%s\": overlaps \"%s\"", p->path, g->params[j].path);
    }
    return SF_OK;
}

/* Count the combinations; SF_ERR_LIMIT over max. */
static sf_status count_combos(sf_grid *g, json_t *root, size_t max, size_t *counts, sf_err *err)
{
    double total = 1;
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        sf_status st = values_count(v, key, &counts[i], err);
        if (st != SF_OK)
            return st;
        total *= (double)counts[i++];
    }
    if (total > (double)max)
        return sf_err_set(err, SF_ERR_LIMIT,
                          total < 1e18 ? "grid has %.0f combinations; the limit is %zu"
                                       : "grid has %g combinations; the limit is %zu",
                          total, max);
    g->size = (size_t)total;
    return SF_OK;
}

static sf_status fill_values(sf_grid *g, json_t *root, const size_t *counts, sf_err *err)
{
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        gparam *p = &g->params[i];
        p->values = json_is_array(v) ? json_deep_copy(v) : json_array();
        if (p->values == NULL || (json_is_object(v) && range_values(v, counts[i], p->values) != SF_OK))
            return sf_err_set(err, SF_ERR_NOMEM, "could not build the grid: out of memory");
        i++;
    }
    return SF_OK;
}

static sf_status grid_build(json_t *root, size_t max, sf_grid *g, sf_err *err)
{
    size_t n = json_object_size(root);
    if (n == 0)
        return sf_err_set(err, SF_ERR_INVALID, "grid must name at least one path");
    if (n > SF_GRID_MAX_PARAMS)
        return sf_err_set(err, SF_ERR_LIMIT, "grid has %zu paths; the limit is %d", n, SF_GRID_MAX_PARAMS);
    size_t counts[SF_GRID_MAX_PARAMS];
    g->params = calloc(n, sizeof *g->params);
    if (g->params == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate the grid: out of memory");
    g->n = n;
    sf_status st = check_paths(g, root, err);
    if (st == SF_OK)
        st = count_combos(g, root, max, counts, err);
    if (st == SF_OK)
        st = fill_values(g, root, counts, err);
    return st;
}

sf_status sf_grid_parse(const char *json, size_t len, size_t max_combos, sf_grid **out, sf_err *err)
{
    *out = NULL;
    if (len > SF_GRID_MAX_INPUT)
        return sf_err_set(err, SF_ERR_LIMIT, "grid is %zu bytes; the limit is %zu", len, (size_t)SF_GRID_MAX_INPUT);
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return sf_err_set(err, SF_ERR_PARSE, "invalid grid JSON at line %d, column %d: %s", je.line, je.column,
                          je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return sf_err_set(err, SF_ERR_INVALID, "grid must be a JSON object of path: values");
    }
    sf_grid *g = calloc(1, sizeof *g);
    sf_status st = g ? grid_build(root, max_combos ? max_combos : SF_GRID_MAX_COMBOS_DEFAULT, g, err)
                     : sf_err_set(err, SF_ERR_NOMEM, "could not allocate the grid: out of memory");
    json_decref(root);
    if (st != SF_OK) {
        sf_grid_free(g);
        return st;
    }
    *out = g;
    return SF_OK;
}

size_t sf_grid_size(const sf_grid *grid)
{
    return grid->size;
}

size_t sf_grid_n_params(const sf_grid *grid)
{
    return grid->n;
}

const char *sf_grid_param_path(const sf_grid *grid, size_t i)
{
    return i < grid->n ? grid->params[i].path : NULL;
}

size_t sf_grid_param_count(const sf_grid *grid, size_t i)
{
    return i < grid->n ? json_array_size(grid->params[i].values) : 0;
}

/* Value index of each path for combination index (last path fastest). */
static void decode(const sf_grid *g, size_t index, size_t *which)
{
    for (size_t i = g->n; i-- > 0;) {
        size_t c = json_array_size(g->params[i].values);
        which[i] = index % c;
        index /= c;
    }
}

static sf_status no_combo(const sf_grid *g, size_t index, sf_err *err)
{
    return sf_err_set(err, SF_ERR_INVALID, "combination %zu does not exist: the grid has %zu", index, g->size);
}

/* ---- writing JSON ------------------------------------------------------- */

/* The shortest %g text that reads back as x, always with '.' or 'e'. */
static sf_status write_real(sf_buf *b, double x, sf_err *err)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    if (strpbrk(tmp, ".eE") == NULL)
        return sf_buf_printf(b, err, "%s.0", tmp);
    return sf_buf_puts(b, tmp, err);
}

static sf_status write_string(sf_buf *b, const char *s, size_t n, sf_err *err)
{
    static const char hex[] = "0123456789abcdef";
    sf_status st = sf_buf_append(b, "\"", 1, err);
    size_t run = 0; /* start of the pending unescaped run */
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        char esc[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t elen = 2;
        if (ch < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        st = sf_buf_append(b, s + run, i - run, err);
        if (st == SF_OK)
            st = sf_buf_append(b, esc, elen, err);
        run = i + 1;
    }
    if (st == SF_OK)
        st = sf_buf_append(b, s + run, n - run, err);
    return st == SF_OK ? sf_buf_append(b, "\"", 1, err) : st;
}

static sf_status write_value(sf_buf *b, json_t *v, int pretty, int depth, sf_err *err);

static sf_status write_object(sf_buf *b, json_t *v, int pretty, int depth, sf_err *err)
{
    sf_status st = sf_buf_append(b, "{", 1, err);
    const char *key;
    json_t *m;
    int first = 1;
    json_object_foreach(v, key, m)
    {
        if (st == SF_OK && !first)
            st = sf_buf_puts(b, pretty ? ", " : ",", err);
        if (st == SF_OK)
            st = write_string(b, key, strlen(key), err);
        if (st == SF_OK)
            st = sf_buf_puts(b, pretty ? ": " : ":", err);
        if (st == SF_OK)
            st = write_value(b, m, pretty, depth + 1, err);
        first = 0;
    }
    return st == SF_OK ? sf_buf_append(b, "}", 1, err) : st;
}

static sf_status write_array(sf_buf *b, json_t *v, int pretty, int depth, sf_err *err)
{
    sf_status st = sf_buf_append(b, "[", 1, err);
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m)
    {
        if (st == SF_OK && i > 0)
            st = sf_buf_puts(b, pretty ? ", " : ",", err);
        if (st == SF_OK)
            st = write_value(b, m, pretty, depth + 1, err);
    }
    return st == SF_OK ? sf_buf_append(b, "]", 1, err) : st;
}

static sf_status write_value(sf_buf *b, json_t *v, int pretty, int depth, sf_err *err)
{
    if (depth > MAX_WRITE_DEPTH)
        return sf_err_set(err, SF_ERR_LIMIT, "logic JSON nests deeper than %d levels", MAX_WRITE_DEPTH);
    switch (json_typeof(v)) {
    case JSON_OBJECT: return write_object(b, v, pretty, depth, err);
    case JSON_ARRAY: return write_array(b, v, pretty, depth, err);
    case JSON_STRING: return write_string(b, json_string_value(v), json_string_length(v), err);
    case JSON_INTEGER: return sf_buf_put_i64(b, (int64_t)json_integer_value(v), err);
    case JSON_REAL: return write_real(b, json_real_value(v), err);
    case JSON_TRUE: return sf_buf_puts(b, "true", err);
    case JSON_FALSE: return sf_buf_puts(b, "false", err);
    default: return sf_buf_puts(b, "null", err);
    }
}

sf_status sf_grid_params_json(const sf_grid *grid, size_t index, sf_buf *out, sf_err *err)
{
    if (index >= grid->size)
        return no_combo(grid, index, err);
    size_t which[SF_GRID_MAX_PARAMS];
    decode(grid, index, which);
    sf_status st = sf_buf_append(out, "{", 1, err);
    for (size_t i = 0; i < grid->n && st == SF_OK; i++) {
        const gparam *p = &grid->params[i];
        if (i > 0)
            st = sf_buf_puts(out, ", ", err);
        if (st == SF_OK)
            st = write_string(out, p->path, strlen(p->path), err);
        if (st == SF_OK)
            st = sf_buf_puts(out, ": ", err);
        if (st == SF_OK)
            st = write_value(out, json_array_get(p->values, which[i]), 1, 0, err);
    }
    return st == SF_OK ? sf_buf_append(out, "}", 1, err) : st;
}

/* ---- applying ----------------------------------------------------------- */

static sf_status path_error(const gparam *p, size_t end, const char *what, sf_err *err)
{
    return sf_err_set(err, SF_ERR_INVALID, "sweep path \"%s\": %.*s %s", p->path, (int)end, p->path, what);
}

/* Set a copy of value at p in root. */
static sf_status set_path(json_t *root, const gparam *p, json_t *value, sf_err *err)
{
    json_t *cur = root;
    for (int i = 0; i < p->n_segs; i++) {
        const seg *s = &p->segs[i];
        size_t prev = i > 0 ? p->segs[i - 1].end : 0;
        if (s->key != NULL && !json_is_object(cur))
            return i == 0 ? sf_err_set(err, SF_ERR_INVALID, "logic must be a JSON object")
                          : path_error(p, prev, "is not an object", err);
        if (s->key == NULL && !json_is_array(cur))
            return path_error(p, prev, "is not an array", err);
        if (i + 1 == p->n_segs)
            break;
        cur = s->key ? json_object_get(cur, s->key) : json_array_get(cur, s->index);
        if (cur == NULL)
            return path_error(p, s->end, "is not in the logic", err);
    }
    const seg *last = &p->segs[p->n_segs - 1];
    if (last->key == NULL && last->index >= json_array_size(cur))
        return path_error(p, last->end, "is not in the logic", err);
    json_t *copy = json_copy(value);
    int rc = last->key ? json_object_set_new(cur, last->key, copy) : json_array_set_new(cur, last->index, copy);
    if (copy == NULL || rc != 0)
        return sf_err_set(err, SF_ERR_NOMEM, "could not set a sweep value: out of memory");
    return SF_OK;
}

static sf_status load_logic(const char *json, size_t len, json_t **root, sf_err *err)
{
    if (len > SF_LOGIC_MAX_INPUT)
        return sf_err_set(err, SF_ERR_LIMIT, "logic is %zu bytes; the limit is %zu", len, (size_t)SF_LOGIC_MAX_INPUT);
    json_error_t je;
    *root = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (*root == NULL)
        return sf_err_set(err, SF_ERR_PARSE, "invalid logic JSON at line %d, column %d: %s", je.line, je.column,
                          je.text);
    return SF_OK;
}

/* Set the values of combination index; only the paths whose value differs
 * from prev (NULL: all) are touched. */
static sf_status set_combo(const sf_grid *g, json_t *root, size_t index, const size_t *prev, size_t *which, sf_err *err)
{
    decode(g, index, which);
    for (size_t i = 0; i < g->n; i++) {
        if (prev != NULL && prev[i] == which[i])
            continue;
        sf_status st = set_path(root, &g->params[i], json_array_get(g->params[i].values, which[i]), err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

sf_status sf_grid_apply(const sf_grid *grid, size_t index, const char *logic_json, size_t len, char **out_json,
                        size_t *out_len, sf_err *err)
{
    *out_json = NULL;
    if (index >= grid->size)
        return no_combo(grid, index, err);
    json_t *root;
    sf_status st = load_logic(logic_json, len, &root, err);
    if (st != SF_OK)
        return st;
    size_t which[SF_GRID_MAX_PARAMS];
    sf_buf b;
    sf_buf_init(&b, SF_LOGIC_MAX_INPUT);
    st = set_combo(grid, root, index, NULL, which, err);
    if (st == SF_OK)
        st = write_value(&b, root, 0, 0, err);
    json_decref(root);
    if (st != SF_OK) {
        sf_buf_destroy(&b);
        return st;
    }
    size_t n = 0;
    *out_json = sf_buf_steal(&b, &n);
    if (out_len != NULL)
        *out_len = n;
    return SF_OK;
}

/* ---- the cursor --------------------------------------------------------- */

struct sf_grid_cursor {
    const sf_grid *grid; /* borrowed */
    json_t *root;        /* the base logic with the values of which[] */
    int placed;          /* which[] holds root's values; else set every path */
    size_t which[SF_GRID_MAX_PARAMS];
    int measured;                       /* fixed_len and val_len are known */
    size_t fixed_len;                   /* written length of root without the path values */
    size_t val_len[SF_GRID_MAX_PARAMS]; /* written length of each path's current value */
    sf_buf text;                        /* scratch for writing */
};

sf_status sf_grid_cursor_new(const sf_grid *grid, const char *logic_json, size_t len, sf_grid_cursor **out, sf_err *err)
{
    *out = NULL;
    json_t *root;
    sf_status st = load_logic(logic_json, len, &root, err);
    if (st != SF_OK)
        return st;
    sf_grid_cursor *c = malloc(sizeof *c);
    if (c == NULL) {
        json_decref(root);
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate a grid cursor: out of memory");
    }
    c->grid = grid;
    c->root = root;
    c->placed = c->measured = 0;
    sf_buf_init(&c->text, SF_LOGIC_MAX_INPUT);
    *out = c;
    return SF_OK;
}

void sf_grid_cursor_free(sf_grid_cursor *c)
{
    if (c == NULL)
        return;
    json_decref(c->root);
    sf_buf_destroy(&c->text);
    free(c);
}

_Static_assert(SF_GRID_MAX_PARAMS <= 64, "a uint64_t holds one bit per path");

/* Set combination index's values in c->root, only those that moved (bits of
 * *moved). SF_ERR_INVALID when a path does not fit the logic, the same for
 * every index (paths never overlap, so no value set changes another path's
 * way); root is then partly set, and the next move sets every path. */
static sf_status cursor_move(sf_grid_cursor *c, size_t index, uint64_t *moved, sf_err *err)
{
    size_t which[SF_GRID_MAX_PARAMS];
    sf_status st = set_combo(c->grid, c->root, index, c->placed ? c->which : NULL, which, err);
    if (st != SF_OK) {
        c->placed = c->measured = 0;
        return st;
    }
    *moved = 0;
    for (size_t i = 0; i < c->grid->n; i++)
        if (!c->placed || c->which[i] != which[i])
            *moved |= (uint64_t)1 << i;
    memcpy(c->which, which, c->grid->n * sizeof which[0]);
    c->placed = 1;
    return SF_OK;
}

/* Written length of path i's current value, into c->val_len[i]. */
static sf_status measure_value(sf_grid_cursor *c, size_t i, sf_err *err)
{
    sf_buf_reset(&c->text);
    sf_status st = write_value(&c->text, json_array_get(c->grid->params[i].values, c->which[i]), 0, 0, err);
    c->val_len[i] = c->text.len;
    return st;
}

/* Write the whole member once: its length less its values is fixed_len. */
static sf_status measure_all(sf_grid_cursor *c, sf_err *err)
{
    sf_buf b;
    sf_buf_init(&b, SIZE_MAX); /* bounded: the tree was read from <= SF_LOGIC_MAX_INPUT bytes */
    sf_status st = write_value(&b, c->root, 0, 0, err);
    size_t total = b.len, values = 0;
    sf_buf_destroy(&b);
    for (size_t i = 0; i < c->grid->n && st == SF_OK; i++) {
        st = measure_value(c, i, err);
        values += c->val_len[i];
    }
    c->fixed_len = total - values;
    c->measured = st == SF_OK;
    return st;
}

static sf_status measure_moved(sf_grid_cursor *c, uint64_t moved, sf_err *err)
{
    sf_status st = SF_OK;
    for (size_t i = 0; i < c->grid->n && st == SF_OK; i++)
        if (moved >> i & 1)
            st = measure_value(c, i, err);
    c->measured = st == SF_OK;
    return st;
}

static size_t member_len(const sf_grid_cursor *c)
{
    size_t len = c->fixed_len;
    for (size_t i = 0; i < c->grid->n; i++)
        len += c->val_len[i];
    return len;
}

/* SF_OK when the member's text, as sf_grid_apply writes it, fits in
 * SF_LOGIC_MAX_INPUT and nests no deeper than the writer allows (a depth
 * error is found by measure_all, and every member has the depth of the
 * first: values are scalars at fixed paths); else the error writing it
 * gives. moved: the paths set by the last move. */
static sf_status cursor_fits(sf_grid_cursor *c, uint64_t moved, sf_err *err)
{
    sf_status st = c->measured ? measure_moved(c, moved, err) : measure_all(c, err);
    if (st == SF_OK && member_len(c) <= SF_LOGIC_MAX_INPUT)
        return SF_OK;
    /* Too long, too deep (or out of memory): write it as sf_grid_apply does,
     * which fails with the error that gave (the first met in writing order). */
    sf_buf_reset(&c->text);
    return write_value(&c->text, c->root, 0, 0, err);
}

/* Compile the member c->root holds (moved: the paths the last move set). */
static sf_status cursor_compile(sf_grid_cursor *c, uint64_t moved, sf_logic **out, sf_logic_errors *errs, sf_err *err)
{
    sf_status st = cursor_fits(c, moved, err);
    return st != SF_OK ? st : sf_logic_from_json(c->root, out, errs, err);
}

sf_status sf_grid_cursor_logic(sf_grid_cursor *c, size_t index, sf_logic **out, sf_logic_errors *errs, sf_err *err)
{
    *out = NULL;
    if (errs != NULL) {
        errs->count = errs->dropped = 0;
        errs->path[0][0] = errs->message[0][0] = '\0';
    }
    if (index >= c->grid->size)
        return no_combo(c->grid, index, err);
    uint64_t moved = 0;
    sf_status st = cursor_move(c, index, &moved, err);
    return st != SF_OK ? st : cursor_compile(c, moved, out, errs, err);
}

/* err for combination index: "combination 17 {...}: <first logic error>". */
static sf_status combo_error(const sf_grid *g, size_t index, sf_status st, sf_err *err)
{
    char why[SF_ERR_MSG_MAX];
    const char *m = err ? err->msg : "";
    const char *pfx = "invalid logic: ";
    snprintf(why, sizeof why, "%s", strncmp(m, pfx, strlen(pfx)) == 0 ? m + strlen(pfx) : m);
    sf_buf pb;
    sf_buf_init(&pb, 200);
    if (sf_grid_params_json(g, index, &pb, NULL) != SF_OK)
        sf_buf_puts(&pb, "...", NULL);
    sf_err_set(err, st, "combination %zu %s: %s", index, sf_buf_str(&pb), why);
    sf_buf_destroy(&pb);
    return st;
}

/* A walk of members through one cursor, within a member budget and a deadline. */
typedef struct check_walk {
    sf_grid_cursor *c;
    size_t left;         /* members that may still be compiled */
    int64_t deadline_ms; /* sf_time_mono_ms() past which no member starts; 0: none */
    size_t checked;      /* members compiled */
    int stop;            /* the budget or the deadline is spent */
    size_t *bad_index;
    sf_logic_errors *errs;
} check_walk;

/* Compile member k, unless the walk must stop (then w->stop is set).
 * SF_OK, or the member's error named with its values (*w->bad_index = k). */
static sf_status check_at(check_walk *w, size_t k, sf_err *err)
{
    if (w->left == 0 || (w->checked > 0 && w->deadline_ms > 0 && sf_time_mono_ms() >= w->deadline_ms)) {
        w->stop = 1;
        return SF_OK;
    }
    w->left--;
    uint64_t moved = 0;
    sf_status st = cursor_move(w->c, k, &moved, err);
    if (st != SF_OK) /* the paths do not fit the logic: same for every k, and no member compiled */
        return st;
    w->checked++;
    sf_logic *lg = NULL;
    st = cursor_compile(w->c, moved, &lg, w->errs, err);
    sf_logic_free(lg);
    if (st != SF_OK) {
        *w->bad_index = k;
        combo_error(w->c->grid, k, st, err);
    }
    return st;
}

static sf_status check_all(check_walk *w, sf_err *err)
{
    sf_status st = SF_OK;
    for (size_t k = 0; k < w->c->grid->size && st == SF_OK && !w->stop; k++)
        st = check_at(w, k, err);
    return st;
}

/* The member with path i at value v and every other path at its first value. */
static size_t axis_member(const sf_grid *g, size_t i, size_t v)
{
    size_t stride = 1;
    for (size_t j = i + 1; j < g->n; j++)
        stride *= json_array_size(g->params[j].values);
    return v * stride;
}

/* Member 0, each path's last value, then every other value of every path
 * (round-robin over the paths), the other paths at their first values. */
static sf_status check_axes(check_walk *w, sf_err *err)
{
    const sf_grid *g = w->c->grid;
    size_t most = 0;
    sf_status st = check_at(w, 0, err);
    for (size_t i = 0; i < g->n && st == SF_OK && !w->stop; i++) {
        size_t count = json_array_size(g->params[i].values);
        most = count > most ? count : most;
        if (count > 1)
            st = check_at(w, axis_member(g, i, count - 1), err);
    }
    for (size_t v = 1; v + 1 < most && st == SF_OK && !w->stop; v++)
        for (size_t i = 0; i < g->n && st == SF_OK && !w->stop; i++)
            if (v + 1 < json_array_size(g->params[i].values))
                st = check_at(w, axis_member(g, i, v), err);
    return st;
}

/* With what is left of the budget (m members, fewer than the grid's):
 * members spread evenly over the grid, the j-th at j/m of it, the last
 * member last. */
static sf_status check_spread(check_walk *w, sf_err *err)
{
    size_t size = w->c->grid->size, m = w->left;
    sf_status st = SF_OK;
    for (size_t j = 1; j <= m && st == SF_OK && !w->stop; j++) {
        size_t k = (size_t)((double)j / (double)m * (double)size);
        st = check_at(w, k == 0 ? 0 : (k > size ? size : k) - 1, err);
    }
    return st;
}

/* The whole grid in index order when it fits in left members, else the
 * plan of sf_grid_check. */
static sf_status grid_check(const sf_grid *grid, const char *logic_json, size_t len, size_t left, int64_t deadline_ms,
                            sf_grid_check_report *report, size_t *bad_index, sf_logic_errors *errs, sf_err *err)
{
    size_t bad_local = SIZE_MAX;
    check_walk w = {.left = left > 0 ? left : 1,
                    .deadline_ms = deadline_ms,
                    .bad_index = bad_index ? bad_index : &bad_local,
                    .errs = errs};
    *w.bad_index = SIZE_MAX;
    if (errs != NULL)
        memset(errs, 0, sizeof *errs);
    if (report != NULL)
        *report = (sf_grid_check_report){0};
    sf_status st = sf_grid_cursor_new(grid, logic_json, len, &w.c, err);
    if (st != SF_OK)
        return st;
    int whole = grid->size <= w.left;
    st = whole ? check_all(&w, err) : check_axes(&w, err);
    if (st == SF_OK && !whole && !w.stop)
        st = check_spread(&w, err);
    sf_grid_cursor_free(w.c);
    if (report != NULL) {
        report->checked = w.checked;
        report->complete = whole && w.checked == grid->size;
    }
    return st;
}

sf_status sf_grid_validate(const sf_grid *grid, const char *logic_json, size_t len, size_t *bad_index,
                           sf_logic_errors *errs, sf_err *err)
{
    return grid_check(grid, logic_json, len, SIZE_MAX, 0, NULL, bad_index, errs, err);
}

sf_status sf_grid_check(const sf_grid *grid, const char *logic_json, size_t len, const sf_grid_check_opts *opts,
                        sf_grid_check_report *report, size_t *bad_index, sf_logic_errors *errs, sf_err *err)
{
    size_t work = opts != NULL && opts->work > 0 ? opts->work : SF_GRID_CHECK_WORK_DEFAULT;
    return grid_check(grid, logic_json, len, work / (len > 0 ? len : 1), opts != NULL ? opts->deadline_ms : 0, report,
                      bad_index, errs, err);
}
