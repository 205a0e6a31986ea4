/* Unit tests of sf_config: strict parsing, *_FILE, error lines, --help.
 * Criterion runs each test in its own process, so setenv stays local. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf/config.h"

typedef struct cfg {
    sf_common_config common;
    int64_t threads;
    double ratio;
    int verbose;
    int mode;
    char *db_url;
    char *name;
    int64_t pin;
} cfg;

static const char *const modes[] = {"fast", "safe", NULL};

static const sf_config_var vars[] = {
    {"T_THREADS", SF_CFG_INT, "4", 1, 256, NULL, 0, offsetof(cfg, threads), "worker threads"},
    {"T_RATIO", SF_CFG_DOUBLE, "0.5", 0, 1, NULL, 0, offsetof(cfg, ratio), "a fraction"},
    {"T_VERBOSE", SF_CFG_BOOL, "false", 0, 0, NULL, 0, offsetof(cfg, verbose), "more output"},
    {"T_MODE", SF_CFG_ENUM, "safe", 0, 0, modes, 0, offsetof(cfg, mode), "how to run"},
    {"T_DB_URL", SF_CFG_STRING, NULL, 0, 0, NULL, 1, offsetof(cfg, db_url), "database"},
    {"T_NAME", SF_CFG_STRING, "anon", 0, 0, NULL, 0, offsetof(cfg, name), "a name"},
    {"T_PIN", SF_CFG_INT, "1234", 0, 9999, NULL, 1, offsetof(cfg, pin), "a secret number"},
    SF_CONFIG_COMMON_VARS(cfg, common),
};
#define NV (sizeof vars / sizeof vars[0])

static void set_required(void)
{
    setenv("T_DB_URL", "postgresql://u:pw@h/d", 1);
}

/* Load into c; returns the status and leaves the error text in errors. */
static sf_status load(cfg *c, sf_buf *errors)
{
    memset(c, 0, sizeof *c);
    sf_buf_init(errors, 1 << 16);
    return sf_config_load(vars, NV, c, errors);
}

static void done(cfg *c, sf_buf *errors)
{
    sf_config_free(vars, NV, c);
    sf_buf_destroy(errors);
}

Test(config, defaults_fill_every_field)
{
    set_required();
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_OK, "%s", sf_buf_str(&e));
    cr_assert_eq(c.threads, 4);
    cr_assert_float_eq(c.ratio, 0.5, 1e-12);
    cr_assert_eq(c.verbose, 0);
    cr_assert_eq(c.mode, 1);
    cr_assert_str_eq(c.name, "anon");
    cr_assert_str_eq(c.db_url, "postgresql://u:pw@h/d");
    cr_assert_str_eq(c.common.environment, "dev");
    cr_assert_eq(c.common.log_level, 1);
    cr_assert_str_eq(c.common.log_dir, "");
    cr_assert_str_eq(sf_buf_str(&e), "");
    done(&c, &e);
}

Test(config, integers_are_parsed_strictly)
{
    static const char *const bad[] = {
        "12x", "", " 12", "12 ", "0", "257", "-1", "1.5", "0x10", "99999999999999999999", "-99999999999999999999",
        "four"};
    set_required();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("T_THREADS", bad[i], 1);
        cfg c;
        sf_buf e;
        cr_assert_eq(load(&c, &e), SF_ERR_CONFIG, "\"%s\" accepted", bad[i]);
        cr_assert(strncmp(sf_buf_str(&e), "T_THREADS: must be an integer from 1 to 256", 43) == 0, "%s",
                  sf_buf_str(&e));
        done(&c, &e);
    }
    static const struct {
        const char *s;
        int64_t v;
    } good[] = {{"1", 1}, {"256", 256}, {"017", 17}, {"+8", 8}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("T_THREADS", good[i].s, 1);
        cfg c;
        sf_buf e;
        cr_assert_eq(load(&c, &e), SF_OK, "%s", sf_buf_str(&e));
        cr_assert_eq(c.threads, good[i].v);
        done(&c, &e);
    }
}

Test(config, parse_int_checks_the_full_range_of_int64)
{
    int64_t v = 0;
    sf_err err = {0};
    cr_assert_eq(sf_config_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v, &err), SF_OK);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(sf_config_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v, &err), SF_ERR_INVALID);
    cr_assert_eq(v, INT64_MAX, "untouched on failure");
    cr_assert_eq(sf_config_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v, &err), SF_OK);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(sf_config_parse_int("5", 6, 10, &v, &err), SF_ERR_INVALID);
    cr_assert_str_eq(err.msg, "must be an integer from 6 to 10, got \"5\"");
}

Test(config, doubles_are_parsed_strictly)
{
    double d = 0;
    sf_err err = {0};
    cr_assert_eq(sf_config_parse_double("0.25", 0, 1, &d, &err), SF_OK);
    cr_assert_float_eq(d, 0.25, 1e-15);
    static const char *const bad[] = {"", "1.5", "-0.1", "nan", "inf", "1e400", "0.5x", " 0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(sf_config_parse_double(bad[i], 0, 1, &d, &err), SF_ERR_INVALID, "\"%s\" accepted", bad[i]);
}

Test(config, booleans_accept_the_usual_words_only)
{
    static const struct {
        const char *s;
        int v;
    } table[] = {
        {"true", 1},  {"TRUE", 1},  {"1", 1}, {"yes", 1}, {"on", 1},
        {"false", 0}, {"False", 0}, {"0", 0}, {"no", 0},  {"off", 0},
    };
    set_required();
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        setenv("T_VERBOSE", table[i].s, 1);
        cfg c;
        sf_buf e;
        cr_assert_eq(load(&c, &e), SF_OK, "%s: %s", table[i].s, sf_buf_str(&e));
        cr_assert_eq(c.verbose, table[i].v, "%s", table[i].s);
        done(&c, &e);
    }
    static const char *const bad[] = {"", "2", "maybe", "y", "truee"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("T_VERBOSE", bad[i], 1);
        cfg c;
        sf_buf e;
        cr_assert_eq(load(&c, &e), SF_ERR_CONFIG, "\"%s\" accepted", bad[i]);
        cr_assert(strstr(sf_buf_str(&e), "T_VERBOSE: must be true or false") != NULL, "%s", sf_buf_str(&e));
        done(&c, &e);
    }
}

Test(config, enums_take_a_listed_choice_and_name_the_choices)
{
    set_required();
    setenv("T_MODE", "fast", 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_OK);
    cr_assert_eq(c.mode, 0);
    done(&c, &e);
    setenv("T_MODE", "FAST", 1);
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert_str_eq(sf_buf_str(&e), "T_MODE: must be one of fast, safe, got \"FAST\"\n");
    done(&c, &e);
}

Test(config, a_missing_or_empty_required_variable_is_reported)
{
    unsetenv("T_DB_URL");
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert_str_eq(sf_buf_str(&e), "T_DB_URL: is required\n");
    done(&c, &e);
    setenv("T_DB_URL", "", 1);
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert_str_eq(sf_buf_str(&e), "T_DB_URL: is required\n");
    done(&c, &e);
}

Test(config, every_bad_variable_is_reported_in_one_run)
{
    unsetenv("T_DB_URL");
    setenv("T_THREADS", "lots", 1);
    setenv("T_RATIO", "2", 1);
    setenv("T_VERBOSE", "perhaps", 1);
    setenv("T_MODE", "turbo", 1);
    setenv("LOG_LEVEL", "chatty", 1);
    setenv("T_NAME", "fine", 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    const char *want[] = {"T_THREADS: ", "T_RATIO: ", "T_VERBOSE: ", "T_MODE: ", "T_DB_URL: ", "LOG_LEVEL: "};
    const char *p = sf_buf_str(&e);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(strncmp(p, want[i], strlen(want[i])), 0, "line %zu: %s", i, p);
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    cr_assert_str_eq(p, "", "exactly one line per bad variable");
    cr_assert_str_eq(c.name, "fine", "good variables are still stored");
    done(&c, &e);
}

static void write_tmp(char *path, size_t size, const char *content)
{
    snprintf(path, size, "/tmp/sf_cfg_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
}

Test(config, file_variant_reads_the_value_and_drops_one_newline)
{
    char path[64];
    write_tmp(path, sizeof path, "postgresql://u:from-file@h/d\n");
    setenv("T_DB_URL_FILE", path, 1);
    unsetenv("T_DB_URL");
    char p2[64];
    write_tmp(p2, sizeof p2, "12\r\n");
    setenv("T_THREADS_FILE", p2, 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_OK, "%s", sf_buf_str(&e));
    cr_assert_str_eq(c.db_url, "postgresql://u:from-file@h/d");
    cr_assert_eq(c.threads, 12);
    done(&c, &e);
    unlink(path);
    unlink(p2);
}

Test(config, file_variant_errors_name_the_file_variable)
{
    setenv("T_DB_URL", "x", 1);
    setenv("T_DB_URL_FILE", "/nonexistent/secret", 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert_str_eq(sf_buf_str(&e), "T_DB_URL: set either T_DB_URL or T_DB_URL_FILE, not both\n");
    done(&c, &e);
    unsetenv("T_DB_URL");
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert(strncmp(sf_buf_str(&e), "T_DB_URL_FILE: could not open \"/nonexistent/secret\"", 51) == 0, "%s",
              sf_buf_str(&e));
    done(&c, &e);
}

/* Load with T_DB_URL (a secret) from a file holding content with mode m;
 * returns the status, the error text in e and the value in c. */
static sf_status load_secret_file(const char *content, mode_t m, cfg *c, sf_buf *e, char *path, size_t size)
{
    write_tmp(path, size, content);
    cr_assert_eq(chmod(path, m), 0);
    unsetenv("T_DB_URL");
    setenv("T_DB_URL_FILE", path, 1);
    return load(c, e);
}

Test(config, a_secret_file_others_may_write_is_refused_naming_variable_and_mode)
{
    static const mode_t bad[] = {0602, 0622, 0620, 0666, 0646};
    setenv("SF_ALLOW_WORLD_READABLE_SECRETS", "true", 1); /* never allows writing */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg c;
        sf_buf e;
        char path[64], want[160];
        cr_assert_eq(load_secret_file("postgresql://u:pw@h/d\n", bad[i], &c, &e, path, sizeof path), SF_ERR_CONFIG);
        snprintf(want, sizeof want, "T_DB_URL_FILE: file \"%s\" has mode %04o: a secret's file must not be writable",
                 path, (unsigned)bad[i]);
        cr_assert(strncmp(sf_buf_str(&e), want, strlen(want)) == 0, "%s", sf_buf_str(&e));
        cr_assert_null(c.db_url);
        done(&c, &e);
        unlink(path);
    }
}

Test(config, a_secret_file_others_may_read_is_refused_unless_allowed)
{
    static const mode_t bad[] = {0644, 0604, 0444, 0601};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg c;
        sf_buf e;
        char path[64], want[160];
        unsetenv("SF_ALLOW_WORLD_READABLE_SECRETS");
        cr_assert_eq(load_secret_file("postgresql://u:pw@h/d\n", bad[i], &c, &e, path, sizeof path), SF_ERR_CONFIG);
        snprintf(want, sizeof want,
                 "T_DB_URL_FILE: file \"%s\" has mode %04o: a secret's file must not be readable by others", path,
                 (unsigned)bad[i]);
        cr_assert(strncmp(sf_buf_str(&e), want, strlen(want)) == 0, "%s", sf_buf_str(&e));
        cr_assert(strstr(sf_buf_str(&e), "SF_ALLOW_WORLD_READABLE_SECRETS") != NULL, "%s", sf_buf_str(&e));
        done(&c, &e);
        setenv("SF_ALLOW_WORLD_READABLE_SECRETS", "true", 1);
        cr_assert_eq(load(&c, &e), SF_OK, "%s", sf_buf_str(&e));
        cr_assert_str_eq(c.db_url, "postgresql://u:pw@h/d");
        done(&c, &e);
        unlink(path);
    }
}

Test(config, secret_files_for_the_owner_or_a_reading_group_are_read)
{
    static const mode_t good[] = {0400, 0600, 0440, 0640, 0700};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cfg c;
        sf_buf e;
        char path[64];
        cr_assert_eq(load_secret_file("postgresql://u:pw@h/d\n", good[i], &c, &e, path, sizeof path), SF_OK, "%o: %s",
                     (unsigned)good[i], sf_buf_str(&e));
        cr_assert_str_eq(c.db_url, "postgresql://u:pw@h/d");
        done(&c, &e);
        unlink(path);
    }
}

Test(config, a_file_for_a_variable_that_is_not_secret_may_be_read_by_anyone)
{
    set_required();
    char path[64];
    write_tmp(path, sizeof path, "fine\n");
    cr_assert_eq(chmod(path, 0644), 0);
    setenv("T_NAME_FILE", path, 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_OK, "%s", sf_buf_str(&e));
    cr_assert_str_eq(c.name, "fine");
    done(&c, &e);
    unlink(path);
}

Test(config, a_bad_allow_world_readable_value_is_an_error)
{
    setenv("SF_ALLOW_WORLD_READABLE_SECRETS", "maybe", 1);
    cfg c;
    sf_buf e;
    char path[64];
    cr_assert_eq(load_secret_file("x\n", 0600, &c, &e, path, sizeof path), SF_ERR_CONFIG);
    cr_assert(strstr(sf_buf_str(&e), "SF_ALLOW_WORLD_READABLE_SECRETS: must be true or false") != NULL, "%s",
              sf_buf_str(&e));
    done(&c, &e);
    unlink(path);
}

Test(config, every_trailing_line_break_and_blank_is_dropped)
{
    static const char *const texts[] = {"postgresql://u:pw@h/d\n\n", "postgresql://u:pw@h/d\r\n\r\n",
                                        "postgresql://u:pw@h/d \t\n", "postgresql://u:pw@h/d\n \n\n",
                                        "postgresql://u:pw@h/d"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cfg c;
        sf_buf e;
        char path[64];
        cr_assert_eq(load_secret_file(texts[i], 0600, &c, &e, path, sizeof path), SF_OK, "%s", sf_buf_str(&e));
        cr_assert_str_eq(c.db_url, "postgresql://u:pw@h/d", "from text %zu", i);
        done(&c, &e);
        unlink(path);
    }
}

Test(config, a_value_file_with_an_inner_line_break_or_nul_is_refused)
{
    static const char *const texts[] = {"postgresql://u:pw@h/d\nsecond\n", "a\rb", "\npostgresql://u:pw@h/d"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cfg c;
        sf_buf e;
        char path[64], want[128];
        cr_assert_eq(load_secret_file(texts[i], 0600, &c, &e, path, sizeof path), SF_ERR_CONFIG);
        snprintf(want, sizeof want, "T_DB_URL_FILE: file \"%s\" holds more than one line\n", path);
        cr_assert_str_eq(sf_buf_str(&e), want);
        cr_assert_null(strstr(sf_buf_str(&e), "pw@"), "the value is not echoed");
        done(&c, &e);
        unlink(path);
    }
    cfg c;
    sf_buf e;
    char path[64], want[128];
    write_tmp(path, sizeof path, "");
    int fd = open(path, O_WRONLY);
    cr_assert_eq(write(fd, "ab\0cd\n", 6), 6);
    close(fd);
    setenv("T_DB_URL_FILE", path, 1);
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    snprintf(want, sizeof want, "T_DB_URL_FILE: file \"%s\" holds a NUL byte\n", path);
    cr_assert_str_eq(sf_buf_str(&e), want);
    done(&c, &e);
    unlink(path);
}

Test(config, a_secrets_bad_value_is_never_echoed)
{
    set_required();
    setenv("T_PIN", "hunter2", 1);
    cfg c;
    sf_buf e;
    cr_assert_eq(load(&c, &e), SF_ERR_CONFIG);
    cr_assert(strncmp(sf_buf_str(&e), "T_PIN: must be an integer from 0 to 9999", 40) == 0, "%s", sf_buf_str(&e));
    cr_assert_null(strstr(sf_buf_str(&e), "hunter2"), "%s", sf_buf_str(&e));
    done(&c, &e);
}

Test(config, help_lists_every_variable_and_hides_secrets)
{
    setenv("T_DB_URL", "postgresql://u:s3cret-pw@h/d", 1);
    setenv("T_PIN", "4321", 1);
    sf_buf out;
    sf_buf_init(&out, 1 << 16);
    cr_assert_eq(sf_config_help("prog", "Does things.", vars, NV, &out, NULL), SF_OK);
    const char *h = sf_buf_str(&out);
    cr_assert(strncmp(h, "usage: prog", 11) == 0, "%s", h);
    cr_assert(strstr(h, "Does things.") != NULL);
    for (size_t i = 0; i < NV; i++) {
        cr_assert(strstr(h, vars[i].name) != NULL, "help lacks %s", vars[i].name);
        cr_assert(strstr(h, vars[i].help) != NULL, "help lacks the text of %s", vars[i].name);
    }
    cr_assert(strstr(h, "fast|safe") != NULL, "%s", h);
    cr_assert(strstr(h, "[1..256]") != NULL, "%s", h);
    cr_assert(strstr(h, "default \"anon\"") != NULL, "%s", h);
    cr_assert_null(strstr(h, "s3cret-pw"));
    cr_assert_null(strstr(h, "1234"), "a secret's default is not shown either");
    cr_assert_null(strstr(h, "4321"));
    sf_buf_destroy(&out);
}

Test(config, help_over_the_buffer_maximum_fails)
{
    sf_buf out;
    sf_buf_init(&out, 64);
    sf_err err = {0};
    cr_assert_eq(sf_config_help("prog", "Does things.", vars, NV, &out, &err), SF_ERR_LIMIT);
    sf_buf_destroy(&out);
}

Test(config, errors_are_formatted_one_line_each_with_the_program_name)
{
    sf_buf errors, out;
    sf_buf_init(&errors, 4096);
    sf_buf_init(&out, 4096);
    sf_buf_puts(&errors, "A: is required\nB: must be true or false, got \"x\"\n", NULL);
    cr_assert_eq(sf_config_errors_format("prog", &errors, &out, NULL), SF_OK);
    cr_assert_str_eq(sf_buf_str(&out), "prog: A: is required\nprog: B: must be true or false, got \"x\"\n");
    sf_buf_destroy(&errors);
    sf_buf_destroy(&out);
}

/* sf_config_load_from: the same table read through a lookup instead of the
 * environment (what fuzz_config drives); the environment is not read. */
static const char *pairs_lookup(const char *name, void *ctx)
{
    for (const char *const *p = ctx; *p != NULL; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

Test(config, load_from_reads_the_lookup_not_the_environment)
{
    setenv("T_THREADS", "9", 1);
    setenv("T_DB_URL", "postgresql://env/d", 1);
    const char *pairs[] = {"T_THREADS", "lots", "T_NAME", "given", "T_PIN", "99999", NULL};
    cfg c = {0};
    sf_buf e;
    sf_buf_init(&e, 1 << 16);
    cr_assert_eq(sf_config_load_from(vars, NV, pairs_lookup, (void *)pairs, &c, &e), SF_ERR_CONFIG);
    cr_assert_str_eq(sf_buf_str(&e), "T_THREADS: must be an integer from 1 to 256, got \"lots\"\n"
                                     "T_DB_URL: is required\n"
                                     "T_PIN: must be an integer from 0 to 9999 (value hidden: secret)\n");
    cr_assert_str_eq(c.name, "given");
    cr_assert_str_eq(c.common.log_dir, "", "unset variables take their defaults");
    done(&c, &e);
    unsetenv("T_THREADS");
}
