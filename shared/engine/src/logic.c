/*
 * logic: parse and validate trading-logic JSON into a compiled sf_logic; see
 * sf/logic.h and the README's "Logic format".
 *
 * Design: one pass over the jansson tree. Each section has a checker that
 * records every problem it finds (path + message) and keeps going, so the user
 * sees all errors at once; the compiled program is discarded when any error
 * was recorded. Indicators are compiled first, in name order, so conditions
 * can resolve operand names to indices. Condition trees are compiled
 * pre-order into arrays grown on demand up to SF_LOGIC_MAX_NODES; the children
 * of all/any/not get a contiguous slot range reserved before the recursion
 * fills it. Recursion is bounded by SF_LOGIC_MAX_DEPTH, the JSON text by
 * SF_LOGIC_MAX_INPUT, and jansson bounds its own parser depth.
 *
 * Failure behaviour: out of memory gives SF_ERR_NOMEM and no program; limits
 * give SF_ERR_LIMIT (taking precedence over SF_ERR_INVALID); malformed JSON
 * gives SF_ERR_PARSE with one error carrying jansson's line and column.
 */
#include "sf/logic.h"
#include "logic_json.h"

#include <stddef.h>

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 1024
#define FIELD_LIST "open, high, low, close, volume"
#define COND_LIST "all, any, not, gt, gte, lt, lte, crosses_above, crosses_below"

/* An entry of "indicators", in name order; info is NULL when the type is bad. */
typedef struct ind_slot {
    const char *name;
    json_t *spec;
    const sf_ind_info *info;
} ind_slot;

typedef struct ctx {
    sf_logic_errors *errs;
    sf_status status; /* worst so far: SF_OK, SF_ERR_INVALID or SF_ERR_LIMIT */
    size_t plen;
    sf_logic *lg; /* being built */
    int n_slots;
    int n_children;
    int cap_conds, cap_children; /* allocated; grown by doubling up to SF_LOGIC_MAX_NODES */
    int nodes_full;              /* the node limit was hit and reported */
    /* Last, and not zeroed (3.5 KB): path is a string of plen bytes, slots
     * are filled before n_slots covers them. */
    char path[PATH_CAP];
    ind_slot slots[SF_LOGIC_MAX_INDICATORS];
} ctx;

/* ---- errors and paths --------------------------------------------------- */

/* Copy s into dst (size n), control bytes as '?', never ending inside a
 * UTF-8 sequence. */
static void copy_clean(char *dst, size_t n, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
    if (s[i] == '\0')
        return;
    size_t j = i; /* truncated: drop a partial trailing sequence */
    while (j > 0 && ((unsigned char)dst[j - 1] & 0xC0) == 0x80)
        j--;
    if (j > 0 && ((unsigned char)dst[j - 1] & 0x80))
        dst[j - 1] = '\0';
}

static void add_error_v(ctx *c, sf_status code, const char *fmt, va_list ap)
{
    if (code == SF_ERR_LIMIT || c->status == SF_OK)
        c->status = code;
    sf_logic_errors *e = c->errs;
    if (e->count >= SF_LOGIC_MAX_ERRORS) {
        e->dropped++;
        return;
    }
    char msg[SF_LOGIC_ERROR_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    copy_clean(e->path[e->count], SF_LOGIC_ERROR_MAX, c->path);
    copy_clean(e->message[e->count], SF_LOGIC_ERROR_MAX, msg);
    e->count++;
}

__attribute__((format(printf, 2, 3))) static void invalid(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_v(c, SF_ERR_INVALID, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void limit(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_v(c, SF_ERR_LIMIT, fmt, ap);
    va_end(ap);
}

/* Push ".key" (or "key" at the root); returns the length to pop back to. */
static size_t push_key(ctx *c, const char *key)
{
    size_t old = c->plen, room = PATH_CAP - 1 - old, n = 0; /* room: bytes before the NUL */
    if (old > 0 && room > 0)
        c->path[old + n++] = '.';
    size_t len = strlen(key);
    if (len > room - n)
        len = room - n;
    memcpy(c->path + old + n, key, len);
    c->plen = old + n + len;
    c->path[c->plen] = '\0';
    return old;
}

static size_t push_index(ctx *c, size_t i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + old, PATH_CAP - old, "[%zu]", i);
    c->plen = n < 0 ? old : (old + (size_t)n >= PATH_CAP ? PATH_CAP - 1 : old + (size_t)n);
    return old;
}

static void pop(ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* ---- small checks ------------------------------------------------------- */

static int is_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SF_LOGIC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9'))
            return 0;
    }
    return 1;
}

/* A number within [lo, hi], each bound inclusive unless *_open; else msg. */
typedef struct num_rule {
    const char *key;
    size_t off; /* offset of a double in sf_logic */
    double lo, hi;
    int lo_open, hi_open;
    const char *msg;
} num_rule;

static int num_ok(const num_rule *r, double v)
{
    if (r->lo_open ? !(v > r->lo) : !(v >= r->lo))
        return 0;
    return r->hi_open ? v < r->hi : v <= r->hi;
}

static void check_num(ctx *c, const num_rule *r, json_t *v)
{
    size_t old = push_key(c, r->key);
    if (!json_is_number(v) || !num_ok(r, json_number_value(v)))
        invalid(c, "%s", r->msg);
    else
        *(double *)(void *)((char *)c->lg + r->off) = json_number_value(v);
    pop(c, old);
}

/* Check the members of a section object against its rules; keys listed in
 * skip are the caller's. */
static void check_section(ctx *c, json_t *obj, const num_rule *rules, size_t n, const char *skip, const char *expected)
{
    if (!json_is_object(obj)) {
        invalid(c, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(rules[i].key, key) != 0)
            i++;
        if (i < n) {
            check_num(c, &rules[i], v);
        } else if (skip == NULL || strcmp(skip, key) != 0) {
            size_t old = push_key(c, key);
            invalid(c, "unknown key (expected %s)", expected);
            pop(c, old);
        }
    }
}

/* ---- indicators --------------------------------------------------------- */

static int slot_cmp(const void *a, const void *b)
{
    return strcmp(((const ind_slot *)a)->name, ((const ind_slot *)b)->name);
}

static int slot_find(const ctx *c, const char *name, size_t len)
{
    for (int i = 0; i < c->n_slots; i++)
        if (strlen(c->slots[i].name) == len && memcmp(c->slots[i].name, name, len) == 0)
            return i;
    return -1;
}

static void type_list(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int t = 0; t < SF_IND__COUNT; t++) {
        const sf_ind_info *info = sf_ind_info_get((sf_ind_type)t);
        if (info == NULL)
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", info->name);
        if (n < 0 || used + (size_t)n >= size)
            return;
        used += (size_t)n;
    }
}

static void param_list(const sf_ind_info *info, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    if (info->has_source)
        used = (size_t)snprintf(buf, size, "source");
    for (int i = 0; i < info->n_params && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", info->params[i].name);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, size, "no parameters");
}

static void check_param(ctx *c, const sf_ind_param_info *p, json_t *v, sf_ind_spec *spec)
{
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    int whole = !isnan(x) && x == floor(x);
    if (p->is_int && (!whole || x < p->min)) {
        invalid(c, "must be an integer >= %.15g", p->min);
    } else if (p->is_int && x > p->max) {
        invalid(c, "must be an integer between %.15g and %.15g", p->min, p->max);
    } else if (isnan(x) || x < p->min || x > p->max) {
        invalid(c, "must be a number between %.15g and %.15g", p->min, p->max);
    } else {
        spec->param[p->id] = x;
    }
}

static void check_source(ctx *c, json_t *v, sf_ind_spec *spec)
{
    int f = json_is_string(v) ? sf_field_find(json_string_value(v)) : -1;
    if (f < 0)
        invalid(c, "must be one of " FIELD_LIST);
    else
        spec->source = (sf_field)f;
}

static const sf_ind_param_info *param_find(const sf_ind_info *info, const char *key)
{
    for (int i = 0; i < info->n_params; i++)
        if (strcmp(info->params[i].name, key) == 0)
            return &info->params[i];
    return NULL;
}

/* One key of an indicator spec other than "type". */
static void check_spec_key(ctx *c, const sf_ind_info *info, const char *key, json_t *v, sf_ind_spec *spec)
{
    size_t old = push_key(c, key);
    const sf_ind_param_info *p = param_find(info, key);
    if (info->has_source && strcmp(key, "source") == 0) {
        check_source(c, v, spec);
    } else if (p != NULL) {
        check_param(c, p, v, spec);
    } else {
        char list[SF_LOGIC_ERROR_MAX];
        param_list(info, list, sizeof list);
        invalid(c, "unknown parameter for %s (expected %s)", info->name, list);
    }
    pop(c, old);
}

/* The "type" of a spec; NULL (error recorded) when missing or unknown. */
static const sf_ind_info *check_type(ctx *c, json_t *spec, sf_ind_type *type)
{
    json_t *t = json_object_get(spec, "type");
    size_t old = push_key(c, "type");
    const sf_ind_info *info = NULL;
    if (t == NULL) {
        invalid(c, "is required");
    } else if (!json_is_string(t)) {
        invalid(c, "must be a string");
    } else if ((info = sf_ind_info_find(json_string_value(t), type)) == NULL) {
        char list[SF_LOGIC_ERROR_MAX / 2];
        type_list(list, sizeof list);
        invalid(c, "unknown indicator type \"%.40s\" (expected %s)", json_string_value(t), list);
    }
    pop(c, old);
    return info;
}

static void compile_spec(ctx *c, ind_slot *slot, sf_logic_indicator *out)
{
    if (!json_is_object(slot->spec)) {
        invalid(c, "must be an object with a \"type\"");
        return;
    }
    sf_ind_type type;
    slot->info = check_type(c, slot->spec, &type);
    if (slot->info == NULL)
        return;
    memset(&out->spec, 0, sizeof out->spec);
    sf_ind_spec_default(type, &out->spec);
    out->spec.type = type;
    const char *key;
    json_t *v;
    json_object_foreach(slot->spec, key, v)
    {
        if (strcmp(key, "type") != 0)
            check_spec_key(c, slot->info, key, v, &out->spec);
    }
    for (int i = 0; i < slot->info->n_params; i++) {
        const sf_ind_param_info *p = &slot->info->params[i];
        if (isnan(p->def) && json_object_get(slot->spec, p->name) == NULL) {
            size_t old = push_key(c, p->name);
            invalid(c, "is required");
            pop(c, old);
        }
    }
    sf_ind_spec_normalize(&out->spec);
}

static void check_ind_name(ctx *c, const char *name)
{
    if (!is_identifier(name))
        invalid(c,
                "invalid indicator name: use letters, digits and _, not starting "
                "with a digit, at most %d characters",
                SF_LOGIC_NAME_MAX - 1);
    else if (sf_field_find(name) >= 0)
        invalid(c, "indicator name clashes with the bar field %s", name);
}

static void do_indicators(ctx *c, json_t *obj)
{
    if (!json_is_object(obj)) {
        invalid(c, "must be an object");
        return;
    }
    if (json_object_size(obj) > SF_LOGIC_MAX_INDICATORS) {
        limit(c, "has %zu indicators; the limit is %d", json_object_size(obj), SF_LOGIC_MAX_INDICATORS);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        c->slots[c->n_slots++] = (ind_slot){.name = key, .spec = v, .info = NULL};
    }
    qsort(c->slots, (size_t)c->n_slots, sizeof c->slots[0], slot_cmp);
    free(c->lg->indicators);
    c->lg->indicators = calloc((size_t)(c->n_slots > 0 ? c->n_slots : 1), sizeof *c->lg->indicators);
    if (c->lg->indicators == NULL) {
        c->n_slots = 0;
        limit(c, "out of memory for %zu indicators", json_object_size(obj));
        return;
    }
    for (int i = 0; i < c->n_slots; i++) {
        sf_logic_indicator *out = &c->lg->indicators[i];
        size_t old = push_key(c, c->slots[i].name);
        check_ind_name(c, c->slots[i].name);
        snprintf(out->name, sizeof out->name, "%s", c->slots[i].name);
        compile_spec(c, &c->slots[i], out);
        pop(c, old);
    }
    c->lg->n_indicators = c->n_slots;
}

/* ---- operands ----------------------------------------------------------- */

static void output_list(const char *name, const sf_ind_info *info, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < info->n_outputs; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == info->n_outputs ? " or " : ", ");
        int n = snprintf(buf + used, size - used, "%s%.63s.%s", sep, name, info->outputs[i]);
        if (n < 0 || used + (size_t)n >= size)
            return;
        used += (size_t)n;
    }
}

/* The output of an indicator named by "name" or "name.output". Returns 0, or
 * -1 after recording an error (or silently, when the indicator's own type is
 * already reported as bad). */
static int resolve_output(ctx *c, const char *s, sf_operand *out)
{
    const char *dot = strchr(s, '.');
    size_t nlen = dot ? (size_t)(dot - s) : strlen(s);
    int idx = slot_find(c, s, nlen);
    if (idx < 0) {
        if (dot)
            invalid(c, "undefined indicator \"%.*s\" in \"%.80s\"", (int)(nlen > 63 ? 63 : nlen), s, s);
        else
            invalid(c, "unknown operand \"%.80s\": not a number, a bar field (" FIELD_LIST ") or a defined indicator",
                    s);
        return -1;
    }
    const sf_ind_info *info = c->slots[idx].info;
    if (info == NULL)
        return -1;
    out->kind = SF_OPD_OUTPUT;
    out->indicator = idx;
    char list[SF_LOGIC_ERROR_MAX / 2];
    output_list(c->slots[idx].name, info, list, sizeof list);
    if (dot == NULL) {
        if (info->n_outputs == 1)
            return 0;
        invalid(c, "%s has %d outputs: use %s", c->slots[idx].name, info->n_outputs, list);
        return -1;
    }
    for (int i = 0; i < info->n_outputs; i++) {
        if (strcmp(info->outputs[i], dot + 1) == 0) {
            out->output = i;
            return 0;
        }
    }
    invalid(c, "%s has no output \"%.40s\": use %s", c->slots[idx].name, dot + 1, list);
    return -1;
}

static int resolve_name(ctx *c, const char *s, sf_operand *out)
{
    int f = sf_field_find(s);
    if (f >= 0) {
        out->kind = SF_OPD_FIELD;
        out->field = (sf_field)f;
        return 0;
    }
    return resolve_output(c, s, out);
}

static void check_ref_offset(ctx *c, json_t *off, sf_operand *out)
{
    size_t old = push_key(c, "offset");
    double x = json_is_number(off) ? json_number_value(off) : NAN;
    if (off == NULL)
        invalid(c, "is required");
    else if (isnan(x) || x != floor(x) || x < 1 || x > SF_LOGIC_MAX_OFFSET)
        invalid(c, "must be an integer between 1 and %d", SF_LOGIC_MAX_OFFSET);
    else
        out->offset = (int)x;
    pop(c, old);
}

/* {"ref": name, "offset": n} */
static int compile_ref(ctx *c, json_t *obj, sf_operand *out)
{
    int bad = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "ref") != 0 && strcmp(key, "offset") != 0) {
            size_t old = push_key(c, key);
            invalid(c, "unknown key (expected ref, offset)");
            pop(c, old);
            bad = 1;
        }
    }
    json_t *ref = json_object_get(obj, "ref");
    size_t old = push_key(c, "ref");
    if (ref == NULL) {
        invalid(c, "is required");
        bad = 1;
    } else if (!json_is_string(ref)) {
        invalid(c, "must be a bar field or an indicator name");
        bad = 1;
    } else if (resolve_name(c, json_string_value(ref), out) < 0) {
        bad = 1;
    }
    pop(c, old);
    check_ref_offset(c, json_object_get(obj, "offset"), out);
    return bad || out->offset == 0 ? -1 : 0;
}

static int compile_operand(ctx *c, json_t *v, sf_operand *out)
{
    memset(out, 0, sizeof *out);
    if (json_is_number(v)) {
        out->kind = SF_OPD_NUMBER;
        out->number = json_number_value(v);
        return 0;
    }
    if (json_is_string(v))
        return resolve_name(c, json_string_value(v), out);
    if (json_is_object(v)) {
        int rc = compile_ref(c, v, out);
        if (rc == 0 && out->offset > c->lg->max_offset)
            c->lg->max_offset = out->offset;
        return rc;
    }
    invalid(c, "must be a number, a bar field, an indicator name or {\"ref\", \"offset\"}");
    return -1;
}

/* ---- conditions --------------------------------------------------------- */

enum { K_LIST, K_NOT, K_CMP };

static const struct {
    const char *name;
    sf_cond_op op;
    int kind;
} cond_ops[] = {
    {"all", SF_COND_ALL, K_LIST},
    {"any", SF_COND_ANY, K_LIST},
    {"not", SF_COND_NOT, K_NOT},
    {"gt", SF_COND_GT, K_CMP},
    {"gte", SF_COND_GTE, K_CMP},
    {"lt", SF_COND_LT, K_CMP},
    {"lte", SF_COND_LTE, K_CMP},
    {"crosses_above", SF_COND_CROSSES_ABOVE, K_CMP},
    {"crosses_below", SF_COND_CROSSES_BELOW, K_CMP},
};

#define N_COND_OPS (sizeof cond_ops / sizeof cond_ops[0])

static int compile_cond(ctx *c, json_t *v, int depth);

/* Grow *arr (of elem-byte items, *cap of them) to hold need, doubling up to
 * SF_LOGIC_MAX_NODES; 0 when out of memory. */
static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 1;
    int n = *cap > 0 ? *cap : 16;
    while (n < need)
        n *= 2;
    if (n > SF_LOGIC_MAX_NODES)
        n = SF_LOGIC_MAX_NODES;
    void *p = realloc(*arr, (size_t)n * elem);
    if (p == NULL)
        return 0;
    *arr = p;
    *cap = n;
    return 1;
}

/* The node limit was reached (or memory ran out): reported once. */
static void nodes_full(ctx *c, int oom)
{
    if (!c->nodes_full) {
        if (oom)
            limit(c, "out of memory for condition nodes");
        else
            limit(c, "more than %d condition nodes", SF_LOGIC_MAX_NODES);
    }
    c->nodes_full = 1;
}

/* A new node, or -1 (reported once) when the node limit is reached. The
 * array may move: callers hold indices, not pointers, across new_node. */
static int new_node(ctx *c, sf_cond_op op)
{
    if (c->lg->n_conds >= SF_LOGIC_MAX_NODES) {
        nodes_full(c, 0);
        return -1;
    }
    void *arr = c->lg->conds;
    if (!grow(&arr, &c->cap_conds, c->lg->n_conds + 1, sizeof *c->lg->conds)) {
        nodes_full(c, 1);
        return -1;
    }
    c->lg->conds = arr;
    int idx = c->lg->n_conds++;
    memset(&c->lg->conds[idx], 0, sizeof c->lg->conds[idx]);
    c->lg->conds[idx].op = op;
    c->lg->conds[idx].first_child = -1;
    return idx;
}

/* Reserve n contiguous child slots; -1 when that passes the node limit. */
static int reserve_children(ctx *c, size_t n)
{
    if (n > (size_t)(SF_LOGIC_MAX_NODES - c->n_children)) {
        nodes_full(c, 0);
        return -1;
    }
    void *arr = c->lg->children;
    if (!grow(&arr, &c->cap_children, c->n_children + (int)n, sizeof *c->lg->children)) {
        nodes_full(c, 1);
        return -1;
    }
    c->lg->children = arr;
    int first = c->n_children;
    c->n_children += (int)n;
    return first;
}

static void compile_list(ctx *c, int node, json_t *arr, int depth)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        invalid(c, "must be a non-empty array of conditions");
        return;
    }
    int first = reserve_children(c, json_array_size(arr));
    if (first < 0)
        return;
    c->lg->conds[node].first_child = first;
    c->lg->conds[node].n_children = (int)json_array_size(arr);
    for (size_t i = 0; i < json_array_size(arr) && !c->nodes_full; i++) {
        size_t old = push_index(c, i);
        int child = compile_cond(c, json_array_get(arr, i), depth + 1); /* may move children */
        c->lg->children[first + (int)i] = child;
        pop(c, old);
    }
}

static void compile_not(ctx *c, int node, json_t *v, int depth)
{
    int first = reserve_children(c, 1);
    if (first < 0)
        return;
    c->lg->conds[node].first_child = first;
    c->lg->conds[node].n_children = 1;
    int child = compile_cond(c, v, depth + 1); /* may move children */
    c->lg->children[first] = child;
}

static void compile_cmp(ctx *c, int node, json_t *arr)
{
    if (!json_is_array(arr) || json_array_size(arr) != 2) {
        invalid(c, "must be an array of 2 operands");
        return;
    }
    sf_cond *cd = &c->lg->conds[node];
    int rc = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t old = push_index(c, i);
        rc |= compile_operand(c, json_array_get(arr, i), i == 0 ? &cd->a : &cd->b);
        pop(c, old);
    }
    if (rc == 0 && cd->a.kind == SF_OPD_NUMBER && cd->b.kind == SF_OPD_NUMBER)
        invalid(c, "compares two constants");
}

static int compile_cond(ctx *c, json_t *v, int depth)
{
    if (depth > SF_LOGIC_MAX_DEPTH) {
        limit(c, "conditions nest deeper than %d levels", SF_LOGIC_MAX_DEPTH);
        return -1;
    }
    if (!json_is_object(v) || json_object_size(v) != 1) {
        invalid(c, "must be an object with exactly one key: " COND_LIST);
        return -1;
    }
    const char *key = json_object_iter_key(json_object_iter(v));
    json_t *arg = json_object_iter_value(json_object_iter(v));
    size_t k = 0;
    while (k < N_COND_OPS && strcmp(cond_ops[k].name, key) != 0)
        k++;
    size_t old = push_key(c, key);
    int node = k < N_COND_OPS ? new_node(c, cond_ops[k].op) : -1;
    if (k == N_COND_OPS)
        invalid(c, "unknown condition (expected " COND_LIST ")");
    else if (node >= 0 && cond_ops[k].kind == K_LIST)
        compile_list(c, node, arg, depth);
    else if (node >= 0 && cond_ops[k].kind == K_NOT)
        compile_not(c, node, arg, depth);
    else if (node >= 0)
        compile_cmp(c, node, arg);
    pop(c, old);
    return node;
}

/* ---- top level ---------------------------------------------------------- */

static void do_name(ctx *c, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    int ctl = 0;
    for (size_t i = 0; i < n; i++)
        ctl |= (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
    if (s == NULL || n == 0 || n >= SF_LOGIC_NAME_MAX || ctl)
        invalid(c, "must be a string of 1 to %d characters, no control characters", SF_LOGIC_NAME_MAX - 1);
    else
        memcpy(c->lg->name, s, n + 1);
}

static void do_description(ctx *c, json_t *v)
{
    if (!json_is_string(v))
        invalid(c, "must be a string");
}

static void do_entry(ctx *c, json_t *v)
{
    c->lg->entry = compile_cond(c, v, 1);
}

static void do_exit(ctx *c, json_t *v)
{
    c->lg->exit = compile_cond(c, v, 1);
}

static void do_side(ctx *c, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(s, "long") == 0)
        c->lg->side = 1;
    else if (strcmp(s, "short") == 0)
        c->lg->side = -1;
    else
        invalid(c, "must be \"long\" or \"short\"");
}

#define LG_OFF(f) offsetof(sf_logic, f)

static const num_rule risk_rules[] = {
    {"stop_loss_pct", LG_OFF(stop_loss_pct), 0, 100, 1, 1, "must be a number > 0 and < 100"},
    {"take_profit_pct", LG_OFF(take_profit_pct), 0, INFINITY, 1, 1, "must be a number > 0"},
};

static const num_rule exec_rules[] = {
    {"fee_bps", LG_OFF(fee_bps), 0, 1000, 0, 0, "must be a number between 0 and 1000"},
    {"slippage_bps", LG_OFF(slippage_bps), 0, 1000, 0, 0, "must be a number between 0 and 1000"},
};

static const num_rule capital_rules[] = {
    {"initial", LG_OFF(initial_capital), 0, INFINITY, 1, 1, "must be a number > 0"},
    {"position_pct", LG_OFF(position_pct), 0, 100, 1, 0, "must be a number > 0 and <= 100"},
};

static void do_risk(ctx *c, json_t *v)
{
    check_section(c, v, risk_rules, 2, NULL, "stop_loss_pct, take_profit_pct");
}

static void do_fill(ctx *c, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t old = push_key(c, "fill");
    if (strcmp(s, "next_open") == 0)
        c->lg->fill = SF_FILL_NEXT_OPEN;
    else if (strcmp(s, "close") == 0)
        c->lg->fill = SF_FILL_CLOSE;
    else
        invalid(c, "must be \"next_open\" or \"close\"");
    pop(c, old);
}

static void do_execution(ctx *c, json_t *v)
{
    check_section(c, v, exec_rules, 2, "fill", "fill, fee_bps, slippage_bps");
    json_t *fill = json_is_object(v) ? json_object_get(v, "fill") : NULL;
    if (fill != NULL)
        do_fill(c, fill);
}

static void do_capital(ctx *c, json_t *v)
{
    check_section(c, v, capital_rules, 2, NULL, "initial, position_pct");
}

static void do_ppy(ctx *c, json_t *v)
{
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        invalid(c, "must be a number > 0");
    else
        c->lg->periods_per_year = json_number_value(v);
}

/* In processing order: indicators before the conditions that name them. */
static const struct {
    const char *key;
    void (*fn)(ctx *c, json_t *v);
    int required;
} top_keys[] = {
    {"name", do_name, 1},
    {"description", do_description, 0},
    {"indicators", do_indicators, 0},
    {"entry", do_entry, 1},
    {"exit", do_exit, 0},
    {"side", do_side, 0},
    {"risk", do_risk, 0},
    {"execution", do_execution, 0},
    {"capital", do_capital, 0},
    {"periods_per_year", do_ppy, 0},
};

#define N_TOP_KEYS (sizeof top_keys / sizeof top_keys[0])
#define TOP_LIST                                                                                                       \
    "name, description, indicators, entry, exit, side, risk, execution, "                                              \
    "capital, periods_per_year"

static void check_top_unknown(ctx *c, json_t *root)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        size_t i = 0;
        while (i < N_TOP_KEYS && strcmp(top_keys[i].key, key) != 0)
            i++;
        if (i == N_TOP_KEYS) {
            size_t old = push_key(c, key);
            invalid(c, "unknown key (expected " TOP_LIST ")");
            pop(c, old);
        }
    }
}

static void check_root(ctx *c, json_t *root)
{
    if (!json_is_object(root)) {
        invalid(c, "logic must be a JSON object");
        return;
    }
    for (size_t i = 0; i < N_TOP_KEYS; i++) {
        json_t *v = json_object_get(root, top_keys[i].key);
        size_t old = push_key(c, top_keys[i].key);
        if (v != NULL)
            top_keys[i].fn(c, v);
        else if (top_keys[i].required)
            invalid(c, "is required");
        pop(c, old);
    }
    check_top_unknown(c, root);
}

/* ---- building the program ----------------------------------------------- */

/* The arrays start empty and grow as the parse fills them (a typical logic
 * has a handful of nodes, and sweeps parse one logic per member). */
static sf_logic *logic_alloc(void)
{
    sf_logic *lg = calloc(1, sizeof *lg);
    if (lg == NULL)
        return NULL;
    lg->side = 1;
    lg->entry = -1;
    lg->exit = -1;
    lg->stop_loss_pct = NAN;
    lg->take_profit_pct = NAN;
    lg->fill = SF_FILL_NEXT_OPEN;
    lg->initial_capital = 10000;
    lg->position_pct = 100;
    lg->periods_per_year = 252;
    return lg;
}

void sf_logic_free(sf_logic *logic)
{
    if (logic == NULL)
        return;
    free(logic->indicators);
    free(logic->conds);
    free(logic->children);
    free(logic);
}

static void summarize(const sf_logic_errors *e, sf_status code, sf_err *err)
{
    int more = e->count - 1 + e->dropped;
    const char *sep = e->path[0][0] ? ": " : "";
    if (more > 0)
        sf_err_set(err, code, "invalid logic: %s%s%s (and %d more error%s)", e->path[0], sep, e->message[0], more,
                   more == 1 ? "" : "s");
    else
        sf_err_set(err, code, "invalid logic: %s%s%s", e->path[0], sep, e->message[0]);
}

/* Only the counts: entries are written before count covers them (the
 * struct is 16 KB, and sweeps parse one logic per member). */
static void errors_reset(sf_logic_errors *e)
{
    e->count = e->dropped = 0;
    e->path[0][0] = e->message[0][0] = '\0';
}

/* The one error of text that cannot be parsed: no path, status code. */
static sf_status text_error(sf_logic_errors *e, sf_status code, const char *msg, sf_err *err)
{
    e->count = 1;
    e->dropped = 0;
    e->path[0][0] = '\0';
    copy_clean(e->message[0], sizeof e->message[0], msg);
    summarize(e, code, err);
    return code;
}

static sf_status parse_json(const char *json, size_t len, json_t **root, sf_logic_errors *e, sf_err *err)
{
    char msg[SF_LOGIC_ERROR_MAX];
    if (len > SF_LOGIC_MAX_INPUT) {
        snprintf(msg, sizeof msg, "logic is %zu bytes; the limit is %zu", len, (size_t)SF_LOGIC_MAX_INPUT);
        return text_error(e, SF_ERR_LIMIT, msg, err);
    }
    json_error_t je;
    *root = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (*root != NULL)
        return SF_OK;
    snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    return text_error(e, SF_ERR_PARSE, msg, err);
}

sf_status sf_logic_from_json(const json_t *root, sf_logic **out, sf_logic_errors *errs, sf_err *err)
{
    sf_logic_errors local;
    errors_reset(&local);
    *out = NULL;
    if (errs != NULL)
        errors_reset(errs);
    ctx *c = malloc(sizeof *c);
    if (c != NULL) {
        memset(c, 0, offsetof(ctx, path));
        c->path[0] = '\0';
    }
    if (c == NULL || (c->lg = logic_alloc()) == NULL) {
        free(c);
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate a logic: out of memory");
    }
    c->errs = errs ? errs : &local;
    /* The checkers only read the tree; jansson's getters and iterators take
     * non-const pointers. */
    check_root(c, (json_t *)(uintptr_t)root);
    sf_status st = c->status;
    if (st != SF_OK) {
        summarize(c->errs, st, err);
        sf_logic_free(c->lg);
    } else {
        *out = c->lg;
    }
    free(c);
    return st;
}

sf_status sf_logic_parse(const char *json, size_t len, sf_logic **out, sf_logic_errors *errs, sf_err *err)
{
    sf_logic_errors local;
    *out = NULL;
    json_t *root = NULL;
    sf_status st = parse_json(json, len, &root, errs ? errs : &local, err);
    if (st != SF_OK)
        return st;
    st = sf_logic_from_json(root, out, errs, err);
    json_decref(root);
    return st;
}

void sf_logic_errors_format(const sf_logic_errors *errs, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    buf[0] = '\0';
    size_t used = 0;
    for (int i = 0; errs != NULL && i < errs->count && used < size; i++) {
        const char *sep = errs->path[i][0] ? ": " : "";
        int n = snprintf(buf + used, size - used, "%s%s%s%s", i ? "\n" : "", errs->path[i], sep, errs->message[i]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (errs != NULL && errs->dropped > 0 && used < size)
        snprintf(buf + used, size - used, "\n(and %d more error%s)", errs->dropped, errs->dropped == 1 ? "" : "s");
}
