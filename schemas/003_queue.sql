-- The mail queue: one row per accepted message (its body is the file
-- spool/msg/<qid>, written and fsynced before this row is committed) and one
-- per recipient with its delivery state.
CREATE TABLE IF NOT EXISTS queue_messages (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  qid          CHAR(26)     NOT NULL,        -- public queue id and file name
  size         BIGINT UNSIGNED NOT NULL,
  sender       VARCHAR(512) NOT NULL,        -- '' for the null reverse-path
  tenant_id    BIGINT UNSIGNED NULL,
  helo         VARCHAR(255) NOT NULL DEFAULT '',
  peer         VARCHAR(80)  NOT NULL DEFAULT '',
  envid        VARCHAR(100) NOT NULL DEFAULT '',
  ret_hdrs     BOOLEAN      NOT NULL DEFAULT FALSE,
  smtputf8     BOOLEAN      NOT NULL DEFAULT FALSE,
  held         BOOLEAN      NOT NULL DEFAULT FALSE,
  received_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY queue_messages_qid (qid),
  KEY queue_messages_tenant (tenant_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS queue_recipients (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  message_id   BIGINT UNSIGNED NOT NULL,
  address      VARCHAR(512) NOT NULL,
  mailbox_id   BIGINT UNSIGNED NULL,         -- local delivery; NULL: remote
  notify       TINYINT UNSIGNED NOT NULL DEFAULT 0,
  orcpt        VARCHAR(264) NOT NULL DEFAULT '',
  state        ENUM('queued', 'delivered', 'deferred', 'failed') NOT NULL DEFAULT 'queued',
  attempts     INT UNSIGNED NOT NULL DEFAULT 0,
  next_attempt TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  last_error   VARCHAR(1000) NOT NULL DEFAULT '',
  KEY queue_recipients_due (state, next_attempt),
  KEY queue_recipients_message (message_id),
  CONSTRAINT queue_recipients_message_fk FOREIGN KEY (message_id)
    REFERENCES queue_messages (id) ON DELETE CASCADE
) ENGINE=InnoDB;
