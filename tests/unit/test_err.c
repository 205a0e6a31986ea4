/* Unit tests of sf_err: the status table, setting and prefixing messages,
 * the system's text for errno values. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sf/err.h"

Test(err, every_status_has_a_distinct_name_and_string)
{
    const char *names[17], *strs[17];
    for (int c = 0; c >= SF_ERR_INTERNAL; c--) {
        names[-c] = sf_status_name((sf_status)c);
        strs[-c] = sf_status_str((sf_status)c);
        cr_assert_neq(strcmp(names[-c], "SF_ERR_UNKNOWN"), 0, "code %d has no name", c);
        for (int d = 0; d > c; d--) {
            cr_assert_neq(strcmp(names[-c], names[-d]), 0, "codes %d and %d share a name", c, d);
            cr_assert_neq(strcmp(strs[-c], strs[-d]), 0, "codes %d and %d share a string", c, d);
        }
    }
    cr_assert_str_eq(sf_status_name(SF_OK), "SF_OK");
    cr_assert_str_eq(sf_status_name(SF_ERR_NOMEM), "SF_ERR_NOMEM");
    cr_assert_str_eq(sf_status_str(SF_ERR_NOMEM), "out of memory");
    cr_assert_str_eq(sf_status_name(SF_ERR_UNAVAILABLE), "SF_ERR_UNAVAILABLE");
}

Test(err, unknown_codes_get_the_unknown_name)
{
    cr_assert_str_eq(sf_status_name((sf_status)-999), "SF_ERR_UNKNOWN");
    cr_assert_str_eq(sf_status_name((sf_status)5), "SF_ERR_UNKNOWN");
    cr_assert_str_eq(sf_status_str((sf_status)-17), "unknown error");
}

Test(err, set_fills_code_errno_message_and_place)
{
    sf_err err;
    memset(&err, 0x5a, sizeof err);
    int line = __LINE__ + 1;
    sf_status st = sf_err_set(&err, SF_ERR_PARSE, "bad %s at %d", "token", 7);
    cr_assert_eq(st, SF_ERR_PARSE);
    cr_assert_eq(err.code, SF_ERR_PARSE);
    cr_assert_eq(err.sys_errno, 0);
    cr_assert_str_eq(err.msg, "bad token at 7");
    cr_assert(strstr(err.file, "test_err.c") != NULL);
    cr_assert_eq(err.line, line);
    cr_assert_eq(sf_err_sys(&err, SF_ERR_IO, ENOENT, "could not open \"%s\": %s", "x", sf_err_errno_text(ENOENT).text),
                 SF_ERR_IO);
    cr_assert_eq(err.sys_errno, ENOENT);
    cr_assert_str_eq(err.msg, "could not open \"x\": No such file or directory");
}

Test(err, errno_text_is_the_systems_text_and_leaves_errno_alone)
{
    errno = EINTR;
    cr_assert_str_eq(sf_err_errno_text(ENOENT).text, "No such file or directory");
    cr_assert_eq(errno, EINTR);
    cr_assert_str_eq(sf_err_errno_text(123456).text, "Unknown error 123456");
    cr_assert_eq(errno, EINTR);
    /* Each call's text lives to the end of the full expression: two in one call. */
    char both[2 * SF_ERRNO_TEXT_MAX + 4];
    snprintf(both, sizeof both, "%s | %s", sf_err_errno_text(ENOENT).text, sf_err_errno_text(EACCES).text);
    cr_assert_str_eq(both, "No such file or directory | Permission denied");
}

#define TEXT_THREADS 8
#define TEXT_CALLS 20000

/* Unknown values are the ones strerror formats into a buffer it may share
 * between threads; each thread asks for its own and checks every answer. */
static void *errno_text_loop(void *arg)
{
    int value = *(const int *)arg;
    char want[64];
    snprintf(want, sizeof want, "Unknown error %d", value);
    for (int i = 0; i < TEXT_CALLS; i++)
        if (strcmp(sf_err_errno_text(value).text, want) != 0)
            return (void *)1;
    return NULL;
}

Test(err, errno_text_is_right_in_every_thread_at_once)
{
    pthread_t t[TEXT_THREADS];
    int values[TEXT_THREADS];
    for (int i = 0; i < TEXT_THREADS; i++) {
        values[i] = 100000 + i * 1111;
        cr_assert_eq(pthread_create(&t[i], NULL, errno_text_loop, &values[i]), 0);
    }
    for (int i = 0; i < TEXT_THREADS; i++) {
        void *bad = NULL;
        pthread_join(t[i], &bad);
        cr_assert_null(bad, "thread %d read another thread's text", i);
    }
}

Test(err, null_err_is_allowed_and_still_returns_the_code)
{
    cr_assert_eq(sf_err_set(NULL, SF_ERR_LIMIT, "x %d", 1), SF_ERR_LIMIT);
    sf_err_prefix(NULL, "ctx");
    sf_err_clear(NULL);
}

Test(err, clear_resets_everything)
{
    sf_err err;
    sf_err_set(&err, SF_ERR_DB, "boom");
    sf_err_clear(&err);
    cr_assert_eq(err.code, SF_OK);
    cr_assert_str_eq(err.msg, "");
    cr_assert_null(err.file);
}

Test(err, long_messages_are_truncated_and_terminated)
{
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sf_err err;
    sf_err_set(&err, SF_ERR_INVALID, "%s", big);
    cr_assert_eq(strlen(err.msg), SF_ERR_MSG_MAX - 1);
}

Test(err, prefix_puts_context_in_front)
{
    sf_err err;
    sf_err_set(&err, SF_ERR_IO, "could not read: eof");
    sf_err_prefix(&err, "loading %s", "bars.csv");
    cr_assert_str_eq(err.msg, "loading bars.csv: could not read: eof");
    cr_assert_eq(err.code, SF_ERR_IO);
    sf_err_prefix(&err, "job %d", 42);
    cr_assert_str_eq(err.msg, "job 42: loading bars.csv: could not read: eof");
}

Test(err, prefix_on_a_full_message_keeps_the_head_and_stays_terminated)
{
    sf_err err;
    char big[SF_ERR_MSG_MAX + 10];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sf_err_set(&err, SF_ERR_INVALID, "%s", big);
    sf_err_prefix(&err, "head");
    cr_assert_eq(strlen(err.msg), SF_ERR_MSG_MAX - 1);
    cr_assert_eq(strncmp(err.msg, "head: mmm", 9), 0);

    char longhead[SF_ERR_MSG_MAX * 2];
    memset(longhead, 'h', sizeof longhead - 1);
    longhead[sizeof longhead - 1] = '\0';
    sf_err_set(&err, SF_ERR_INVALID, "tail");
    sf_err_prefix(&err, "%s", longhead);
    cr_assert_eq(strlen(err.msg), SF_ERR_MSG_MAX - 1);
    cr_assert_eq(err.msg[0], 'h');
}
