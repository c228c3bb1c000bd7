-- The tenant directory: tenants, their domains, mailboxes and aliases, and
-- the API tokens of the admin service. Each object keeps its canonical spec
-- as JSON (what `get` returns, what apply diffs against); the columns the
-- mail path looks up are generated from it, so the two cannot disagree.
CREATE TABLE IF NOT EXISTS tenants (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name        VARCHAR(63)  NOT NULL,
  spec        JSON         NOT NULL CHECK (JSON_VALID(spec)),
  state       VARCHAR(16)  AS (COALESCE(JSON_VALUE(spec, '$.state'), 'active')) PERSISTENT,
  created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY tenants_name (name)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS domains (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tenant_id   BIGINT UNSIGNED NOT NULL,
  name        VARCHAR(253) NOT NULL,
  spec        JSON         NOT NULL CHECK (JSON_VALID(spec)),
  alias_of    VARCHAR(253) AS (JSON_VALUE(spec, '$.aliasOf')) PERSISTENT,
  tls_key     TEXT         NULL,           -- secret: never returned by get
  created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY domains_name (name),
  KEY domains_tenant (tenant_id),
  CONSTRAINT domains_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS mailboxes (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tenant_id     BIGINT UNSIGNED NOT NULL,
  domain_id     BIGINT UNSIGNED NOT NULL,
  address       VARCHAR(254) NOT NULL,
  spec          JSON         NOT NULL CHECK (JSON_VALID(spec)),
  password_hash VARCHAR(512) NULL,         -- {SCHEME}hash; never returned by get
  state         VARCHAR(16)  AS (COALESCE(JSON_VALUE(spec, '$.state'), 'active')) PERSISTENT,
  used_bytes    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  messages      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY mailboxes_address (address),
  KEY mailboxes_tenant (tenant_id),
  KEY mailboxes_domain (domain_id),
  CONSTRAINT mailboxes_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
  CONSTRAINT mailboxes_domain_fk FOREIGN KEY (domain_id) REFERENCES domains (id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS aliases (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tenant_id   BIGINT UNSIGNED NOT NULL,
  domain_id   BIGINT UNSIGNED NOT NULL,
  address     VARCHAR(254) NOT NULL,
  spec        JSON         NOT NULL CHECK (JSON_VALID(spec)),
  created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY aliases_address (address),
  KEY aliases_tenant (tenant_id),
  CONSTRAINT aliases_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
  CONSTRAINT aliases_domain_fk FOREIGN KEY (domain_id) REFERENCES domains (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- Bearer tokens of the admin API, stored as SHA-256 of the token.
-- tenant_id NULL: all tenants and the node's services.
CREATE TABLE IF NOT EXISTS api_tokens (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  token_sha256 CHAR(64)    NOT NULL,
  tenant_id   BIGINT UNSIGNED NULL,
  description VARCHAR(255) NOT NULL DEFAULT '',
  created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY api_tokens_hash (token_sha256),
  CONSTRAINT api_tokens_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- Service documents also carry access rules and connection limits.
ALTER TABLE services
  ADD COLUMN IF NOT EXISTS access JSON NULL CHECK (access IS NULL OR JSON_VALID(access)),
  ADD COLUMN IF NOT EXISTS connections JSON NULL CHECK (connections IS NULL OR JSON_VALID(connections));

-- A counter bumped by every apply that changed something (SNMP reports it).
CREATE TABLE IF NOT EXISTS node_meta (
  k VARCHAR(64) NOT NULL PRIMARY KEY,
  v BIGINT      NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO node_meta (k, v) VALUES ('config_generation', 0);
