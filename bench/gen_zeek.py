#!/usr/bin/env python3
"""Writes a Zeek conn.log as TSV and as JSON Lines (the same rows) for bench/flows.sh:
workstations browsing, servers talking to vendors, a nightly backup; deterministic."""
import json, random, sys

FIELDS = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents".split()
TYPES = "time string addr port addr port enum string interval count count string bool bool count string count count count count set[string]".split()

def main(out_dir, n):
    r = random.Random(3)
    t = 1772323200.0
    with open(f"{out_dir}/conn.log", "w") as tsv, open(f"{out_dir}/conn.json", "w") as js:
        tsv.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-03-01-00-00-00\n")
        tsv.write("#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
        for i in range(n):
            t += 30 * 86400 / n
            src = "10.1.%d.%d" % (i % 8, 10 + i % 200)
            dst = "93.184.%d.%d" % (i % 4, 1 + r.randrange(50))
            dur, ob, rb = r.random() * 10, r.randrange(100000), r.randrange(1000000)
            row = ["%.6f" % t, "C%x" % i, src, str(40000 + i % 20000), dst, "443", "tcp", "ssl", "%.3f" % dur,
                   str(ob), str(rb), "SF", "T", "F", "0", "ShADadFf", "20", "3000", "30", "40000", "(empty)"]
            tsv.write("\t".join(row) + "\n")
            js.write(json.dumps({"ts": round(t, 6), "uid": "C%x" % i, "id.orig_h": src, "id.orig_p": 40000 + i % 20000,
                "id.resp_h": dst, "id.resp_p": 443, "proto": "tcp", "service": "ssl", "duration": round(dur, 3),
                "orig_bytes": ob, "resp_bytes": rb, "conn_state": "SF", "local_orig": True, "local_resp": False,
                "missed_bytes": 0, "history": "ShADadFf", "orig_pkts": 20, "orig_ip_bytes": 3000, "resp_pkts": 30,
                "resp_ip_bytes": 40000}) + "\n")
        tsv.write("#close\t2026-03-31-00-00-00\n")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
