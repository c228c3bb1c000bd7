/* imap_parse: the IMAP4rev1 command parser (RFC 3501 and the extensions the
 * imap service offers). A complete command (its line and the literals it
 * announced, assembled by the session) goes in; a struct imap_cmd whose
 * strings live in the command's own arena comes out. Strict and bounded:
 * anything not in the grammar is an error with a reason for the BAD reply. */
#ifndef MAILNODE_IMAP_PARSE_H
#define MAILNODE_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define IMAP_TAG_MAX		64
#define IMAP_SEARCH_DEPTH	32	/* nesting of search key lists, NOT and OR */
#define IMAP_SEQ_STAR		UINT32_MAX	/* "*" in a sequence set */

enum imap_verb {
	IMAP_NONE,
	IMAP_CAPABILITY, IMAP_NOOP, IMAP_LOGOUT, IMAP_STARTTLS, IMAP_AUTHENTICATE, IMAP_LOGIN,
	IMAP_SELECT, IMAP_EXAMINE, IMAP_CREATE, IMAP_DELETE, IMAP_RENAME, IMAP_SUBSCRIBE,
	IMAP_UNSUBSCRIBE, IMAP_LIST, IMAP_LSUB, IMAP_STATUS, IMAP_APPEND, IMAP_CHECK, IMAP_CLOSE,
	IMAP_EXPUNGE, IMAP_SEARCH, IMAP_FETCH, IMAP_STORE, IMAP_COPY, IMAP_MOVE, IMAP_UID_EXPUNGE,
	IMAP_IDLE, IMAP_NAMESPACE, IMAP_ENABLE, IMAP_ID, IMAP_UNSELECT, IMAP_GETQUOTA,
	IMAP_GETQUOTAROOT, IMAP_SETQUOTA, IMAP_SORT
};

/* A sequence set: ranges with lo <= hi after normalizing; IMAP_SEQ_STAR
 * stands for "*" until the session resolves it. */
struct imap_range {
	uint32_t	lo, hi;
};
struct imap_seqset {
	struct imap_range	*r;
	size_t			 n;
};

/* Flags as given: system flags as bits (the STORE_F_* values) and keywords
 * as one space separated string. */
#define IMAP_FLAG_SEEN		0x01
#define IMAP_FLAG_ANSWERED	0x02
#define IMAP_FLAG_FLAGGED	0x04
#define IMAP_FLAG_DELETED	0x08
#define IMAP_FLAG_DRAFT		0x10
#define IMAP_FLAG_RECENT	0x20	/* only valid in SEARCH */
struct imap_flags {
	uint8_t		 sys;
	char		*keywords;	/* "" when none */
};

enum imap_search_kind {
	SK_ALL, SK_AND, SK_OR, SK_NOT,
	SK_SEQSET, SK_UIDSET,
	SK_ANSWERED, SK_DELETED, SK_DRAFT, SK_FLAGGED, SK_NEW, SK_OLD, SK_RECENT, SK_SEEN,
	SK_UNANSWERED, SK_UNDELETED, SK_UNDRAFT, SK_UNFLAGGED, SK_UNSEEN,
	SK_KEYWORD, SK_UNKEYWORD,
	SK_BCC, SK_BODY, SK_CC, SK_FROM, SK_SUBJECT, SK_TEXT, SK_TO, SK_HEADER,
	SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE, SK_SENTON, SK_SENTSINCE,
	SK_LARGER, SK_SMALLER, SK_MODSEQ
};
struct imap_search {
	enum imap_search_kind	 kind;
	struct imap_search	*a, *b;		/* AND: list head a, siblings via next; OR: a, b; NOT: a */
	struct imap_search	*next;
	struct imap_seqset	 set;
	char			*field;		/* HEADER field name */
	char			*str;		/* string argument, keyword */
	time_t			 date;		/* a day, 00:00 UTC */
	uint64_t		 num;		/* size, modseq */
};

/* BODY[section]<partial> and friends. */
struct imap_section {
	bool		 peek;
	bool		 rfc822;	/* the RFC822, RFC822.HEADER or RFC822.TEXT form (names the reply) */
	char		*part;		/* "1.2" or "" */
	char		*text;		/* "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME" */
	char		**fields;	/* HEADER.FIELDS (...) */
	size_t		 nfields;
	bool		 partial;
	uint32_t	 off, len;
	char		*spec;		/* the section text as the reply names it, e.g. "1.HEADER.FIELDS (FROM)" */
};

#define IMAP_FI_FLAGS		0x0001
#define IMAP_FI_UID		0x0002
#define IMAP_FI_INTERNALDATE	0x0004
#define IMAP_FI_SIZE		0x0008
#define IMAP_FI_ENVELOPE	0x0010
#define IMAP_FI_BODY		0x0020	/* BODY without a section */
#define IMAP_FI_BODYSTRUCTURE	0x0040
#define IMAP_FI_MODSEQ		0x0080

enum imap_status_item {
	IMAP_ST_MESSAGES = 0x01, IMAP_ST_RECENT = 0x02, IMAP_ST_UIDNEXT = 0x04,
	IMAP_ST_UIDVALIDITY = 0x08, IMAP_ST_UNSEEN = 0x10, IMAP_ST_HIGHESTMODSEQ = 0x20,
	IMAP_ST_SIZE = 0x40
};

/* ESEARCH RETURN options. */
#define IMAP_SR_MIN	0x01
#define IMAP_SR_MAX	0x02
#define IMAP_SR_ALL	0x04
#define IMAP_SR_COUNT	0x08

enum imap_sort_key { SORT_ARRIVAL, SORT_CC, SORT_DATE, SORT_FROM, SORT_SIZE, SORT_SUBJECT, SORT_TO };
#define IMAP_SORT_MAX	8

/* LIST-EXTENDED selection and return options. */
#define IMAP_LS_SUBSCRIBED	0x01
#define IMAP_LS_REMOTE		0x02
#define IMAP_LS_RECURSIVEMATCH	0x04
#define IMAP_LS_SPECIALUSE	0x08
#define IMAP_LR_SUBSCRIBED	0x01
#define IMAP_LR_CHILDREN	0x02
#define IMAP_LR_SPECIALUSE	0x04
#define IMAP_LR_STATUS		0x08

struct imap_cmd {
	char			 tag[IMAP_TAG_MAX + 1];
	enum imap_verb		 verb;
	bool			 uid;		/* UID FETCH, UID STORE, ... */
	/* Strings (mailbox names are as sent: modified UTF-7). */
	char			*s1, *s2;	/* LOGIN user, password; mailbox(es); AUTHENTICATE mechanism, response */
	bool			 s2_given;
	struct imap_seqset	 set;		/* FETCH, STORE, COPY, MOVE, UID EXPUNGE */
	/* SELECT/EXAMINE (CONDSTORE), ENABLE */
	bool			 condstore;
	char			**atoms;	/* ENABLE capabilities, ID fields (key, value; value may be NULL) */
	size_t			 natoms;
	/* FETCH */
	unsigned		 fetch_items;	/* IMAP_FI_* */
	struct imap_section	*sections;
	size_t			 nsections;
	uint64_t		 changedsince;	/* 0: none */
	/* STORE */
	int			 store_op;	/* 0 set, 1 add, 2 remove */
	bool			 silent;
	struct imap_flags	 flags;		/* STORE, APPEND */
	uint64_t		 unchangedsince;	/* 0: none (valid values are >= 0; has_unchangedsince says) */
	bool			 has_unchangedsince;
	/* APPEND */
	time_t			 date;		/* 0: none given */
	const char		*literal;	/* the message (points into the command text) */
	size_t			 literal_len;
	/* SEARCH / SORT */
	struct imap_search	*search;
	unsigned		 search_return;	/* IMAP_SR_*; 0 without RETURN */
	bool			 esearch;	/* RETURN was given */
	char			*charset;
	enum imap_sort_key	 sort[IMAP_SORT_MAX];
	bool			 sort_reverse[IMAP_SORT_MAX];
	size_t			 nsort;
	/* STATUS, LIST RETURN (STATUS ...) */
	unsigned		 status_items;
	/* LIST */
	unsigned		 list_select, list_return;
	char			**patterns;
	size_t			 npatterns;
	/* The arena all strings and arrays live in. */
	char			*arena;
	size_t			 arena_len, arena_used;
};

/* Parse one complete command (tag SP command [args], literals inline as
 * {n}CRLF<n bytes>, no final CRLF). 0 on success; -1 with a reason in err
 * (the tag is filled when it could be read, so the BAD can carry it). */
int	 imap_parse_command(const char *text, size_t len, struct imap_cmd *cmd, char *err, size_t errlen);
void	 imap_cmd_free(struct imap_cmd *);

/* Does this line (without CRLF) end by announcing a literal? Returns 1 and
 * sets *n and *nonsync ({n+}) if so, 0 if not, -1 if the announced size
 * does not fit in 32 bits. */
int	 imap_literal_announced(const char *line, size_t len, uint64_t *n, bool *nonsync);

/* "1-Feb-1994" (SEARCH) and "17-Jul-1996 02:44:25 -0700" (APPEND, without
 * the quotes); -1 when malformed. */
int	 imap_parse_date(const char *s, size_t len, time_t *out);
int	 imap_parse_datetime(const char *s, size_t len, time_t *out);

/* A name that may be sent as an atom rather than quoted. */
bool	 imap_is_atom_char(unsigned char c);

#endif
