/* Unit tests of sf_log: JSON lines (checked with jansson), levels, secrets,
 * escaping, truncation, log files and concurrent writers. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/files.h"
#include "sf/buf.h"
#include "sf/log.h"
#include "sf/time.h"

#define FIXED_MS 1700000000123LL /* 2023-11-14T22:13:20.123Z */

/* A temp file as the logger's stdout; read back with read_all. */
static int tmp_fd(char *path, size_t size)
{
    snprintf(path, size, "/tmp/sf_log_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    return fd;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    sf_buf b;
    sf_buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cr_assert_eq(sf_buf_append(&b, chunk, n, NULL), SF_OK);
    fclose(f);
    char *s = sf_buf_steal(&b, NULL);
    return s ? s : strdup("");
}

static sf_log *open_log(sf_log_level level, int fd)
{
    sf_log *lg = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_log_open("test-svc", "ci", level, NULL, fd, &lg, &err), SF_OK, "%s", err.msg);
    return lg;
}

/* Parse one line (with its newline) as a JSON object; fails the test otherwise. */
static json_t *parse_line(const char *line, size_t len)
{
    cr_assert_gt(len, 0);
    cr_assert_eq(line[len - 1], '\n', "line does not end with a newline");
    cr_assert_null(memchr(line, '\n', len - 1), "newline inside a line");
    json_error_t jerr;
    json_t *j = json_loadb(line, len - 1, 0, &jerr);
    cr_assert_not_null(j, "not JSON (%s): %.*s", jerr.text, (int)len, line);
    cr_assert(json_is_object(j));
    return j;
}

static json_t *format_one(sf_log *lg, sf_log_level level, const char *msg, const sf_log_field *fields)
{
    char buf[SF_LOG_LINE_MAX];
    size_t n = sf_log_format(lg, level, FIXED_MS, msg, fields, buf, sizeof buf);
    cr_assert_leq(n, sizeof buf);
    return parse_line(buf, n);
}

static const char *str_of(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

Test(log, a_line_has_the_fixed_fields_then_typed_extras)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    sf_log_field f[] = {SF_LF_STR("job_id", "j-1"), SF_LF_INT("attempt", -3),    SF_LF_DBL("duration_ms", 12.5),
                        SF_LF_BOOL("retry", 1),     SF_LF_INT("big", INT64_MAX), SF_LF_DBL("bad", 1.0 / 0.0),
                        {.type = SF_LF_END_}};
    json_t *j = format_one(lg, SF_LOG_WARN, "hello", f);
    cr_assert_str_eq(str_of(j, "timestamp"), "2023-11-14T22:13:20.123Z");
    cr_assert_str_eq(str_of(j, "level"), "warn");
    cr_assert_str_eq(str_of(j, "service"), "test-svc");
    cr_assert_str_eq(str_of(j, "environment"), "ci");
    cr_assert_str_eq(str_of(j, "message"), "hello");
    cr_assert_str_eq(str_of(j, "job_id"), "j-1");
    cr_assert(json_is_integer(json_object_get(j, "attempt")));
    cr_assert_eq(json_integer_value(json_object_get(j, "attempt")), -3);
    cr_assert(json_is_real(json_object_get(j, "duration_ms")));
    cr_assert_float_eq(json_real_value(json_object_get(j, "duration_ms")), 12.5, 1e-12);
    cr_assert(json_is_true(json_object_get(j, "retry")));
    cr_assert_eq(json_integer_value(json_object_get(j, "big")), INT64_MAX);
    cr_assert(json_is_null(json_object_get(j, "bad")), "non-finite numbers are null");
    cr_assert_eq(json_object_size(j), 11);
    json_decref(j);
    sf_log_close(lg);
}

Test(log, emitted_lines_carry_the_current_utc_time_with_milliseconds)
{
    char path[64];
    int fd = tmp_fd(path, sizeof path);
    sf_log *lg = open_log(SF_LOG_INFO, fd);
    int64_t before = sf_time_now_ms();
    sf_log_info(lg, "now");
    int64_t after = sf_time_now_ms();
    sf_log_close(lg);
    close(fd);
    char *text = read_all(path);
    json_t *j = parse_line(text, strlen(text));
    const char *ts = str_of(j, "timestamp");
    cr_assert_eq(strlen(ts), 24, "%s", ts);
    cr_assert(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' && ts[19] == '.' &&
                  ts[23] == 'Z',
              "%s", ts);
    int64_t secs = 0;
    cr_assert_eq(sf_time_parse_iso8601(ts, 19, &secs, NULL), SF_OK, "%s", ts);
    int64_t ms = secs * 1000 + strtol(ts + 20, NULL, 10);
    cr_assert(ms >= before && ms <= after, "%lld not in [%lld, %lld]", (long long)ms, (long long)before,
              (long long)after);
    json_decref(j);
    free(text);
    unlink(path);
}

Test(log, lines_below_the_level_are_dropped)
{
    char path[64];
    int fd = tmp_fd(path, sizeof path);
    sf_log *lg = open_log(SF_LOG_WARN, fd);
    cr_assert_not(sf_log_enabled(lg, SF_LOG_INFO));
    cr_assert(sf_log_enabled(lg, SF_LOG_ERROR));
    cr_assert_not(sf_log_enabled(NULL, SF_LOG_ERROR));
    sf_log_debug(lg, "d");
    sf_log_info(lg, "i", SF_LF_INT("n", 1));
    sf_log_warn(lg, "w");
    sf_log_error(lg, "e");
    sf_log_info(NULL, "no logger is fine");
    sf_log_close(lg);
    close(fd);
    char *text = read_all(path);
    char *nl = strchr(text, '\n');
    cr_assert_not_null(nl);
    json_t *a = parse_line(text, (size_t)(nl + 1 - text));
    json_t *b = parse_line(nl + 1, strlen(nl + 1));
    cr_assert_str_eq(str_of(a, "level"), "warn");
    cr_assert_str_eq(str_of(b, "level"), "error");
    json_decref(a), json_decref(b);
    free(text);
    unlink(path);
}

Test(log, secret_keys_are_redacted_whatever_their_type)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    sf_log_field f[] = {SF_LF_STR("password", "hunter2"),
                        SF_LF_STR("api_key", "sk-123"),
                        SF_LF_STR("Authorization", "Bearer abc"),
                        SF_LF_INT("token", 424242),
                        SF_LF_STR("db_secret_name", "x"),
                        SF_LF_STR("key_hash", "deadbeef"),
                        SF_LF_STR("user", "alice"),
                        {.type = SF_LF_END_}};
    char buf[SF_LOG_LINE_MAX];
    size_t n = sf_log_format(lg, SF_LOG_INFO, FIXED_MS, "m", f, buf, sizeof buf);
    json_t *j = parse_line(buf, n);
    const char *keys[] = {"password", "api_key", "Authorization", "token", "db_secret_name", "key_hash"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_str_eq(str_of(j, keys[i]), "[redacted]", "%s", keys[i]);
    cr_assert_str_eq(str_of(j, "user"), "alice");
    cr_assert_null(strstr(buf, "hunter2"));
    cr_assert_null(strstr(buf, "424242"));
    json_decref(j);
    sf_log_close(lg);
}

Test(log, url_passwords_are_masked_in_message_and_string_fields)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    sf_log_field f[] = {SF_LF_STR("url", "redis://:pw1@cache:6379/0"),
                        SF_LF_STR("dsn", "postgresql://app:s3cr3t@db:5432/sf?sslmode=require"),
                        SF_LF_STR("plain", "http://example.com/a@b"),
                        {.type = SF_LF_END_}};
    json_t *j = format_one(
        lg, SF_LOG_ERROR, "could not connect to postgresql://app:top:secret@db/x and redis://u:p@h, mail bob@x.org", f);
    cr_assert_str_eq(str_of(j, "message"),
                     "could not connect to postgresql://app:***@db/x and redis://u:***@h, mail bob@x.org");
    cr_assert_str_eq(str_of(j, "url"), "redis://:***@cache:6379/0");
    cr_assert_str_eq(str_of(j, "dsn"), "postgresql://app:***@db:5432/sf?sslmode=require");
    cr_assert_str_eq(str_of(j, "plain"), "http://example.com/a@b");
    json_decref(j);
    sf_log_close(lg);
}

Test(log, mask_url_never_leaves_a_password_when_the_buffer_is_short)
{
    char out[32];
    sf_log_mask_url("xxxxxxxxxxxxxxxxxx redis://:ab@host:1", out, sizeof out);
    cr_assert_null(strstr(out, "ab@"), "%s", out);
    cr_assert_eq(strncmp(out, "xxxxxxxxxxxxxxxxxx redis://:", 28), 0, "%s", out);
    sf_log_mask_url("u://a:bc@h", out, sizeof out);
    cr_assert_str_eq(out, "u://a:***@h");
    sf_log_mask_url("no url here: a:b@c", out, sizeof out);
    cr_assert_str_eq(out, "no url here: a:b@c");
    sf_log_mask_url("redis://host:6379", out, sizeof out);
    cr_assert_str_eq(out, "redis://host:6379");
}

Test(log, quotes_newlines_and_control_characters_round_trip)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    const char *msg = "say \"hi\"\\ \n next\tline\r \x01\x1f\x7f end é €";
    sf_log_field f[] = {SF_LF_STR("k\"ey\n", "v\x02\"\\"), {.type = SF_LF_END_}};
    json_t *j = format_one(lg, SF_LOG_INFO, msg, f);
    cr_assert_str_eq(str_of(j, "message"), msg);
    cr_assert_str_eq(str_of(j, "k\"ey\n"), "v\x02\"\\");
    json_decref(j);
    sf_log_close(lg);
}

Test(log, invalid_utf8_still_gives_valid_json)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    json_t *j = format_one(lg, SF_LOG_INFO, "bad \xff\xfe bytes \xc3 and \xed\xa0\x80 surrogate", NULL);
    cr_assert_str_eq(str_of(j, "message"), "bad \xef\xbf\xbd\xef\xbf\xbd bytes \xef\xbf\xbd and "
                                           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate");
    json_decref(j);
    sf_log_close(lg);
}

Test(log, a_very_long_message_gives_one_valid_truncated_line)
{
    sf_log *lg = open_log(SF_LOG_DEBUG, -1);
    static char big[50000];
    memset(big, 'a', sizeof big - 1);
    sf_log_field f[] = {SF_LF_INT("after", 7), {.type = SF_LF_END_}};
    char buf[SF_LOG_LINE_MAX];
    size_t n = sf_log_format(lg, SF_LOG_INFO, FIXED_MS, big, f, buf, sizeof buf);
    cr_assert_leq(n, SF_LOG_LINE_MAX);
    cr_assert_gt(n, SF_LOG_LINE_MAX - 200, "the room is used: %zu", n);
    json_t *j = parse_line(buf, n);
    const char *m = str_of(j, "message");
    cr_assert_gt(strlen(m), 7000);
    cr_assert_eq(strspn(m, "a"), strlen(m));
    json_decref(j);

    /* Multi-byte characters are never cut in half. */
    static char wide[30000];
    for (size_t i = 0; i + 2 < sizeof wide; i += 2)
        memcpy(wide + i, "\xc3\xa9", 2);
    for (size_t extra = 0; extra < 3; extra++) {
        n = sf_log_format(lg, SF_LOG_INFO, FIXED_MS, wide + 0, NULL, buf, sizeof buf - extra);
        j = parse_line(buf, n);
        cr_assert_gt(strlen(str_of(j, "message")), 7000);
        json_decref(j);
    }
    sf_log_field g[] = {SF_LF_STR("blob", big), SF_LF_STR("next", "x"), {.type = SF_LF_END_}};
    n = sf_log_format(lg, SF_LOG_INFO, FIXED_MS, "short", g, buf, sizeof buf);
    j = parse_line(buf, n);
    cr_assert_str_eq(str_of(j, "message"), "short");
    cr_assert_gt(strlen(str_of(j, "blob")), 7000);
    json_decref(j);
    sf_log_close(lg);
}

Test(log, log_dir_gets_combined_and_error_files)
{
    char dir[64];
    sf_testenv_tmpdir(dir, sizeof dir);
    sf_log *lg = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_log_open("svc", "ci", SF_LOG_INFO, dir, -1, &lg, &err), SF_OK, "%s", err.msg);
    sf_log_debug(lg, "filtered");
    sf_log_info(lg, "one");
    sf_log_warn(lg, "two");
    sf_log_error(lg, "three", SF_LF_STR("error", "boom"));
    sf_log_close(lg);
    char path[128];
    snprintf(path, sizeof path, "%s/combined.log", dir);
    char *combined = read_all(path);
    snprintf(path, sizeof path, "%s/error.log", dir);
    char *errors = read_all(path);
    int lines = 0;
    for (char *p = combined; *p; lines++) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        json_decref(parse_line(p, (size_t)(nl + 1 - p)));
        p = nl + 1;
    }
    cr_assert_eq(lines, 3);
    json_t *j = parse_line(errors, strlen(errors));
    cr_assert_str_eq(str_of(j, "message"), "three");
    cr_assert_str_eq(str_of(j, "error"), "boom");
    json_decref(j);
    free(combined), free(errors);
    cr_assert_eq(sf_log_open("svc", "ci", SF_LOG_INFO, "/nonexistent/dir", -1, &lg, &err), SF_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/dir/combined.log") != NULL, "%s", err.msg);
    sf_testenv_rmtree(dir);
}

static mode_t mode_of(const char *dir, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return st.st_mode & 07777;
}

Test(log, log_files_are_created_for_the_owner_only_whatever_the_umask)
{
    umask(0); /* the most permissive: open's mode alone decides (the test runs in its own process) */
    char dir[64];
    sf_testenv_tmpdir(dir, sizeof dir);
    sf_log *lg = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_log_open("svc", "ci", SF_LOG_INFO, dir, -1, &lg, &err), SF_OK, "%s", err.msg);
    sf_log_error(lg, "x");
    cr_assert_eq(mode_of(dir, "combined.log"), 0600, "combined.log is %o", mode_of(dir, "combined.log"));
    cr_assert_eq(mode_of(dir, "error.log"), 0600, "error.log is %o", mode_of(dir, "error.log"));
    sf_log_close(lg);
    sf_testenv_rmtree(dir);
}

Test(log, an_existing_log_file_loses_what_others_could_do)
{
    umask(0);
    char dir[64], path[128];
    sf_testenv_tmpdir(dir, sizeof dir);
    sf_testenv_write_file(dir, "combined.log", "old line\n");
    snprintf(path, sizeof path, "%s/combined.log", dir);
    cr_assert_eq(chmod(path, 0666), 0); /* as an older version under a loose umask left it */
    sf_log *lg = NULL;
    sf_err err = {0};
    cr_assert_eq(sf_log_open("svc", "ci", SF_LOG_INFO, dir, -1, &lg, &err), SF_OK, "%s", err.msg);
    cr_assert_eq(mode_of(dir, "combined.log"), 0660, "the group's bits are the operator's choice: %o",
                 mode_of(dir, "combined.log"));
    cr_assert_eq(mode_of(dir, "error.log"), 0600);
    sf_log_close(lg);
    char *text = read_all(path);
    cr_assert(strncmp(text, "old line\n", 9) == 0, "appended, not truncated: %s", text);
    free(text);
    sf_testenv_rmtree(dir);
}

enum { THREADS = 8, PER_THREAD = 400 };

typedef struct writer {
    sf_log *lg;
    int id;
} writer;

static void *write_lines(void *arg)
{
    writer *w = arg;
    char msg[600];
    for (int i = 0; i < PER_THREAD; i++) {
        int n = snprintf(msg, sizeof msg, "thread %d line %d ", w->id, i);
        memset(msg + n, 'a' + w->id, sizeof msg - 1 - (size_t)n); /* long lines make tearing likely */
        msg[sizeof msg - 1] = '\0';
        sf_log_info(w->lg, msg, SF_LF_INT("thread", w->id), SF_LF_INT("seq", i));
    }
    return NULL;
}

Test(log, concurrent_writers_produce_whole_lines_only)
{
    char path[64];
    int fd = tmp_fd(path, sizeof path);
    sf_log *lg = open_log(SF_LOG_INFO, fd);
    pthread_t t[THREADS];
    writer w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (writer){lg, i};
        cr_assert_eq(pthread_create(&t[i], NULL, write_lines, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    sf_log_close(lg);
    close(fd);
    char *text = read_all(path);
    int next[THREADS] = {0};
    int lines = 0;
    for (char *p = text; *p; lines++) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        json_t *j = parse_line(p, (size_t)(nl + 1 - p));
        int id = (int)json_integer_value(json_object_get(j, "thread"));
        int seq = (int)json_integer_value(json_object_get(j, "seq"));
        cr_assert(id >= 0 && id < THREADS);
        cr_assert_eq(seq, next[id], "thread %d: line %d after %d", id, seq, next[id] - 1);
        next[id]++;
        cr_assert_eq(strlen(str_of(j, "message")), 599);
        json_decref(j);
        p = nl + 1;
    }
    cr_assert_eq(lines, THREADS * PER_THREAD);
    free(text);
    unlink(path);
}
