-- Service units: desired state and settings of each service of the node.
-- Columns match the setting definitions in node/settings.c (column names).
CREATE TABLE IF NOT EXISTS services (
  name              VARCHAR(32)  NOT NULL PRIMARY KEY,
  state             ENUM('running', 'stopped') NOT NULL DEFAULT 'running',
  bind_addrs        VARCHAR(512) NOT NULL,
  port              INT UNSIGNED NOT NULL,
  max_clients       INT UNSIGNED NOT NULL,
  idle_timeout      INT UNSIGNED NOT NULL,
  auto_start        BOOLEAN      NOT NULL DEFAULT TRUE,
  restart_on_change BOOLEAN      NOT NULL DEFAULT TRUE,
  updated_at        TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB;
