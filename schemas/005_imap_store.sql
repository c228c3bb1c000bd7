-- What IMAP and POP3 need on top of the store: system flags as bits and
-- keywords per message, the structure parsed once at delivery (ENVELOPE,
-- BODY, BODYSTRUCTURE and the part offsets), expunged uids by modseq so
-- every session (on any node) learns of expunges, subscriptions, and the
-- folder's \Recent boundary.
ALTER TABLE messages
  ADD COLUMN IF NOT EXISTS sysflags TINYINT UNSIGNED NOT NULL DEFAULT 0,   -- 1 Seen 2 Answered 4 Flagged 8 Deleted 16 Draft
  ADD COLUMN IF NOT EXISTS keywords VARCHAR(2000) NOT NULL DEFAULT '',    -- space separated
  ADD COLUMN IF NOT EXISTS envelope MEDIUMTEXT NULL,
  ADD COLUMN IF NOT EXISTS body_basic MEDIUMTEXT NULL,
  ADD COLUMN IF NOT EXISTS body_structure MEDIUMTEXT NULL,
  ADD COLUMN IF NOT EXISTS mime_index MEDIUMTEXT NULL,
  ADD INDEX IF NOT EXISTS messages_modseq (folder_id, modseq);

-- The text flags column of 004 was never written; sysflags and keywords replace it.
ALTER TABLE messages DROP COLUMN IF EXISTS flags;

ALTER TABLE folders
  ADD COLUMN IF NOT EXISTS recent_uid INT UNSIGNED NOT NULL DEFAULT 1,    -- first uid not yet claimed as \Recent
  ADD COLUMN IF NOT EXISTS keywords VARCHAR(2000) NOT NULL DEFAULT '';    -- keywords ever set in the folder

CREATE TABLE IF NOT EXISTS expunged (
  folder_id   BIGINT UNSIGNED NOT NULL,
  uid         INT UNSIGNED NOT NULL,
  modseq      BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (folder_id, uid),
  KEY expunged_modseq (folder_id, modseq),
  CONSTRAINT expunged_folder_fk FOREIGN KEY (folder_id) REFERENCES folders (id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS subscriptions (
  mailbox_id  BIGINT UNSIGNED NOT NULL,
  name        VARCHAR(255) NOT NULL,
  PRIMARY KEY (mailbox_id, name),
  CONSTRAINT subscriptions_mailbox_fk FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- Folders that exist are subscribed when they are created; the existing
-- ones (created with their mailbox) are subscribed now.
INSERT IGNORE INTO subscriptions (mailbox_id, name) SELECT mailbox_id, name FROM folders;
