/* set_txn: the changes of one SNMP SET request, gathered varbind by
 * varbind (RESERVE1), turned into one stream of provisioning documents and
 * validated by a dry-run apply through the node (RESERVE2), applied in one
 * go (ACTION: AgentX's CommitSet, the last phase whose failure reaches the
 * manager), undone with the documents as they were stored (UNDO), made
 * final (COMMIT) or dropped (FREE). The node's apply is all-or-nothing, so
 * a SET is wholly stored or not at all. */
#ifndef MAILNODE_SET_TXN_H
#define MAILNODE_SET_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>

enum txn_scope { TXN_SERVICE = 1, TXN_TENANT = 2 };

/* A new request starts a new transaction. */
void	 set_txn_begin(netsnmp_agent_request_info *);
/* Stage a setting of a service or tenant: key is the spec path
 * ("state", "port", "limits.mailboxes"); text values are YAML strings,
 * numbers and booleans are written plain. -1: too many changes. */
int	 set_txn_str(enum txn_scope, const char *name, const char *key, const char *value);
int	 set_txn_u64(enum txn_scope, const char *name, const char *key, uint64_t value);
int	 set_txn_bool(enum txn_scope, const char *name, const char *key, bool value);
/* Access rules: the scope's mode, and addresses added or removed
 * (RowStatus createAndGo, destroy, or active on an existing row). */
enum txn_rule_op { RULE_CREATE, RULE_DESTROY, RULE_ACTIVE };
int	 set_txn_mode(enum txn_scope, const char *name, int mode);
int	 set_txn_rule(enum txn_scope, const char *name, const char *address, enum txn_rule_op);
/* A threshold of the subagent itself (applied after the node's part). */
int	 set_txn_threshold(unsigned which, uint32_t value);

int	 set_txn_validate(netsnmp_agent_request_info *);
int	 set_txn_action(netsnmp_agent_request_info *);
int	 set_txn_undo(netsnmp_agent_request_info *);
void	 set_txn_commit(netsnmp_agent_request_info *);
void	 set_txn_abort(netsnmp_agent_request_info *);

#endif
