-- Which node's spool holds a queued message's file: the node that accepted
-- it, named by spool_node() (host and a hash of its spool directory). Only
-- that node delivers it, so nodes sharing one database never take each
-- other's mail. '' (rows queued before this migration) is every node's.
ALTER TABLE queue_messages
  ADD COLUMN IF NOT EXISTS spool VARCHAR(84) NOT NULL DEFAULT '',
  ADD KEY IF NOT EXISTS queue_messages_spool (spool);
