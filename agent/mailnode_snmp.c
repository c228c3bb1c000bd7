/* mailnode-snmp: the AgentX subagent of mailnode. It serves MAILNODE-MIB,
 * NETWORK-SERVICES-MIB's applTable and MTA-MIB's tables from what mailnoded
 * reports on its control socket, applies SETs through the node's apply
 * path, and sends notifications through snmpd. One thread: the Net-SNMP
 * agent library is not thread-safe. */
#include <getopt.h>
#include <sys/select.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>

#include "mib_mailnode.h"
#include "node_client.h"
#include "snapshot.h"
#include "traps.h"

static volatile sig_atomic_t	stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The agent's sockets, the library's timers, and every second a look at
 * the node for notifications, however busy the sockets are. */
static void
serve(void)
{
	long next_poll = mono_ms();	/* the first look at once: the base to compare with */

	while (!stop) {
		struct timeval tv = { 0, 0 };
		fd_set fds;
		int n = 0, block = 0, r;
		long left = next_poll - mono_ms();

		if (left <= 0) {
			traps_check(snapshot_get(900));
			next_poll = mono_ms() + 1000;
			left = 1000;
		}
		FD_ZERO(&fds);
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		snmp_select_info(&n, &fds, &tv, &block);
		if (tv.tv_sec * 1000L + tv.tv_usec / 1000 > left) {
			tv.tv_sec = left / 1000;
			tv.tv_usec = (left % 1000) * 1000;
		}
		r = select(n, &fds, NULL, NULL, &tv);
		if (r > 0)
			snmp_read(&fds);
		else if (r == 0)
			snmp_timeout();
		run_alarms();
		netsnmp_check_outstanding_agent_requests();
	}
}

static void
usage(int rc)
{
	fprintf(rc ? stderr : stdout, "usage: mailnode-snmp [--state-dir DIR] [--control SOCKET] "
	    "[--agentx SOCKET] [--thresholds FILE] [--debug]\n"
	    "  --state-dir DIR   the node's state directory (default /var/lib/mailnode):\n"
	    "                    control socket DIR/run/control.sock, AgentX socket\n"
	    "                    DIR/run/agentx.sock, thresholds DIR/snmp/thresholds\n");
	exit(rc);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'c' },
		{ "agentx", required_argument, NULL, 'x' },
		{ "thresholds", required_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *state = "/var/lib/mailnode";
	char control[512] = "", agentx[512] = "", thresholds[512] = "";
	struct sigaction sa;
	int c, debug = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'c': snprintf(control, sizeof(control), "%s", optarg); break;
		case 'x': snprintf(agentx, sizeof(agentx), "%s", optarg); break;
		case 't': snprintf(thresholds, sizeof(thresholds), "%s", optarg); break;
		case 'd': debug = 1; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (!control[0])
		snprintf(control, sizeof(control), "%s/run/control.sock", state);
	if (!agentx[0])
		snprintf(agentx, sizeof(agentx), "%s/run/agentx.sock", state);
	if (!thresholds[0])
		snprintf(thresholds, sizeof(thresholds), "%s/snmp/thresholds", state);

	snmp_disable_log();
	snmp_enable_stderrlog();
	if (debug)
		snmp_set_do_debugging(1);
	node_client_init(control, 4000);
	if (traps_init(thresholds) == -1)
		return 1;

	netsnmp_ds_set_boolean(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_ROLE, 1);
	netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_X_SOCKET, agentx);
	/* Ping snmpd every 2 s and reconnect when it went away. */
	netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL, 2);
	/* Alarms run from the main loop, never inside a SIGALRM handler. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_ALARM_DONT_USE_SIG, 1);
	/* Our own settings only: no system snmp.conf, no persistent files. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
	if (init_agent("mailnode-snmp") != 0) {
		fprintf(stderr, "mailnode-snmp: cannot initialize the agent library\n");
		return 1;
	}
	if (mib_mailnode_register() == -1 || mib_std_register(time(NULL)) == -1)
		return 1;
	/* The subagent serves OIDs, it does not print them: no MIB files. */
	setenv("MIBS", "", 1);
	setenv("MIBDIRS", "", 1);
	init_snmp("mailnode-snmp");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	snmp_log(LOG_INFO, "mailnode-snmp: serving (AgentX %s, node %s)\n", agentx, control);
	serve();
	snmp_shutdown("mailnode-snmp");
	snapshot_free_all();
	return 0;
}
