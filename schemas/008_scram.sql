-- SCRAM-SHA-256 keys of a mailbox's password ({SCRAM-SHA-256}iterations,
-- salt,StoredKey,ServerKey), made when the password is set in clear through
-- the API; NULL for hashes migrated from elsewhere (SCRAM is then not
-- offered for that mailbox). A secret: never returned by get.
ALTER TABLE mailboxes ADD COLUMN IF NOT EXISTS scram_sha256 VARCHAR(160) NULL AFTER password_hash;
