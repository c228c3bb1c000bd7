/* yamlw: writing YAML documents (API answers, `get` output) into a buf
 * through libyaml's emitter, so quoting is always right. */
#ifndef MAILNODE_YAMLW_H
#define MAILNODE_YAMLW_H

#include <stdbool.h>
#include <stdint.h>
#include <yaml.h>

#include "buf.h"
#include "ydoc.h"

struct yamlw {
	yaml_emitter_t	 em;
	struct buf	*out;
	bool		 failed;
	bool		 in_doc;
};

void	 yamlw_begin(struct yamlw *, struct buf *out);
/* Start a new document (ends the previous one). */
void	 yamlw_doc(struct yamlw *);
/* Finish; -1 if anything failed on the way. */
int	 yamlw_end(struct yamlw *);

void	 yamlw_map(struct yamlw *);
void	 yamlw_map_end(struct yamlw *);
void	 yamlw_seq(struct yamlw *);
void	 yamlw_seq_end(struct yamlw *);
/* A string: quoted whenever a plain scalar would read as another type. */
void	 yamlw_str(struct yamlw *, const char *);
void	 yamlw_u64(struct yamlw *, uint64_t);
void	 yamlw_bool(struct yamlw *, bool);
void	 yamlw_null(struct yamlw *);
/* Key followed by a value. */
void	 yamlw_kstr(struct yamlw *, const char *key, const char *val);
void	 yamlw_ku64(struct yamlw *, const char *key, uint64_t);
void	 yamlw_kbool(struct yamlw *, const char *key, bool);
/* A tree read by ydoc (plain scalars stay plain: numbers, booleans, null). */
void	 yamlw_node(struct yamlw *, const struct ydoc_node *);
/* ISO 8601 UTC timestamp. */
void	 yamlw_ktime(struct yamlw *, const char *key, int64_t epoch);

#endif
