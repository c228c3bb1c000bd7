/* buf: the growable byte buffer behind all network and file I/O.
 * Reads are bounded by the buffer's max so no peer can make it grow without limit. */
#ifndef MAILNODE_BUF_H
#define MAILNODE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

struct buf {
	char	*data;
	size_t	 off;	/* start of unconsumed bytes */
	size_t	 len;	/* end of valid bytes (data[off..len) is the content) */
	size_t	 cap;
	size_t	 max;	/* hard cap on content size; 0 means unlimited */
};

void	 buf_init(struct buf *, size_t max);
void	 buf_free(struct buf *);
void	 buf_reset(struct buf *);
size_t	 buf_len(const struct buf *);
char	*buf_data(const struct buf *);
/* Make room for n more bytes; -1 (errno ENOBUFS) if that would pass max. */
int	 buf_reserve(struct buf *, size_t n);
int	 buf_append(struct buf *, const void *, size_t);
int	 buf_puts(struct buf *, const char *);
int	 buf_printf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
int	 buf_vprintf(struct buf *, const char *, va_list);
void	 buf_consume(struct buf *, size_t n);
/* NUL-terminated view of the content (the NUL is not counted in len). */
const char *buf_cstr(struct buf *);
/* One line ending in LF (CRLF accepted) if complete: returns its length
 * without the line ending and sets *eol to the bytes to consume; 0 with
 * *eol 0 when no complete line is buffered yet. */
size_t	 buf_line(const struct buf *, size_t *eol);
/* Non-blocking fd I/O: read up to the free room (bounded by max), write what
 * the socket takes. Return bytes moved, 0 on EOF (read), -1 with errno
 * (EAGAIN when nothing can move now). */
ssize_t	 buf_read_fd(struct buf *, int fd);
ssize_t	 buf_write_fd(struct buf *, int fd);

#endif
