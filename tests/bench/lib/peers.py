"""The peers of the benchmarks as private instances: Postfix (virtual
mailboxes in Maildir) and Dovecot (IMAP and POP3 over Maildir), each with its
own configuration, queue and mail directories and loopback ports, started
and stopped by the benchmark; nothing of theirs runs system-wide."""
import os
import pwd
import grp
import signal
import subprocess
import time

import benchlib

# Mail of both peers belongs to this unprivileged user (virtual delivery and
# Dovecot's userdb); Postfix's own processes run as `postfix`.
MAIL_USER = "nobody"


def _ids(user):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Postfix:
    """Postfix on 127.0.0.1:port, delivering bench.test to Maildirs under
    DIR/mail through virtual(8). Durability is Postfix's default: cleanup(8)
    fsyncs the queue file before smtpd answers 250, virtual(8) fsyncs each
    Maildir file before linking it into new/."""

    def __init__(self, top, port, domain, users):
        self.top = top
        self.port = port
        self.domain = domain
        self.users = list(users)
        self.etc = os.path.join(top, "etc")
        self.queue = os.path.join(top, "queue")
        self.mail = os.path.join(top, "mail")
        self.log = os.path.join(top, "postfix.log")
        self.running = False

    def _postfix(self, *args, check=True):
        r = subprocess.run(["/usr/sbin/postfix", "-c", self.etc] + list(args),
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("postfix %s failed: %s%s%s" % (" ".join(args), r.stdout, r.stderr,
                                                                self.log_tail()))
        return r

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def configure(self):
        for d in (self.etc, self.queue, os.path.join(self.top, "data")):
            os.makedirs(d, exist_ok=True)
        uid, gid = _ids(MAIL_USER)
        os.makedirs(self.mail, exist_ok=True)
        os.chown(self.mail, uid, gid)
        # The data directory belongs to mail_owner (post-install would say so).
        pf_uid, pf_gid = _ids("postfix")
        os.chown(os.path.join(self.top, "data"), pf_uid, pf_gid)
        _write(os.path.join(self.etc, "vmailbox"),
               "".join("%s %s/%s/\n" % (u, self.domain, u.split("@")[0]) for u in self.users))
        _write(os.path.join(self.etc, "main.cf"), """\
# Private Postfix instance of the mailnode benchmark.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {top}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.{domain}
mydomain = {domain}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
maillog_file = {log}
maillog_file_prefixes = {top}
default_process_limit = 300
message_size_limit = 26214400
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
""".format(queue=self.queue, top=self.top, domain=self.domain, log=self.log, mail=self.mail,
           etc=self.etc, uid=uid, gid=gid))
        # No chroot: the daemons read this private configuration directly.
        _write(os.path.join(self.etc, "master.cf"), """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""".format(port=self.port))
        return self

    def start(self):
        # `postfix check` creates the queue directories with their owners.
        self._postfix("check")
        self._postfix("start")
        self.running = True
        benchlib.wait_port(self.port)
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.running:
            return
        pid = self.master_pid()
        self._postfix("stop", check=False)
        # `postfix stop` returns before master has gone; wait for it.
        deadline = time.time() + 30
        while pid and time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if pid:
                for p in benchlib.process_tree([pid]):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.running = False

    def delivered(self):
        """Messages in the Maildirs' new/ directories."""
        n = 0
        for user in os.listdir(self.mail) if os.path.isdir(self.mail) else ():
            for box in os.listdir(os.path.join(self.mail, user)):
                d = os.path.join(self.mail, user, box, "new")
                if os.path.isdir(d):
                    n += len(os.listdir(d))
        return n

    def queued(self):
        """Queue files not yet delivered (incoming, active, deferred)."""
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n


class Dovecot:
    """Dovecot with IMAP and POP3 on loopback ports, passwd-file users with
    the same SHA512-CRYPT hashes as the mailnode side, Maildir mail under
    DIR/mail/<user>. Runs in the foreground of its own process (dovecot -F)."""

    def __init__(self, top, imap_port, pop3_port, users, hibernate=False, mail=None):
        self.top = top
        self.imap_port = imap_port
        self.pop3_port = pop3_port
        self.users = users          # {address: "{SHA512-CRYPT}$6$..."}
        self.hibernate = hibernate
        self.conf = os.path.join(top, "dovecot.conf")
        self.mail = mail or os.path.join(top, "mail")
        self.log = os.path.join(top, "dovecot.log")
        self.proc = None

    def maildir(self, address):
        local, domain = address.split("@")
        return os.path.join(self.mail, domain, local)

    def configure(self, max_conns=12000):
        uid, gid = _ids(MAIL_USER)
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.top, d), exist_ok=True)
        os.makedirs(self.mail, exist_ok=True)
        os.chown(self.mail, uid, gid)
        os.chmod(self.top, 0o755)
        _write(os.path.join(self.top, "users"),
               "".join("%s:%s\n" % (u, h) for u, h in self.users.items()), 0o640)
        try:
            os.chown(os.path.join(self.top, "users"), 0, grp.getgrnam("dovecot").gr_gid)
        except KeyError:
            pass
        hib = ""
        if self.hibernate:
            hib = """\
imap_hibernate_timeout = 5s
service imap-hibernate {{
  process_limit = 10
  client_limit = {n}
  unix_listener imap-hibernate {{
    mode = 0666
  }}
}}
""".format(n=max_conns)
        _write(self.conf, """\
# Private Dovecot instance of the mailnode benchmark.
base_dir = {top}/run
state_dir = {top}/state
instance_name = mn-bench-{port}
log_path = {log}
info_log_path = {log}
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/%d/%n
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_max_userip_connections = {n}
mail_fsync = optimized
default_client_limit = {n2}
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%u {top}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
  # Dovecot's high-performance login mode, as a busy provider runs it:
  # login processes serve many connections and are forked in advance.
  service_count = 0
  process_min_avail = {cores}
  process_limit = 64
  client_limit = {n}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = {cores}
  client_limit = {n}
}}
service imap {{
  process_limit = {n}
  process_min_avail = 4
}}
service pop3 {{
  process_limit = {n}
  process_min_avail = 4
}}
service anvil {{
  client_limit = {n2}
}}
service auth {{
  client_limit = {n2}
}}
{hib}""".format(top=self.top, port=self.imap_port, log=self.log, mail=self.mail, uid=uid, gid=gid,
                imap=self.imap_port, pop3=self.pop3_port, n=max_conns, n2=max_conns + 100, hib=hib,
                cores=os.cpu_count() or 1))
        return self

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log + ".err", "ab"))
        # process_min_avail and the login processes for 10,000 clients take
        # their time on 2 cores.
        benchlib.wait_port(self.imap_port, timeout=120)
        benchlib.wait_port(self.pop3_port, timeout=120)
        return self

    def pids(self):
        return benchlib.process_tree([self.proc.pid]) if self.proc else []

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        tree = self.pids()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for p in self.pids():
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
        # The master goes first; thousands of imap processes take a while
        # after it, and the next instance must not start among them.
        deadline = time.time() + 120
        while time.time() < deadline and any(os.path.exists("/proc/%d" % p) for p in tree):
            time.sleep(0.2)
