/* ydoc: YAML streams read into trees whose every node keeps its line and
 * column, so that errors about a document can point at the right place.
 * Anchors and aliases are refused (no expansion bombs); depth and size are
 * bounded. */
#ifndef MAILNODE_YDOC_H
#define MAILNODE_YDOC_H

#include <stdbool.h>
#include <stddef.h>

enum ydoc_type { YDOC_SCALAR, YDOC_SEQ, YDOC_MAP };

struct ydoc_node {
	enum ydoc_type	   type;
	unsigned	   line, col;	/* 1-based */
	char		  *str;		/* scalar text, NUL-terminated */
	size_t		   len;
	bool		   plain;	/* unquoted scalar (null/bool/number candidates) */
	/* SEQ: items[0..n); MAP: items[2i] is a key, items[2i+1] its value. */
	struct ydoc_node **items;
	size_t		   n;
};

struct ydoc_stream {
	struct ydoc_node **docs;
	size_t		   ndocs;
};

#define YDOC_MAX_DEPTH	32
#define YDOC_MAX_NODES	2000000

/* Parse a whole stream. On error returns -1 with "line L, column C: reason"
 * in err. */
int		  ydoc_parse(const char *data, size_t len, struct ydoc_stream **,
		    char *err, size_t errlen);
void		  ydoc_free(struct ydoc_stream *);
/* Value of key in a map, NULL if absent or not a map. */
struct ydoc_node *ydoc_get(const struct ydoc_node *map, const char *key);
/* Scalar text, NULL if the node is absent or not a scalar. */
const char	 *ydoc_str(const struct ydoc_node *);
/* Item count of a map (pairs) or sequence; 0 otherwise. */
size_t		  ydoc_count(const struct ydoc_node *);
const char	 *ydoc_type_name(enum ydoc_type);

#endif
