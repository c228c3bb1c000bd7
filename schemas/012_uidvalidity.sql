-- The last UIDVALIDITY handed out per mailbox, which only grows: a folder
-- deleted and made again (or renamed onto a deleted name) never gets an
-- earlier folder's value back (RFC 3501 2.3.1.1), however fast that goes.
-- Its own table, so creating a folder locks no mailboxes row.
CREATE TABLE IF NOT EXISTS folder_uidvalidity (
  mailbox_id    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  last          INT UNSIGNED NOT NULL,
  CONSTRAINT folder_uidvalidity_mailbox_fk FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- Existing mailboxes start from the largest value their folders hold.
INSERT IGNORE INTO folder_uidvalidity (mailbox_id, last)
  SELECT mailbox_id, MAX(uidvalidity) FROM folders GROUP BY mailbox_id;
