/* mib_oids: the object identifiers the subagent serves. The private
 * enterprise arc is defined here and in mibs/MAILNODE-MIB.txt only. */
#ifndef MAILNODE_MIB_OIDS_H
#define MAILNODE_MIB_OIDS_H

/* enterprises.32473: the IANA PEN reserved for documentation (RFC 5612).
 * Change it (and the MIB's MODULE-IDENTITY) after an IANA registration. */
#define MAILNODE_ENTERPRISE_OID	1, 3, 6, 1, 4, 1, 32473

#define MN_OBJECTS		MAILNODE_ENTERPRISE_OID, 1
#define MN_NOTIFICATIONS	MAILNODE_ENTERPRISE_OID, 0
#define MN_NODE			MN_OBJECTS, 1
#define MN_SERVICE_ENTRY	MN_OBJECTS, 2, 1
#define MN_TENANT_ENTRY		MN_OBJECTS, 3, 1
#define MN_ACCESS_ENTRY		MN_OBJECTS, 4, 1
#define MN_QUEUE		MN_OBJECTS, 5
#define MN_THRESHOLDS		MN_OBJECTS, 6
#define MN_NOTIFY_INFO		MN_OBJECTS, 7

/* NETWORK-SERVICES-MIB (RFC 2788) and MTA-MIB (RFC 2789). */
#define APPL_ENTRY		1, 3, 6, 1, 2, 1, 27, 1, 1
#define MTA_ENTRY		1, 3, 6, 1, 2, 1, 28, 1, 1
#define MTA_GROUP_ENTRY		1, 3, 6, 1, 2, 1, 28, 2, 1
/* mtaGroupMailProtocol value: the SMTP protocol's OID from applTable's
 * world (RFC 2789 suggests the protocol's registered OID). */

#endif
