/* store: the mailbox store shared by IMAP, POP3 and local delivery. Folders,
 * UIDs, flags, keywords and modseqs live in MariaDB; bodies are immutable
 * files under the mail root. Every function is blocking: call it on a
 * database worker (db_submit) with the worker's connection. All functions
 * that name a folder take the mailbox id of the logged-in user, so one
 * user can never reach another mailbox's folders. */
#ifndef MAILNODE_STORE_H
#define MAILNODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

#include "buf.h"

/* Results (0 is success). */
#define STORE_OK		 0
#define STORE_ERROR		-1	/* database or file system trouble: try again later */
#define STORE_NOTFOUND		-2	/* no such folder or message */
#define STORE_EXISTS		-3	/* the folder already exists */
#define STORE_OVERQUOTA		-4	/* the mailbox would pass its quota */
#define STORE_INVALID		-5	/* a name or argument the store refuses */
#define STORE_FORBIDDEN		-6	/* e.g. deleting or renaming INBOX */

/* System flags as bits. \Recent is per session, not stored. */
#define STORE_F_SEEN		0x01
#define STORE_F_ANSWERED	0x02
#define STORE_F_FLAGGED		0x04
#define STORE_F_DELETED		0x08
#define STORE_F_DRAFT		0x10
#define STORE_F_ALL		0x1f

#define STORE_NAME_MAX		255	/* bytes of a UTF-8 folder name */
#define STORE_KEYWORDS_MAX	2000	/* bytes of a message's keyword list */

/* Where the bodies live (the node's STATE/mail). Call once at start. */
int	 store_init(const char *mail_root);
const char *store_mail_root(void);

struct store_folder {
	uint64_t	 id;		/* 0: a subscription to a name that does not exist */
	char		 name[STORE_NAME_MAX + 1];	/* UTF-8, '/' separated */
	char		 special_use[16];		/* "\\Sent", ... or "" */
	bool		 subscribed;
	uint32_t	 uidvalidity, uidnext;
	uint64_t	 highestmodseq;
};

/* Folders of a mailbox, sorted by name, plus subscribed names that have no
 * folder. Caller frees *out. */
int	 store_folder_list(MYSQL *, uint64_t mailbox_id, struct store_folder **out, size_t *n);
/* A valid folder name: UTF-8, no empty level, no leading or trailing '/',
 * no control characters, at most STORE_NAME_MAX bytes. "inbox" in any case
 * means INBOX. Writes the canonical name to out (STORE_NAME_MAX + 1). */
bool	 store_folder_name_ok(const char *name, char *out);
/* Create name (and missing parents). special_use may be NULL. */
int	 store_folder_create(MYSQL *, uint64_t mailbox_id, const char *name, const char *special_use);
/* Delete a folder and its messages (quota given back, bodies unlinked).
 * INBOX: STORE_FORBIDDEN. A folder with children: STORE_INVALID. */
int	 store_folder_delete(MYSQL *, uint64_t mailbox_id, const char *name);
/* Rename a folder and its children. Renaming INBOX moves its messages to
 * the new folder and leaves INBOX empty (RFC 3501 6.3.5). */
int	 store_folder_rename(MYSQL *, uint64_t mailbox_id, const char *from, const char *to);
int	 store_folder_subscribe(MYSQL *, uint64_t mailbox_id, const char *name, bool on);

struct store_status {
	uint32_t	 messages, recent, unseen, deleted;
	uint32_t	 uidnext, uidvalidity;
	uint64_t	 highestmodseq, size;
};
int	 store_folder_status(MYSQL *, uint64_t mailbox_id, const char *name, struct store_status *);

/* One message as a session tracks it. */
struct store_msg {
	uint32_t	 uid;
	uint8_t		 flags;		/* STORE_F_* */
	uint64_t	 modseq;
	uint64_t	 size;
	int64_t		 internal_date;	/* seconds since the epoch */
	char		*keywords;	/* NULL or space separated; owned by its container */
};

struct store_snapshot {
	struct store_folder	 folder;
	uint32_t		 recent_from;	/* uids >= this are \Recent for this session */
	char			*keywords;	/* every keyword used in the folder, space separated */
	struct store_msg	*msgs;		/* by ascending uid */
	size_t			 n;
};
/* Open a folder: its state and messages. With claim_recent (SELECT, not
 * EXAMINE) the messages delivered since the last claim become \Recent for
 * this session only. */
int	 store_folder_snapshot(MYSQL *, uint64_t mailbox_id, const char *name, bool claim_recent,
	    struct store_snapshot *);
void	 store_snapshot_free(struct store_snapshot *);

/* What changed in a folder since a session last looked: messages with a
 * modseq above since_modseq or a uid at or above since_uid (new mail), and
 * uids expunged with a modseq above since_modseq. */
struct store_changes {
	uint32_t		 uidnext;
	uint64_t		 highestmodseq;
	char			*keywords;
	struct store_msg	*msgs;		/* by ascending uid */
	size_t			 n;
	uint32_t		*expunged;	/* ascending */
	size_t			 nexpunged;
	bool			 gone;		/* the folder was deleted or renamed away */
};
int	 store_changes(MYSQL *, uint64_t mailbox_id, uint64_t folder_id, uint64_t since_modseq,
	    uint32_t since_uid, struct store_changes *);
void	 store_changes_free(struct store_changes *);

/* The change markers of many folders at once (what IDLE watches): fills
 * uidnext and highestmodseq of each id given; a folder that is gone gets
 * uidnext 0. */
struct store_folder_state {
	uint64_t	 id;
	uint32_t	 uidnext;
	uint64_t	 highestmodseq;
};
int	 store_folders_state(MYSQL *, struct store_folder_state *, size_t n);

enum store_flag_op { STORE_FLAGS_SET, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };

struct store_flag_req {
	enum store_flag_op	 op;
	uint8_t			 flags;
	const char		*keywords;	/* space separated atoms, "" for none */
	uint64_t		 unchangedsince;	/* 0: no condition (CONDSTORE) */
	const uint32_t		*uids;		/* ascending */
	size_t			 n;
};
struct store_flag_result {
	struct store_msg	*msgs;		/* every message asked for that exists, new state */
	size_t			 n;
	uint32_t		*failed;	/* modified since unchangedsince: not changed */
	size_t			 nfailed;
	uint64_t		 highestmodseq;
};
int	 store_flags(MYSQL *, uint64_t mailbox_id, uint64_t folder_id, const struct store_flag_req *,
	    struct store_flag_result *);
void	 store_flag_result_free(struct store_flag_result *);

/* Remove messages: uids (ascending) or every message when uids is NULL;
 * with only_deleted just those flagged \Deleted. Quota is given back and
 * the body files are unlinked after the commit. *out gets the removed
 * uids (ascending; caller frees; may be NULL). */
int	 store_expunge(MYSQL *, uint64_t mailbox_id, uint64_t folder_id, const uint32_t *uids,
	    size_t n, bool only_deleted, uint32_t **out, size_t *nout);

/* Copy (or move) messages into the folder named dst of the same mailbox.
 * The copies share the body file (hard link). STORE_NOTFOUND: no folder
 * dst. On success src_uids/dst_uids (caller frees) pair each copied
 * message with its new uid. A move expunges the sources in the same
 * transaction. */
struct store_copy_result {
	uint32_t	 dst_uidvalidity;
	uint32_t	*src_uids, *dst_uids;
	size_t		 n;
};
int	 store_copy(MYSQL *, uint64_t mailbox_id, uint64_t src_folder, const char *dst,
	    const uint32_t *uids, size_t n, bool move, struct store_copy_result *);
void	 store_copy_result_free(struct store_copy_result *);

/* Add a message to a folder: the body is made durable (fsync of file and
 * directory) before its row is committed. internal_date 0: now. */
struct store_append_req {
	const char	*data;
	size_t		 len;
	uint8_t		 flags;
	const char	*keywords;	/* NULL or space separated */
	int64_t		 internal_date;
};
int	 store_append(MYSQL *, uint64_t mailbox_id, const char *folder, const struct store_append_req *,
	    uint32_t *uidvalidity, uint32_t *uid);

/* A message for FETCH: its row and the structure cached at delivery
 * (computed and saved on first use for mail stored before that existed). */
struct store_fetch_row {
	uint32_t	 uid;
	uint8_t		 flags;
	uint64_t	 modseq, size;
	int64_t		 internal_date;
	char		*keywords;
	char		*path;		/* full path of the body file */
	char		*envelope;	/* IMAP ENVELOPE text; NULL unless asked */
	char		*body;		/* BODY text */
	char		*bodystructure;	/* BODYSTRUCTURE text */
	char		*index;		/* part offsets (mime_index_section) */
};
/* Rows of the given uids (ascending) that exist; want_meta also fills
 * envelope, body, bodystructure and index. Caller frees with
 * store_fetch_rows_free. */
int	 store_fetch_rows(MYSQL *, uint64_t mailbox_id, uint64_t folder_id, const uint32_t *uids, size_t n,
	    bool want_meta, struct store_fetch_row **out, size_t *nout);
void	 store_fetch_rows_free(struct store_fetch_row *, size_t n);

/* Parse a message's body file and save its structure (ENVELOPE, BODY,
 * BODYSTRUCTURE, part offsets) in its row: delivery calls it right after
 * it adds a message. A row without it gets it at its first FETCH. */
int	 store_cache_structure(MYSQL *, uint64_t folder_id, uint32_t uid, const char *path);

/* Read a body file (or a range of it: len SIZE_MAX for the rest) into out. */
int	 store_read_body(const char *path, uint64_t off, uint64_t len, struct buf *out);

/* The mailbox's storage in bytes and its quota (0: none). */
int	 store_quota(MYSQL *, uint64_t mailbox_id, uint64_t *used, uint64_t *limit, uint64_t *messages);

#endif
