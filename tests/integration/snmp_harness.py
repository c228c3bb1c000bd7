"""SNMP side of the integration tests and the benchmark: a private snmpd
(SNMPv3 authPriv users with passphrases made now, AgentX on a private
socket, a random loopback port), the mailnode-snmp subagent beside a Node,
snmptrapd receiving informs, and the net-snmp command-line tools."""
import os
import secrets
import signal
import socket
import subprocess
import time

from conftest import BUILD, TOP

AGENT = os.path.join(BUILD, "agent", "mailnode-snmp")
MIBS = os.path.join(TOP, "mibs")
# Leaks inside Net-SNMP itself, not ours (the file says which and why).
LSAN_SUPPRESSIONS = os.path.join(TOP, "tests", "sanitizers", "lsan.supp")


def enterprise_arc():
    """The arc as agent/mib_oids.h defines it (its one definition)."""
    with open(os.path.join(TOP, "agent", "mib_oids.h")) as f:
        for line in f:
            if line.startswith("#define MAILNODE_ENTERPRISE_OID"):
                return "." + ".".join(p.strip() for p in line.split(None, 2)[2].split(","))
    raise AssertionError("no MAILNODE_ENTERPRISE_OID in agent/mib_oids.h")


ENTERPRISE = enterprise_arc()
MN = ENTERPRISE + ".1"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=10.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Snmp:
    """snmpd + mailnode-snmp (+ snmptrapd) for one node."""

    def __init__(self, node, workdir, traps=True):
        self.node = node
        self.dir = workdir
        os.makedirs(os.path.join(self.dir, "persist"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "trap-persist"), exist_ok=True)
        self.port = free_udp_port()
        self.trap_port = free_udp_port() if traps else None
        self.agentx = os.path.join(self.dir, "agentx.sock")
        self.users = {name: (secrets.token_urlsafe(12), secrets.token_urlsafe(12))
                      for name in ("noc-ro", "noc-rw", "noc-trap")}
        self.snmpd = self.agent = self.trapd = None
        self.trap_log = os.path.join(self.dir, "traps.log")
        self.agent_log = os.path.join(self.dir, "mailnode-snmp.log")

    def write_config(self):
        u = self.users
        lines = [
            "agentAddress udp:127.0.0.1:%d" % self.port,
            "master agentx",
            "agentXSocket unix:%s" % self.agentx,
            "agentXPerms 0600 0700",
            "agentXTimeout 5",
            "dontLogTCPWrappersConnects yes",
            'createUser noc-ro SHA "%s" AES "%s"' % u["noc-ro"],
            'createUser noc-rw SHA "%s" AES "%s"' % u["noc-rw"],
            "group noc-readers usm noc-ro",
            "group noc-operators usm noc-rw",
            "view noc-read included .1",
            "view noc-write included %s" % MN,
            'access noc-readers "" usm priv exact noc-read none none',
            'access noc-operators "" usm priv exact noc-read noc-write none',
        ]
        if self.trap_port:
            lines.append("trapsess -Ci -r 3 -t 2 -v 3 -u noc-trap -l authPriv -a SHA -A %s -x AES "
                         "-X %s udp:127.0.0.1:%d" % (u["noc-trap"] + (self.trap_port,)))
        with open(os.path.join(self.dir, "snmpd.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "snmptrapd.conf"), "w") as f:
            f.write('createUser noc-trap SHA "%s" AES "%s"\nauthUser log noc-trap priv\n'
                    % u["noc-trap"])

    def start_snmpd(self):
        self.write_config()
        env = dict(os.environ, SNMP_PERSISTENT_DIR=os.path.join(self.dir, "persist"))
        self.snmpd = subprocess.Popen(
            ["/usr/sbin/snmpd", "-f", "-C", "-c", os.path.join(self.dir, "snmpd.conf"),
             "-I", "-mta_sendmail", "-Lf", os.path.join(self.dir, "snmpd.log"),
             "-p", os.path.join(self.dir, "snmpd.pid")], env=env)
        assert wait_until(lambda: os.path.exists(self.agentx), 20), self.snmpd_log()

    def stop_snmpd(self):
        if self.snmpd and self.snmpd.poll() is None:
            self.snmpd.send_signal(signal.SIGTERM)
            self.snmpd.wait(timeout=30)

    def start_agent(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("LSAN_OPTIONS", "suppressions=" + LSAN_SUPPRESSIONS)
        self.agent_out = open(self.agent_log, "ab")
        self.agent = subprocess.Popen(
            [AGENT, "--state-dir", self.node.state_dir, "--agentx", self.agentx,
             "--thresholds", os.path.join(self.dir, "thresholds")],
            stdout=self.agent_out, stderr=subprocess.STDOUT, env=env)

    def stop_agent(self):
        if self.agent and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            rc = self.agent.wait(timeout=30)
            self.agent_out.close()
            return rc
        return self.agent.returncode if self.agent else 0

    def start_trapd(self):
        env = dict(os.environ, SNMP_PERSISTENT_DIR=os.path.join(self.dir, "trap-persist"))
        self.trapd = subprocess.Popen(
            ["/usr/sbin/snmptrapd", "-f", "-C", "-c", os.path.join(self.dir, "snmptrapd.conf"),
             "-On", "-Lf", self.trap_log, "udp:127.0.0.1:%d" % self.trap_port], env=env)

    def start(self):
        self.start_snmpd()
        if self.trap_port:
            self.start_trapd()
        self.start_agent()
        # Served once the subagent registered and read the node.
        assert wait_until(lambda: self.get(MN + ".1.1.0", check=False).returncode == 0 and
                          "No Such" not in self.get(MN + ".1.1.0", check=False).stdout, 30), \
            self.agent_log_text()
        return self

    def stop(self):
        rc = self.stop_agent()
        self.stop_snmpd()
        if self.trapd and self.trapd.poll() is None:
            self.trapd.send_signal(signal.SIGTERM)
            self.trapd.wait(timeout=30)
        return rc

    def snmpd_log(self):
        p = os.path.join(self.dir, "snmpd.log")
        return open(p).read() if os.path.exists(p) else ""

    def agent_log_text(self):
        return open(self.agent_log, errors="replace").read() if os.path.exists(self.agent_log) else ""

    def traps_text(self):
        return open(self.trap_log, errors="replace").read() if os.path.exists(self.trap_log) else ""

    # The net-snmp tools.
    def auth(self, user="noc-rw", auth=None, priv=None):
        a, p = self.users[user]
        return ["-v3", "-l", "authPriv", "-u", user, "-a", "SHA", "-A", auth or a,
                "-x", "AES", "-X", priv or p]

    def tool(self, name, args, user="noc-rw", check=True, timeout=60, **kw):
        cmd = [name] + self.auth(user, **kw) + ["-r", "1", "-t", "5", "-On", "-Oe", "-Ot",
                                                "-M", "+" + MIBS, "127.0.0.1:%d" % self.port] + args
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s %s\nagent log:\n%s" % (
                " ".join(cmd[:1] + args), r.returncode, r.stdout, r.stderr, self.agent_log_text()[-3000:]))
        return r

    def get(self, *oids, **kw):
        return self.tool("snmpget", list(oids), **kw)

    def set(self, *args, **kw):
        return self.tool("snmpset", list(args), **kw)

    def walk(self, oid, bulk=True, **kw):
        """{oid: value} of a subtree (values as printed, strings unquoted)."""
        r = self.tool("snmpbulkwalk" if bulk else "snmpwalk", (["-Cr50"] if bulk else []) + [oid], **kw)
        return parse(r.stdout)


def parse(out):
    vals = {}
    for line in out.splitlines():
        if " = " not in line:
            continue
        k, v = line.split(" = ", 1)
        if ": " in v:
            v = v.split(": ", 1)[1]
        if v.startswith('"') and v.endswith('"'):
            v = v[1:-1]
        vals[k.strip()] = v
    return vals
