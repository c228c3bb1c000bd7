-- allowPlaintextAuth (node/settings.c): passwords before STLS on pop3.
ALTER TABLE services
  ADD COLUMN IF NOT EXISTS allow_plaintext_auth BOOLEAN NOT NULL DEFAULT FALSE;
