/* strbuf: the one growable byte buffer of procdiag.
 *
 * Modelled on git's strbuf: a buffer is always NUL-terminated (buf[len] == 0),
 * so it can be handed to string functions even when it holds binary data.
 * STRBUF_INIT needs no allocation; strbuf_release() frees and re-inits.
 * Every function that grows the buffer returns 0 or -ENOMEM and leaves the
 * previous contents intact on failure; it also sets `failed`, so a buffer
 * built by many appends (a page) is checked once at the end. buf is never
 * NULL. */
#ifndef PD_STRBUF_H
#define PD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	size_t alloc; /* 0 while buf points at the shared empty string */
	size_t len;
	char *buf;
	int failed; /* an append ran out of memory since init/release */
};

extern char strbuf_empty[];
#define STRBUF_INIT { 0, 0, strbuf_empty, 0 }

void strbuf_init(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Takes the buffer out of sb (caller frees it with free()); sb is re-inited.
 * Returns NULL only on allocation failure. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
int strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_reset(struct strbuf *sb);
void strbuf_setlen(struct strbuf *sb, size_t len);
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_addstr(struct strbuf *sb, const char *s);
int strbuf_addch(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends the whole content of fd (read until EOF or until the buffer would
 * exceed max bytes: then -EFBIG, with what was read kept). -errno on error. */
int strbuf_read_fd(struct strbuf *sb, int fd, size_t max);

#endif
