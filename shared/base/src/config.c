/* config: environment variables through one table; see sf/config.h. */
#include "sf/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define VALUE_FILE_MAX 65536

const char *const sf_config_log_levels[] = {"debug", "info", "warn", "error", NULL};

sf_status sf_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, sf_err *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || isspace((unsigned char)*s) || end == s || *end != '\0' || errno == ERANGE || v < min || v > max)
        return sf_err_set(err, SF_ERR_INVALID, "must be an integer from %lld to %lld, got \"%.64s\"", (long long)min,
                          (long long)max, s);
    *out = v;
    return SF_OK;
}

sf_status sf_config_parse_double(const char *s, double min, double max, double *out, sf_err *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || isspace((unsigned char)*s) || end == s || *end != '\0' || errno == ERANGE || !isfinite(v) ||
        v < min || v > max)
        return sf_err_set(err, SF_ERR_INVALID, "must be a number from %g to %g, got \"%.64s\"", min, max, s);
    *out = v;
    return SF_OK;
}

static sf_status parse_bool(const char *s, int *out, sf_err *err)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return SF_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return SF_OK;
        }
    }
    return sf_err_set(err, SF_ERR_INVALID, "must be true or false, got \"%.64s\"", s);
}

static sf_status parse_enum(const char *s, const char *const *choices, int *out, sf_err *err)
{
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return SF_OK;
        }
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", choices[i]);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    return sf_err_set(err, SF_ERR_INVALID, "must be one of %s, got \"%.64s\"", list, s);
}

/* A value file's buffer is wiped before it is freed: it may hold a secret. */
static void free_wiped(char *buf)
{
    if (buf == NULL)
        return;
    explicit_bzero(buf, VALUE_FILE_MAX + 1);
    free(buf);
}

/* Who may touch a secret's file: only its owner may write it, and others may
 * read it only when allow_others_read (group reading is allowed: Kubernetes'
 * defaultMode 0440 with an fsGroup). */
static sf_status check_secret_mode(const char *path, mode_t mode, int allow_others_read, sf_err *err)
{
    unsigned m = (unsigned)(mode & 07777);
    if (m & 022)
        return sf_err_set(err, SF_ERR_CONFIG,
                          "file \"%s\" has mode %04o: a secret's file must not be writable by its group "
                          "or others (chmod go-w)",
                          path, m);
    if ((m & 007) && !allow_others_read)
        return sf_err_set(err, SF_ERR_CONFIG,
                          "file \"%s\" has mode %04o: a secret's file must not be readable by others "
                          "(chmod o-rwx; in Kubernetes a defaultMode of 0400 or 0440), or set "
                          "SF_ALLOW_WORLD_READABLE_SECRETS=true",
                          path, m);
    return SF_OK;
}

/* The value in buf[0, len): trailing spaces, tabs, \r and \n dropped, and
 * refused when a line break or a NUL is left inside. */
static sf_status trim_value(const char *path, char *buf, size_t len, sf_err *err)
{
    while (len && strchr(" \t\r\n", buf[len - 1]) != NULL)
        len--;
    buf[len] = '\0';
    if (memchr(buf, '\n', len) || memchr(buf, '\r', len))
        return sf_err_set(err, SF_ERR_CONFIG, "file \"%s\" holds more than one line", path);
    if (strlen(buf) != len)
        return sf_err_set(err, SF_ERR_CONFIG, "file \"%s\" holds a NUL byte", path);
    return SF_OK;
}

/* All of fd into buf (VALUE_FILE_MAX + 1 bytes); *len gets its length. */
static sf_status read_all(int fd, const char *path, char *buf, size_t *len, sf_err *err)
{
    *len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + *len, VALUE_FILE_MAX + 1 - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sf_err_sys(err, SF_ERR_IO, errno, "could not read \"%s\": %s", path, sf_err_errno_text(errno).text);
        if (r == 0)
            return SF_OK;
        *len += (size_t)r;
        if (*len > VALUE_FILE_MAX)
            return sf_err_set(err, SF_ERR_LIMIT, "file \"%s\" is larger than %d bytes", path, VALUE_FILE_MAX);
    }
}

/* Read NAME_FILE's content (mode checked first when secret, see
 * check_secret_mode); *out is freed by free_wiped. */
static sf_status read_value_file(const char *path, int secret, int allow_others_read, char **out, sf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sf_err_sys(err, SF_ERR_IO, errno, "could not open \"%s\": %s", path, sf_err_errno_text(errno).text);
    struct stat st;
    sf_status rc = fstat(fd, &st) == 0 ? SF_OK
                                       : sf_err_sys(err, SF_ERR_IO, errno, "could not stat \"%s\": %s", path,
                                                    sf_err_errno_text(errno).text);
    if (rc == SF_OK && secret) /* the file opened, after any symlink (Kubernetes' ..data links) */
        rc = check_secret_mode(path, st.st_mode, allow_others_read, err);
    char *buf = rc == SF_OK ? malloc(VALUE_FILE_MAX + 1) : NULL;
    if (rc == SF_OK && buf == NULL)
        rc = sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    size_t len = 0;
    if (rc == SF_OK)
        rc = read_all(fd, path, buf, &len, err);
    close(fd);
    if (rc == SF_OK)
        rc = trim_value(path, buf, len, err);
    if (rc != SF_OK) {
        free_wiped(buf);
        return rc;
    }
    *out = buf;
    return SF_OK;
}

/* SF_ALLOW_WORLD_READABLE_SECRETS: may others read a secret's file. */
static sf_status allow_others_read(sf_config_lookup_fn lookup, void *ctx, int *out, sf_err *err)
{
    const char *v = lookup("SF_ALLOW_WORLD_READABLE_SECRETS", ctx);
    *out = 0;
    if (v == NULL || *v == '\0')
        return SF_OK;
    sf_status st = parse_bool(v, out, err);
    if (st != SF_OK)
        sf_err_prefix(err, "SF_ALLOW_WORLD_READABLE_SECRETS");
    return st;
}

/* The raw text for a variable: NAME, NAME_FILE, or the default; *heap set
 * when the returned text must be freed. NULL with SF_OK: unset, no default. */
static sf_status raw_value(const sf_config_var *v, sf_config_lookup_fn lookup, void *ctx, const char **text,
                           char **heap, sf_err *err)
{
    char fname[128];
    snprintf(fname, sizeof fname, "%s_FILE", v->name);
    const char *direct = lookup(v->name, ctx);
    const char *file = lookup(fname, ctx);
    *heap = NULL;
    if (direct && file)
        return sf_err_set(err, SF_ERR_CONFIG, "set either %s or %s, not both", v->name, fname);
    if (file) {
        int others = 0;
        sf_status st = v->secret ? allow_others_read(lookup, ctx, &others, err) : SF_OK;
        if (st == SF_OK)
            st = read_value_file(file, v->secret, others, heap, err);
        if (st != SF_OK) {
            sf_err_prefix(err, "%s", fname);
            return st;
        }
        *text = *heap;
        return SF_OK;
    }
    *text = direct ? direct : v->def;
    return SF_OK;
}

static sf_status store(const sf_config_var *v, const char *text, char *base, sf_err *err)
{
    void *slot = base + v->offset;
    switch (v->type) {
    case SF_CFG_STRING: {
        char *copy = strdup(text);
        if (copy == NULL)
            return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        free(*(char **)slot);
        *(char **)slot = copy;
        return SF_OK;
    }
    case SF_CFG_INT: return sf_config_parse_int(text, (int64_t)v->min, (int64_t)v->max, (int64_t *)slot, err);
    case SF_CFG_DOUBLE: return sf_config_parse_double(text, v->min, v->max, (double *)slot, err);
    case SF_CFG_BOOL: return parse_bool(text, (int *)slot, err);
    case SF_CFG_ENUM: return parse_enum(text, v->choices, (int *)slot, err);
    }
    return sf_err_set(err, SF_ERR_INTERNAL, "unknown variable type");
}

/* A secret's bad value is not echoed: cut the message before ", got \"". */
static void hide_secret(const sf_config_var *v, char *msg)
{
    char *got = v->secret ? strstr(msg, ", got \"") : NULL;
    if (got)
        snprintf(got, SF_ERR_MSG_MAX - (size_t)(got - msg), " (value hidden: secret)");
}

static const char *env_lookup(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

sf_status sf_config_load(const sf_config_var *vars, size_t n, void *out, sf_buf *errors)
{
    return sf_config_load_from(vars, n, env_lookup, NULL, out, errors);
}

sf_status sf_config_load_from(const sf_config_var *vars, size_t n, sf_config_lookup_fn lookup, void *ctx, void *out,
                              sf_buf *errors)
{
    sf_status result = SF_OK;
    for (size_t i = 0; i < n; i++) {
        const sf_config_var *v = &vars[i];
        const char *text = NULL;
        char *heap = NULL;
        sf_err err = {0};
        sf_status st = raw_value(v, lookup, ctx, &text, &heap, &err);
        if (st == SF_OK && (text == NULL || (v->def == NULL && text[0] == '\0')))
            st = sf_err_set(&err, SF_ERR_CONFIG, "is required");
        if (st == SF_OK)
            st = store(v, text, out, &err);
        free_wiped(heap);
        if (st != SF_OK) {
            result = SF_ERR_CONFIG;
            hide_secret(v, err.msg);
            if (strncmp(err.msg, v->name, strlen(v->name)) == 0)
                sf_buf_printf(errors, NULL, "%s\n", err.msg);
            else
                sf_buf_printf(errors, NULL, "%s: %s\n", v->name, err.msg);
        }
    }
    return result;
}

void sf_config_free(const sf_config_var *vars, size_t n, void *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (vars[i].type != SF_CFG_STRING)
            continue;
        char **slot = (char **)((char *)out + vars[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

static const char *type_name(const sf_config_var *v)
{
    static const char *const names[] = {"string", "integer", "number", "boolean", "one of"};
    return names[v->type];
}

sf_status sf_config_help(const char *usage, const char *summary, const sf_config_var *vars, size_t n, sf_buf *out,
                         sf_err *err)
{
    sf_status st = sf_buf_printf(
        out, err,
        "usage: %s\n\n%s\n\nenvironment (each NAME may also be given as NAME_FILE, a file holding the value):\n", usage,
        summary);
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        const sf_config_var *v = &vars[i];
        st = sf_buf_printf(out, err, "  %-22s %s", v->name, type_name(v));
        if (st == SF_OK && v->type == SF_CFG_ENUM)
            for (int c = 0; v->choices[c] && st == SF_OK; c++)
                st = sf_buf_printf(out, err, "%s%s", c ? "|" : " ", v->choices[c]);
        if (st == SF_OK && v->type == SF_CFG_INT) /* %g would print 1e+06 */
            st = sf_buf_printf(out, err, " [%lld..%lld]", (long long)v->min, (long long)v->max);
        if (st == SF_OK && v->type == SF_CFG_DOUBLE)
            st = sf_buf_printf(out, err, " [%g..%g]", v->min, v->max);
        if (st != SF_OK)
            break;
        if (v->def == NULL)
            st = sf_buf_printf(out, err, ", required");
        else if (v->secret)
            st = sf_buf_printf(out, err, ", secret");
        else
            st = sf_buf_printf(out, err, ", default \"%s\"", v->def);
        if (st == SF_OK)
            st = sf_buf_printf(out, err, "\n      %s\n", v->help);
    }
    return st;
}

sf_status sf_config_errors_format(const char *prog, const sf_buf *errors, sf_buf *out, sf_err *err)
{
    sf_status st = SF_OK;
    for (const char *p = sf_buf_str(errors); *p && st == SF_OK;) {
        size_t len = strcspn(p, "\n");
        if (len > 0)
            st = sf_buf_printf(out, err, "%s: %.*s\n", prog, (int)len, p);
        p += len + (p[len] == '\n');
    }
    return st;
}
