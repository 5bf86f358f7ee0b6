#!/usr/bin/env python3
"""Writes a raw-format auditd log of N events as a busy Linux core element writes it: process
starts (SYSCALL, EXECVE, CWD, PATH, PROCTITLE), files opened and written, connections, PAM
records, each event ending with EOE, processes forking from a few long-lived daemons.

Usage: gen_auditd.py OUT_FILE N
"""
import random
import sys

out, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
t0 = 1_772_323_200
binaries = [
    ("/usr/bin/bash", ["bash", "-c", "systemctl status gtp-gw"]),
    ("/usr/bin/python3.11", ["/usr/bin/python3", "/opt/oam/collect_kpi.py", "--interval", "60"]),
    ("/usr/sbin/xtables-nft-multi", ["iptables", "-L", "-n", "-v"]),
    ("/usr/bin/curl", ["curl", "-s", "http://10.1.5.30:9100/metrics"]),
    ("/usr/bin/grep", ["grep", "-c", "ERROR", "/var/log/gtp/gw.log"]),
    ("/usr/bin/ssh", ["ssh", "-o", "BatchMode=yes", "oam@10.40.0.31", "uptime"]),
]
files = ["/etc/passwd", "/var/log/gtp/gw.log", "/etc/ssh/sshd_config", "/tmp/kpi.json",
         "/var/lib/oam/state.db", "/etc/ld.so.cache", "/proc/meminfo"]
daemons = [(700, "/usr/sbin/cron"), (812, "/usr/sbin/sshd"), (905, "/opt/oam/bin/agentd")]
serial = 1000
pid = 10_000
# Processes running now: (pid, image, parent).
live = [(p, e, 1) for p, e in daemons]


def hexs(s):
    return s.encode().hex().upper()


with open(out, "w") as f:
    for i in range(n):
        serial += 1
        t = t0 + i * 0.05
        ident = f"audit({t:.3f}:{serial})"
        kind = rnd.random()
        if kind < 0.3:
            # A new process, started by a daemon or by a recent process.
            ppid, pexe = rnd.choice(daemons + [(p, e) for p, e, _ in live[-8:]])
            pid += 1
            if pid > 4_000_000:
                pid = 10_000
        else:
            # Work of a running process.
            pid, pexe, ppid = rnd.choice(live) if live else (daemons[0][0], daemons[0][1], 1)
        head = (f"arch=c000003e syscall={{nr}} success=yes exit={{exit}} a0=ffffff9c a1=7ffd3c2e5a10 "
                f"a2={{a2}} a3=1b6 items={{items}} ppid={ppid} pid={pid} auid=1003 uid=0 gid=0 euid=0 "
                f"suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=17 comm=\"{{comm}}\" exe=\"{{exe}}\" key=(null)")
        if kind < 0.3:
            exe, argv = rnd.choice(binaries)
            f.write(f"type=SYSCALL msg={ident}: " + head.format(nr=59, exit=0, a2="0", items=2, comm=exe.rsplit('/', 1)[1][:15], exe=exe) + "\n")
            args = " ".join(f'a{k}="{a}"' for k, a in enumerate(argv))
            f.write(f"type=EXECVE msg={ident}: argc={len(argv)} {args}\n")
            f.write(f"type=CWD msg={ident}: cwd=\"/\"\n")
            f.write(f"type=PATH msg={ident}: item=0 name=\"{exe}\" inode=393 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0\n")
            f.write(f"type=PATH msg={ident}: item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=394 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0\n")
            f.write(f"type=PROCTITLE msg={ident}: proctitle={hexs(chr(0).join(argv))}\n")
            live.append((pid, exe, ppid))
            if len(live) > 200:
                live.pop(0)
        elif kind < 0.8:
            path = rnd.choice(files)
            flags = rnd.choice(["0", "80000", "241", "441", "2"])
            f.write(f"type=SYSCALL msg={ident}: " + head.format(nr=257, exit=3, a2=flags, items=2, comm=pexe.rsplit('/', 1)[1][:15], exe=pexe) + "\n")
            f.write(f"type=CWD msg={ident}: cwd=\"/\"\n")
            d, b = path.rsplit("/", 1)
            f.write(f"type=PATH msg={ident}: item=0 name=\"{d}/\" inode=131 dev=fd:00 mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0\n")
            f.write(f"type=PATH msg={ident}: item=1 name=\"{path}\" inode=4242 dev=fd:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0\n")
            f.write(f"type=PROCTITLE msg={ident}: proctitle={hexs(pexe)}\n")
        elif kind < 0.95:
            f.write(f"type=SYSCALL msg={ident}: " + head.format(nr=42, exit=0, a2="10", items=0, comm=pexe.rsplit('/', 1)[1][:15], exe=pexe) + "\n")
            f.write(f"type=SOCKADDR msg={ident}: saddr=02002382" + "0A01051E" + "0000000000000000\n")
            f.write(f"type=PROCTITLE msg={ident}: proctitle={hexs('curl')}\n")
        else:
            f.write(f"type=USER_START msg={ident}: pid={ppid} uid=0 auid=1003 ses=17 msg='op=PAM:session_open grantors=pam_unix acct=\"netops\" exe=\"{pexe}\" hostname=10.1.5.10 addr=10.1.5.10 terminal=ssh res=success'\n")
        f.write(f"type=EOE msg={ident}: \n")
