/*
 * utf8: the validity of UTF-8 text, for the writers of JSON (log lines,
 * HTTP error bodies) that must never emit a byte sequence a JSON parser
 * refuses, whatever bytes a client or a peer sent them.
 *
 * Thread safety: pure functions. Ownership: nothing is kept.
 */
#ifndef SF_UTF8_H
#define SF_UTF8_H

#include <stddef.h>

/* The length of the valid UTF-8 sequence at c (1 to 4), or 0 when it is not
 * one: a bad lead byte, cut short (a NUL or another lead byte inside), an
 * overlong form, a surrogate or above U+10FFFF. c points at a NUL-terminated
 * string; at most 4 bytes are read, never past its NUL. */
size_t sf_utf8_len(const unsigned char *c);

#endif
