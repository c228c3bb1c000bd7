/* test_buf: unit tests for node/buf.c, the byte buffer under every socket
 * and file: growth, the hard max that keeps peers from growing it without
 * limit, consuming and sliding, line splitting, and non-blocking fd I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

/* The buffer holds exactly the n bytes of want. */
static void
assert_content(const struct buf *b, const void *want, size_t n)
{
	assert_int_equal(buf_len(b), n);
	if (n > 0)
		assert_memory_equal(buf_data(b), want, n);
}

/* Byte i of a stream that shows reordering and loss. */
static char
pattern(size_t i)
{
	return (char)('a' + (i * 7 + i / 26) % 26);
}

static void
test_append_grows(void **state)
{
	struct buf	 b;
	char		 want[5000];
	size_t		 i;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_len(&b), 0);
	for (i = 0; i < sizeof(want); i++)
		want[i] = pattern(i);
	/* uneven chunks across several reallocations */
	for (i = 0; i < sizeof(want); i += 37) {
		size_t n = sizeof(want) - i < 37 ? sizeof(want) - i : 37;

		assert_int_equal(buf_append(&b, want + i, n), 0);
	}
	assert_content(&b, want, sizeof(want));
	assert_true(b.cap > sizeof(want));
	/* appending nothing changes nothing */
	assert_int_equal(buf_append(&b, "x", 0), 0);
	assert_content(&b, want, sizeof(want));
	assert_int_equal(buf_puts(&b, "tail"), 0);
	assert_int_equal(buf_len(&b), sizeof(want) + 4);
	assert_memory_equal(buf_data(&b) + sizeof(want), "tail", 4);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(buf_len(&b), 0);
}

static void
test_printf_grows(void **state)
{
	struct buf	 b;
	char		 big[3000];

	(void)state;
	buf_init(&b, 0);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_content(&b, "42-x", 4);
	/* larger than the first allocation: the whole text, nothing cut */
	assert_int_equal(buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(buf_len(&b), 4 + 1 + strlen(big) + 1);
	assert_memory_equal(buf_data(&b), "42-x[zzz", 8);
	assert_int_equal(buf_data(&b)[buf_len(&b) - 1], ']');
	assert_int_equal(buf_data(&b)[buf_len(&b) - 2], 'z');
	assert_int_equal(strlen(buf_cstr(&b)), buf_len(&b));
	/* an empty format adds nothing */
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_int_equal(buf_len(&b), 4 + 1 + strlen(big) + 1);
	buf_free(&b);
}

static void
test_max_enforced(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "12345678", 8), 0);

	errno = 0;
	assert_int_equal(buf_append(&b, "abc", 3), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, "12345678", 8);

	errno = 0;
	assert_int_equal(buf_printf(&b, "%s", "xyz"), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, "12345678", 8);

	errno = 0;
	assert_int_equal(buf_puts(&b, "too long for it"), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, "12345678", 8);

	/* reserving past max fails, even with an absurd size */
	errno = 0;
	assert_int_equal(buf_reserve(&b, 3), -1);
	assert_int_equal(errno, ENOBUFS);
	errno = 0;
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, "12345678", 8);

	/* up to max exactly is fine, and the NUL view still fits */
	assert_int_equal(buf_printf(&b, "%d", 90), 0);
	assert_content(&b, "1234567890", 10);
	assert_string_equal(buf_cstr(&b), "1234567890");
	errno = 0;
	assert_int_equal(buf_append(&b, "x", 1), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, "1234567890", 10);

	/* a single append larger than max on an empty buffer */
	buf_reset(&b);
	errno = 0;
	assert_int_equal(buf_append(&b, "0123456789A", 11), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
}

static void
test_consume_and_slide(void **state)
{
	struct buf	 b;
	char		 want[400];
	size_t		 i;

	(void)state;
	/* with a max, consumed bytes free room for new ones */
	buf_init(&b, 16);
	assert_int_equal(buf_append(&b, "0123456789abcdef", 16), 0);
	assert_int_equal(buf_append(&b, "g", 1), -1);
	buf_consume(&b, 10);
	assert_content(&b, "abcdef", 6);
	assert_int_equal(buf_append(&b, "ghijklmnop", 10), 0);
	assert_content(&b, "abcdefghijklmnop", 16);
	assert_int_equal(buf_append(&b, "q", 1), -1);
	assert_content(&b, "abcdefghijklmnop", 16);
	buf_free(&b);

	/* without a max, sliding keeps content and order across growth */
	buf_init(&b, 0);
	for (i = 0; i < sizeof(want); i++)
		want[i] = pattern(i);
	assert_int_equal(buf_append(&b, want, 200), 0);
	buf_consume(&b, 150);
	assert_content(&b, want + 150, 50);
	assert_int_equal(buf_reserve(&b, 300), 0);
	assert_content(&b, want + 150, 50);
	assert_true(b.cap - b.off >= 50 + 300);
	assert_int_equal(buf_append(&b, want + 200, 200), 0);
	assert_content(&b, want + 150, 250);

	/* consuming everything, or more, empties it */
	buf_consume(&b, 249);
	assert_content(&b, want + 399, 1);
	buf_consume(&b, 1000);
	assert_int_equal(buf_len(&b), 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_append(&b, "new", 3), 0);
	assert_content(&b, "new", 3);
	buf_consume(&b, 0);
	assert_content(&b, "new", 3);
	buf_reset(&b);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
}

static void
test_cstr(void **state)
{
	struct buf	 b;
	const char	*s;

	(void)state;
	buf_init(&b, 0);
	/* a fresh buffer is the empty string */
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_len(&b), 0);

	assert_int_equal(buf_append(&b, "hello world", 11), 0);
	s = buf_cstr(&b);
	assert_string_equal(s, "hello world");
	assert_int_equal(buf_len(&b), 11);	/* the NUL is not content */
	buf_consume(&b, 6);
	assert_string_equal(buf_cstr(&b), "world");
	/* appending after a view overwrites the NUL, a new view ends anew */
	assert_int_equal(buf_append(&b, "!!", 2), 0);
	assert_string_equal(buf_cstr(&b), "world!!");
	assert_int_equal(buf_len(&b), 7);
	buf_free(&b);
}

static void
test_line(void **state)
{
	struct buf	 b;
	size_t		 eol, n;

	(void)state;
	buf_init(&b, 0);
	/* empty buffer: nothing */
	eol = 99;
	assert_int_equal(buf_line(&b, &eol), 0);
	assert_int_equal(eol, 0);

	/* no complete line yet */
	assert_int_equal(buf_puts(&b, "EHLO exa"), 0);
	eol = 99;
	assert_int_equal(buf_line(&b, &eol), 0);
	assert_int_equal(eol, 0);

	/* the rest arrives with CRLF, followed by an LF line, an empty CRLF
	 * line, an empty LF line, a bare CR inside a line, and a partial one */
	assert_int_equal(buf_puts(&b, "mple.com\r\nNOOP\n\r\n\na\rb\nQUI"), 0);
	n = buf_line(&b, &eol);
	assert_int_equal(n, strlen("EHLO example.com"));
	assert_int_equal(eol, n + 2);
	assert_memory_equal(buf_data(&b), "EHLO example.com", n);
	buf_consume(&b, eol);

	n = buf_line(&b, &eol);
	assert_int_equal(n, 4);
	assert_int_equal(eol, 5);
	assert_memory_equal(buf_data(&b), "NOOP", 4);
	buf_consume(&b, eol);

	n = buf_line(&b, &eol);
	assert_int_equal(n, 0);
	assert_int_equal(eol, 2);	/* empty CRLF line is a line */
	buf_consume(&b, eol);

	n = buf_line(&b, &eol);
	assert_int_equal(n, 0);
	assert_int_equal(eol, 1);	/* empty LF line too */
	buf_consume(&b, eol);

	n = buf_line(&b, &eol);
	assert_int_equal(n, 3);		/* CR not before LF is content */
	assert_int_equal(eol, 4);
	assert_memory_equal(buf_data(&b), "a\rb", 3);
	buf_consume(&b, eol);

	n = buf_line(&b, &eol);
	assert_int_equal(n, 0);
	assert_int_equal(eol, 0);
	assert_content(&b, "QUI", 3);
	buf_free(&b);
}

/* A pipe with both ends non-blocking. */
static void
nb_pipe(int fd[2])
{
	assert_int_equal(pipe2(fd, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
test_read_fd(void **state)
{
	struct buf	 b;
	int		 fd[2];

	(void)state;
	nb_pipe(fd);
	buf_init(&b, 0);
	/* nothing there yet */
	errno = 0;
	assert_int_equal(buf_read_fd(&b, fd[0]), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_int_equal(buf_len(&b), 0);

	assert_int_equal(write(fd[1], "hello", 5), 5);
	assert_int_equal(buf_read_fd(&b, fd[0]), 5);
	assert_content(&b, "hello", 5);
	assert_int_equal(write(fd[1], " world", 6), 6);
	assert_int_equal(buf_read_fd(&b, fd[0]), 6);
	assert_content(&b, "hello world", 11);

	/* drained again, then EOF once the writer is gone */
	errno = 0;
	assert_int_equal(buf_read_fd(&b, fd[0]), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_int_equal(close(fd[1]), 0);
	assert_int_equal(buf_read_fd(&b, fd[0]), 0);
	assert_content(&b, "hello world", 11);
	assert_int_equal(close(fd[0]), 0);

	/* a bad descriptor is an error, not a crash */
	errno = 0;
	assert_int_equal(buf_read_fd(&b, -1), -1);
	assert_int_equal(errno, EBADF);
	buf_free(&b);
}

static void
test_read_fd_max(void **state)
{
	struct buf	 b;
	char		 data[100];
	size_t		 i;
	int		 fd[2];

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = pattern(i);
	nb_pipe(fd);
	assert_int_equal(write(fd[1], data, sizeof(data)), (ssize_t)sizeof(data));

	/* a peer sending more than max gets only max buffered */
	buf_init(&b, 10);
	assert_int_equal(buf_read_fd(&b, fd[0]), 10);
	assert_content(&b, data, 10);
	errno = 0;
	assert_int_equal(buf_read_fd(&b, fd[0]), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_content(&b, data, 10);

	/* consuming makes room for exactly that much more */
	buf_consume(&b, 4);
	assert_int_equal(buf_read_fd(&b, fd[0]), 4);
	assert_content(&b, data + 4, 10);
	buf_consume(&b, 10);
	assert_int_equal(buf_read_fd(&b, fd[0]), 10);
	assert_content(&b, data + 14, 10);
	assert_true(buf_len(&b) <= b.max);

	/* the rest comes through in order, never more than max at once */
	for (i = 24; i < sizeof(data); ) {
		ssize_t r;

		buf_consume(&b, buf_len(&b));
		r = buf_read_fd(&b, fd[0]);
		assert_true(r > 0 && r <= 10);
		assert_content(&b, data + i, (size_t)r);
		i += (size_t)r;
	}
	assert_int_equal(close(fd[1]), 0);
	buf_consume(&b, buf_len(&b));
	assert_int_equal(buf_read_fd(&b, fd[0]), 0);
	assert_int_equal(close(fd[0]), 0);
	buf_free(&b);
}

static void
test_write_fd(void **state)
{
	struct buf	 b, in;
	char		*src;
	size_t		 total = 1024 * 1024, i, sent = 0;
	ssize_t		 r;
	int		 fd[2];
	bool		 blocked = false;

	(void)state;
	nb_pipe(fd);
	buf_init(&b, 0);
	buf_init(&in, 0);

	/* an empty buffer writes nothing */
	assert_int_equal(buf_write_fd(&b, fd[1]), 0);
	assert_non_null(src = malloc(total));
	for (i = 0; i < total; i++)
		src[i] = pattern(i);
	assert_int_equal(buf_append(&b, src, total), 0);

	/* more than the pipe holds: partial writes, then EAGAIN with the
	 * unsent rest intact, then everything once the reader drains */
	while (buf_len(&b) > 0) {
		r = buf_write_fd(&b, fd[1]);
		if (r == -1) {
			size_t before = buf_len(&b);

			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			assert_int_equal(buf_len(&b), total - sent);
			assert_int_equal(buf_data(&b)[0], pattern(sent));
			blocked = true;
			while ((r = buf_read_fd(&in, fd[0])) > 0)
				;
			assert_int_equal(r, -1);
			assert_int_equal(buf_len(&b), before);
			continue;
		}
		assert_true(r > 0);
		sent += (size_t)r;
		assert_int_equal(buf_len(&b), total - sent);
	}
	assert_true(blocked);
	assert_int_equal(sent, total);
	assert_int_equal(close(fd[1]), 0);
	while ((r = buf_read_fd(&in, fd[0])) > 0)
		;
	assert_int_equal(r, 0);
	assert_int_equal(buf_len(&in), total);
	assert_memory_equal(buf_data(&in), src, total);
	free(src);
	assert_int_equal(close(fd[0]), 0);

	/* a closed reader is an error the caller sees (EPIPE, not SIGPIPE) */
	nb_pipe(fd);
	assert_int_equal(close(fd[0]), 0);
	assert_int_equal(buf_puts(&b, "lost"), 0);
	{
		struct sigaction sa, old;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
		errno = 0;
		assert_int_equal(buf_write_fd(&b, fd[1]), -1);
		assert_int_equal(errno, EPIPE);
		assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
	}
	assert_content(&b, "lost", 4);
	assert_int_equal(close(fd[1]), 0);
	buf_free(&b);
	buf_free(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_grows),
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_max_enforced),
		cmocka_unit_test(test_consume_and_slide),
		cmocka_unit_test(test_cstr),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_read_fd),
		cmocka_unit_test(test_read_fd_max),
		cmocka_unit_test(test_write_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
