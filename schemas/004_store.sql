-- The mailbox store: folders and the messages in them. Message bodies are
-- immutable files under the mail root (mail/<mailbox id>/<file>), linked
-- from the spool at delivery; rows point to them. IMAP adds what it needs
-- (flags, keywords, modseq, MIME structure) on top of these.
CREATE TABLE IF NOT EXISTS folders (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  mailbox_id    BIGINT UNSIGNED NOT NULL,
  name          VARCHAR(255) NOT NULL,        -- UTF-8, '/' separated
  special_use   VARCHAR(16)  NOT NULL DEFAULT '',  -- \Sent, \Drafts, \Trash, \Junk, \Archive
  uidvalidity   INT UNSIGNED NOT NULL,
  uidnext       INT UNSIGNED NOT NULL DEFAULT 1,
  highestmodseq BIGINT UNSIGNED NOT NULL DEFAULT 1,
  UNIQUE KEY folders_name (mailbox_id, name),
  CONSTRAINT folders_mailbox_fk FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS messages (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  folder_id     BIGINT UNSIGNED NOT NULL,
  uid           INT UNSIGNED NOT NULL,
  file          VARCHAR(255) NOT NULL,        -- relative to the mail root
  size          BIGINT UNSIGNED NOT NULL,
  return_path   VARCHAR(512) NOT NULL DEFAULT '',
  internal_date TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  flags         VARCHAR(255) NOT NULL DEFAULT '',
  modseq        BIGINT UNSIGNED NOT NULL DEFAULT 1,
  queue_qid     CHAR(26)     NOT NULL DEFAULT '',  -- the accepted message it came from
  UNIQUE KEY messages_uid (folder_id, uid),
  UNIQUE KEY messages_delivery (folder_id, queue_qid, file),
  CONSTRAINT messages_folder_fk FOREIGN KEY (folder_id) REFERENCES folders (id) ON DELETE CASCADE
) ENGINE=InnoDB;
