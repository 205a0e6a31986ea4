/*
 * files: temporary directories and files for tests (header-only, no server
 * needed and no library of the project but base, so engine unit tests can
 * use it).
 *
 * Thread safety: call from the test's main thread.
 */
#ifndef SF_TEST_FILES_H
#define SF_TEST_FILES_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf/buf.h"
#include "sf/config.h"

/* A fresh directory under /tmp; fills path (at least 64 bytes). */
static inline void sf_testenv_tmpdir(char *path, size_t size)
{
    snprintf(path, size, "/tmp/sf_test_XXXXXX");
    if (mkdtemp(path) == NULL)
        cr_assert_fail("mkdtemp failed");
}

static inline int sf_testenv_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The test program's file name ("test_api"; Criterion's workers are named
 * "boxfort-worker", their executable is the test's). */
static inline void sf_testenv_program(char *out, size_t size)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *base = strrchr(exe, '/');
    snprintf(out, size, "%.200s", n > 0 ? (base ? base + 1 : exe) : "test");
}

typedef struct sf_testenv_logdir_ {
    char *value;
} sf_testenv_logdir_;

/* SF_TEST_LOG_DIR (read through sf_config_load, never getenv) into out; ""
 * when unset. */
static inline void sf_testenv_log_dir(char *out, size_t size)
{
    const sf_config_var vars[] = {{"SF_TEST_LOG_DIR", SF_CFG_STRING, NULL, 0, 0, NULL, 0,
                                   offsetof(sf_testenv_logdir_, value), "where tests keep their programs' logs"}};
    sf_testenv_logdir_ d = {NULL};
    sf_buf errors;
    sf_buf_init(&errors, 4096);
    sf_status st = sf_config_load(vars, 1, &d, &errors);
    snprintf(out, size, "%s", st == SF_OK && d.value ? d.value : "");
    sf_buf_destroy(&errors);
    sf_config_free(vars, 1, &d);
}

static char sf_testenv_keep_to_[4096]; /* where sf_testenv_keep_one_ copies to */

static inline int sf_testenv_keep_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    size_t n = strlen(p);
    if (flag != FTW_F || n < 4 || strcmp(p + n - 4, ".log") != 0)
        return 0;
    char to[8192], buf[65536];
    snprintf(to, sizeof to, "%s/%s", sf_testenv_keep_to_, p + ftw->base);
    FILE *in = fopen(p, "rb"), *out = in ? fopen(to, "ab") : NULL;
    size_t got;
    while (out && (got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, out);
    if (out)
        fclose(out);
    if (in)
        fclose(in);
    return 0;
}

/* With SF_TEST_LOG_DIR set (scripts/test sets it), the logs under path
 * (every *.log file: the programs a test started wrote them) are copied to
 * SF_TEST_LOG_DIR/<test program>-<name of path>/, for the checks that run
 * after the suites (scripts/check-secrets: no API key in any log). */
static inline void sf_testenv_keep_logs(const char *path)
{
    char keep[2048];
    sf_testenv_log_dir(keep, sizeof keep);
    if (keep[0] == '\0' || path == NULL || path[0] == '\0')
        return;
    const char *base = strrchr(path, '/');
    char prog[256];
    sf_testenv_program(prog, sizeof prog);
    snprintf(sf_testenv_keep_to_, sizeof sf_testenv_keep_to_, "%s/%s-%s", keep, prog, base ? base + 1 : path);
    mkdir(keep, 0755);
    mkdir(sf_testenv_keep_to_, 0755);
    nftw(path, sf_testenv_keep_one_, 16, FTW_PHYS);
}

/* Remove path and everything under it (its logs kept first: sf_testenv_keep_logs). */
static inline void sf_testenv_rmtree(const char *path)
{
    sf_testenv_keep_logs(path);
    if (path && path[0])
        nftw(path, sf_testenv_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write a whole file (overwrites); fails the test on error. */
static inline void sf_testenv_write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        cr_assert_fail("could not create %s", path);
    fputs(text, f);
    fclose(f);
}

#endif
