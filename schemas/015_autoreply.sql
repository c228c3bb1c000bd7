-- Autoreplies sent: one row per mailbox and sender (lower case), so that a
-- sender gets a mailbox's automatic reply at most once per interval
-- (RFC 3834 2), whichever node delivers and across crashes.
CREATE TABLE IF NOT EXISTS autoreply_log (
  mailbox_id  BIGINT UNSIGNED NOT NULL,
  sender      VARCHAR(320) NOT NULL,
  sent_at     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (mailbox_id, sender),
  CONSTRAINT autoreply_log_mailbox_fk FOREIGN KEY (mailbox_id) REFERENCES mailboxes (id) ON DELETE CASCADE
) ENGINE=InnoDB;
