#include "config.h"

#include "common/strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char strbuf_empty[1];

void strbuf_init(struct strbuf *sb)
{
	sb->alloc = 0;
	sb->len = 0;
	sb->buf = strbuf_empty;
	sb->failed = 0;
}

void strbuf_release(struct strbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	strbuf_init(sb);
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
	char *res;

	if (len)
		*len = sb->len;
	if (!sb->alloc) {
		res = calloc(1, 1);
	} else {
		res = sb->buf;
	}
	strbuf_init(sb);
	return res;
}

int strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t want, alloc;
	char *nbuf;

	if (extra > SIZE_MAX - sb->len - 1) {
		sb->failed = 1;
		return -ENOMEM;
	}
	want = sb->len + extra + 1;
	if (want <= sb->alloc)
		return 0;
	alloc = sb->alloc ? sb->alloc : 64;
	while (alloc < want)
		alloc = alloc > SIZE_MAX / 2 ? want : alloc * 2;
	nbuf = realloc(sb->alloc ? sb->buf : NULL, alloc);
	if (!nbuf) {
		sb->failed = 1;
		return -ENOMEM;
	}
	if (!sb->alloc)
		nbuf[0] = 0;
	sb->buf = nbuf;
	sb->alloc = alloc;
	return 0;
}

void strbuf_reset(struct strbuf *sb)
{
	strbuf_setlen(sb, 0);
}

void strbuf_setlen(struct strbuf *sb, size_t len)
{
	if (!sb->alloc)
		return;
	if (len < sb->alloc)
		sb->len = len;
	sb->buf[sb->len] = 0;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	if (!len)
		return 0;
	if (strbuf_grow(sb, len))
		return -ENOMEM;
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = 0;
	return 0;
}

int strbuf_addstr(struct strbuf *sb, const char *s)
{
	return strbuf_add(sb, s, strlen(s));
}

int strbuf_addch(struct strbuf *sb, char c)
{
	return strbuf_add(sb, &c, 1);
}

int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (strbuf_grow(sb, 64))
		return -ENOMEM;
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sb->alloc - sb->len) {
		if (strbuf_grow(sb, (size_t)n))
			return -ENOMEM;
		va_copy(cp, ap);
		n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
		va_end(cp);
		if (n < 0)
			return -EINVAL;
	}
	sb->len += (size_t)n;
	return 0;
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
	return r;
}

int strbuf_read_fd(struct strbuf *sb, int fd, size_t max)
{
	for (;;) {
		size_t room;
		ssize_t n;

		if (sb->len >= max)
			return -EFBIG;
		if (strbuf_grow(sb, 4096))
			return -ENOMEM;
		room = sb->alloc - sb->len - 1;
		if (room > max - sb->len)
			room = max - sb->len;
		n = read(fd, sb->buf + sb->len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sb->buf[sb->len] = 0;
			return -errno;
		}
		if (n == 0)
			break;
		sb->len += (size_t)n;
		sb->buf[sb->len] = 0;
	}
	return 0;
}
