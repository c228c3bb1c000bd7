-- Remote delivery workers (node/remote.c) claim recipients with a lease:
-- lease_owner is "node/start/worker/claim", lease_until when it lapses (a
-- node that died holding it clears its own when it starts again). warned:
-- the delay report (RFC 3464 Action: delayed) went out, once per recipient.
ALTER TABLE queue_recipients
  ADD COLUMN IF NOT EXISTS lease_owner VARCHAR(160) NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS lease_until TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS warned BOOLEAN NOT NULL DEFAULT FALSE;
