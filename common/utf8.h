/* UTF-8 validation and escaping of untrusted bytes.
 *
 * Bytes read from /proc (comm, cmdline, environ, paths) are whatever a process
 * put there. JSON must be valid UTF-8, and nothing may be dropped silently, so
 * every byte that is not part of a well-formed UTF-8 sequence is replaced by
 * the four ASCII characters "\xNN" (NN: upper-case hex), the same spelling
 * `ls -b` and systemd use. NUL bytes are escaped the same way ("\x00"). Valid
 * sequences, including a literal backslash, pass unchanged. Overlong forms,
 * surrogates (U+D800..U+DFFF) and code points above U+10FFFF are invalid. */
#ifndef PD_UTF8_H
#define PD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "common/strbuf.h"

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 if the bytes at
 * s (at most len of them) do not start one. A NUL byte counts as not
 * well-formed (0), so that the three functions agree on what gets escaped. */
size_t utf8_seqlen(const unsigned char *s, size_t len);
/* True when all len bytes are well-formed UTF-8 with no NUL. */
bool utf8_valid(const char *s, size_t len);
/* Appends s[0..len) to sb with invalid bytes escaped as "\xNN".
 * 0 or -ENOMEM. */
int utf8_escape(struct strbuf *sb, const char *s, size_t len);

#endif
