/* buf: growable byte buffer with a hard size cap, used for all network I/O. */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_MIN_CAP	256
#define BUF_READ_CHUNK	16384

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

size_t
buf_len(const struct buf *b)
{
	return b->len - b->off;
}

char *
buf_data(const struct buf *b)
{
	return b->data ? b->data + b->off : NULL;
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t content = b->len - b->off, need, ncap;
	char *p;

	if (b->max && (n > b->max || content > b->max - n)) {
		errno = ENOBUFS;
		return -1;
	}
	if (n > SIZE_MAX - content - 1) {
		errno = ENOMEM;
		return -1;
	}
	need = content + n + 1;		/* +1 keeps room for buf_cstr's NUL */
	if (b->cap - b->off >= need)
		return 0;
	/* Slide the content to the front before growing. */
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, content);
		b->off = 0;
		b->len = content;
		if (b->cap >= need)
			return 0;
	}
	ncap = b->cap ? b->cap : BUF_MIN_CAP;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	if ((p = realloc(b->data, ncap)) == NULL)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if (buf_reserve(b, (size_t)n) == -1)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len - b->off) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

const char *
buf_cstr(struct buf *b)
{
	if (buf_reserve(b, 0) == -1 || b->data == NULL) {
		/* Only fails on allocation failure; the empty string is the safe answer. */
		return "";
	}
	b->data[b->len] = '\0';
	return b->data + b->off;
}

size_t
buf_line(const struct buf *b, size_t *eol)
{
	const char *start = b->data ? b->data + b->off : NULL, *nl;
	size_t n;

	*eol = 0;
	if (start == NULL || b->len == b->off)
		return 0;
	if ((nl = memchr(start, '\n', b->len - b->off)) == NULL)
		return 0;
	n = (size_t)(nl - start);
	*eol = n + 1;
	if (n > 0 && start[n - 1] == '\r')
		n--;
	return n;
}

ssize_t
buf_read_fd(struct buf *b, int fd)
{
	size_t room = BUF_READ_CHUNK;
	ssize_t r;

	if (b->max) {
		size_t content = b->len - b->off;
		if (content >= b->max) {
			errno = ENOBUFS;
			return -1;
		}
		if (room > b->max - content)
			room = b->max - content;
	}
	if (buf_reserve(b, room) == -1)
		return -1;
	do {
		r = read(fd, b->data + b->len, room);
	} while (r == -1 && errno == EINTR);
	if (r > 0)
		b->len += (size_t)r;
	return r;
}

ssize_t
buf_write_fd(struct buf *b, int fd)
{
	ssize_t r;

	if (buf_len(b) == 0)
		return 0;
	do {
		r = write(fd, b->data + b->off, b->len - b->off);
	} while (r == -1 && errno == EINTR);
	if (r > 0)
		buf_consume(b, (size_t)r);
	return r;
}
