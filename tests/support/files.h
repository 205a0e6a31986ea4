/*
 * files: temporary directories and files for tests (header-only, no server
 * and no library of the project needed, so engine unit tests can use it).
 *
 * Thread safety: call from the test's main thread.
 */
#ifndef SF_TEST_FILES_H
#define SF_TEST_FILES_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

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

static inline void sf_testenv_rmtree(const char *path)
{
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
