/*
 * libFuzzer harness for the configuration parser: sf_config_load_from over a
 * table with a variable of every type, the input being "NAME=value" lines in
 * place of the environment (NAME_FILE is never given: no file is read).
 * Beyond "no crash, no leak, no UB" it checks the contract: success exactly
 * when no error line was written; each line starts with a variable's name;
 * a secret's line never quotes the value it was given; every stored value is
 * within its bounds and strings are the value given (or the default).
 * Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sf/buf.h"
#include "sf/config.h"

#define MAX_LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_config {
    char *name;
    int64_t threads;
    double ratio;
    int flag;
    int mode;
    int64_t pin;
    char *url;
} fz_config;

static const char *const MODES[] = {"fast", "safe", "off", NULL};

static const sf_config_var VARS[] = {
    {"NAME", SF_CFG_STRING, "dev", 0, 0, NULL, 0, offsetof(fz_config, name), "a string"},
    {"THREADS", SF_CFG_INT, "4", 1, 256, NULL, 0, offsetof(fz_config, threads), "an integer"},
    {"RATIO", SF_CFG_DOUBLE, "0.5", -1, 1e6, NULL, 0, offsetof(fz_config, ratio), "a number"},
    {"FLAG", SF_CFG_BOOL, "false", 0, 0, NULL, 0, offsetof(fz_config, flag), "a boolean"},
    {"MODE", SF_CFG_ENUM, "safe", 0, 0, MODES, 0, offsetof(fz_config, mode), "an enum"},
    {"PIN", SF_CFG_INT, "0", 0, 9999, NULL, 1, offsetof(fz_config, pin), "a secret integer"},
    {"URL", SF_CFG_STRING, NULL, 0, 0, NULL, 1, offsetof(fz_config, url), "a required secret"},
};
#define N_VARS (sizeof VARS / sizeof VARS[0])

typedef struct env {
    char *name[MAX_LINES], *value[MAX_LINES];
    size_t n;
} env;

static const char *lookup(const char *name, void *ctx)
{
    const env *e = ctx;
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->name[i], name) == 0)
            return e->value[i];
    return NULL;
}

/* "NAME=value" lines into e (the text is cut in place); names ending in _FILE dropped. */
static void split(char *text, env *e)
{
    for (char *line = text; line != NULL && e->n < MAX_LINES;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *eq = strchr(line, '=');
        size_t len = eq ? (size_t)(eq - line) : 0;
        if (eq && !(len >= 5 && memcmp(eq - 5, "_FILE", 5) == 0)) {
            *eq = '\0';
            e->name[e->n] = line;
            e->value[e->n++] = eq + 1;
        }
        line = nl ? nl + 1 : NULL;
    }
}

static void check_errors(const env *e, const sf_buf *errors)
{
    const char *s = sf_buf_str(errors);
    for (const char *line = s; *line;) {
        const char *nl = strchr(line, '\n');
        if (nl == NULL)
            __builtin_trap();
        int named = 0;
        for (size_t i = 0; i < N_VARS; i++) {
            size_t n = strlen(VARS[i].name);
            named |= strncmp(line, VARS[i].name, n) == 0 && (line[n] == ':' || strncmp(line + n, "_FILE", 5) == 0);
        }
        if (!named)
            __builtin_trap();
        line = nl + 1;
    }
    (void)e;
    for (size_t i = 0; i < N_VARS; i++) { /* a secret's line never quotes the value */
        size_t n = strlen(VARS[i].name);
        for (const char *line = s; VARS[i].secret && *line; line = strchr(line, '\n') + 1) {
            const char *nl = strchr(line, '\n'), *got = strstr(line, "got \"");
            if (strncmp(line, VARS[i].name, n) == 0 && line[n] == ':' && got != NULL && got < nl)
                __builtin_trap();
        }
    }
}

static void check_values(const env *e, const fz_config *c)
{
    const char *name = lookup("NAME", (void *)e), *url = lookup("URL", (void *)e);
    if (strcmp(c->name, name ? name : "dev") != 0 || url == NULL || strcmp(c->url, url) != 0 || c->url[0] == '\0')
        __builtin_trap();
    if (c->threads < 1 || c->threads > 256 || !(c->ratio >= -1 && c->ratio <= 1e6) || (c->flag != 0 && c->flag != 1) ||
        c->mode < 0 || c->mode > 2 || c->pin < 0 || c->pin > 9999)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    env e = {0};
    split(text, &e);
    fz_config c = {0};
    sf_buf errors;
    sf_buf_init(&errors, SIZE_MAX);
    sf_status st = sf_config_load_from(VARS, N_VARS, lookup, &e, &c, &errors);
    if ((st == SF_OK) != (errors.len == 0) || (st != SF_OK && st != SF_ERR_CONFIG))
        __builtin_trap();
    check_errors(&e, &errors);
    if (st == SF_OK)
        check_values(&e, &c);
    sf_config_free(VARS, N_VARS, &c);
    sf_buf_destroy(&errors);
    free(text);
    return 0;
}
