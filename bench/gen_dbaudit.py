#!/usr/bin/env python3
"""Writes large database audit logs for bench/scope.sh: a PostgreSQL stderr log with pgaudit
records (twice: with every statement in a session of its own, the state's worst case, and in
sessions as a server keeps them) and MySQL Enterprise Audit JSON logs (`general` records only,
and as the `log_all` filter writes them: per table and `general`), with the statement
mix of a billing/CRM database (care lookups with binds, CDR and location queries with
literals and IN lists, updates, reports, 0.5 % one-off statements) over 30 days.
Deterministic."""
import json, random, re, sys

def main(out_dir, n_pg, n_my):
    r = random.Random(7)
    def msisdn():
        return "336%08d" % r.randrange(100_000_000)
    def stmt(i):
        k = r.randrange(200)
        m = msisdn()
        if k == 0:
            return "SELECT a%d, b FROM report_%d WHERE x = %d AND msisdn = '%s'" % (i, i % 997, i, m), ""
        if k <= 80:
            return "SELECT s.* FROM subscriber s WHERE s.msisdn = $1", m
        if k <= 120:
            return "SELECT * FROM cdr WHERE calling_number = '%s' OR called_number = '%s' ORDER BY start_time DESC LIMIT 50" % (m, m), ""
        if k <= 140:
            lst = ", ".join("'%s'" % msisdn() for _ in range(2 + r.randrange(6)))
            return "select imsi, cell_id from cell_location where msisdn in (%s) and ts > '2026-03-01'" % lst, ""
        if k <= 160:
            return "UPDATE subscriber SET last_seen = now() WHERE imsi = '20815%010d'" % r.randrange(10**10), ""
        if k <= 180:
            return "SELECT c.*, d.imei FROM cdr c JOIN device d ON d.imsi = c.imsi\n WHERE c.calling_number = $1 -- care lookup\n AND c.start_time > $2", m + ",2026-03-01"
        return "SELECT count(*) FROM sms_log WHERE sent_at > '2026-03-%02d'" % (1 + r.randrange(28)), ""
    users = ["care%02d" % u for u in range(40)] + ["rating", "billing", "report"]
    with open(f"{out_dir}/postgresql-bench.log", "w") as f:
        for i in range(n_pg):
            sql, param = stmt(i)
            day, sec = 1 + i * 30 // n_pg, (i * 7919) % 86400
            u = users[i % len(users)]
            body = '"' + sql.replace('"', '""') + '"'
            f.write("2026-03-%02d %02d:%02d:%02d.%03d UTC [%d]: [1-1] user=%s,db=cdrdb,app=crm,client=10.1.%d.%d LOG:  AUDIT: SESSION,%d,1,READ,SELECT,,,%s,%s\n" % (
                day, sec // 3600, sec // 60 % 60, sec % 60, i % 1000, 1000 + i % 5000, u, i % 7, 10 + i % 40, i, body, param or "<not logged>"))
    # The same statements in sessions as a server keeps them, in time order: a backend serves
    # one account from its client host (one per account) for its life (here 1 to 400
    # statements), 300 at a time.
    with open(f"{out_dir}/postgresql-sessions-bench.log", "w") as f:
        s = random.Random(11)
        next_pid = [10000]
        def session():
            next_pid[0] += 1
            u = s.randrange(len(users))
            return [next_pid[0], users[u], "10.1.%d.%d" % (u % 7, 10 + u), 1 + s.randrange(400)]
        live = [session() for _ in range(300)]
        r.seed(7)
        for i in range(n_pg):
            sql, param = stmt(i)
            t = i * 30 * 86400 // n_pg  # in time order, as a server writes
            day, sec = 1 + t // 86400, t % 86400
            k = s.randrange(len(live))
            pid, u, host, left = live[k]
            live[k][3] -= 1
            if live[k][3] == 0:
                live[k] = session()
            body = '"' + sql.replace('"', '""') + '"'
            f.write("2026-03-%02d %02d:%02d:%02d.%03d UTC [%d]: [1-1] user=%s,db=cdrdb,app=crm,client=%s LOG:  AUDIT: SESSION,%d,1,READ,SELECT,,,%s,%s\n" % (
                day, sec // 3600, sec // 60 % 60, sec % 60, i % 1000, pid, u, host, i, body, param or "<not logged>"))
    with open(f"{out_dir}/mysql-audit-bench.json", "w") as f:
        for i in range(n_my):
            sql, param = stmt(i)
            if param:  # MySQL logs statements with their values in place
                for j, p in enumerate(param.split(",")):
                    sql = sql.replace("$%d" % (j + 1), "'%s'" % p)
            day, sec = 1 + i * 30 // n_my, (i * 7919) % 86400
            u = users[i % len(users)]
            f.write(json.dumps({"timestamp": "2026-03-%02d %02d:%02d:%02d" % (day, sec // 3600, sec // 60 % 60, sec % 60),
                "id": i, "class": "general", "event": "status", "connection_id": i % 500,
                "account": {"user": u, "host": "10.1.0.%d" % (i % 40)},
                "login": {"user": u, "os": "", "ip": "10.1.0.%d" % (i % 40), "proxy": ""},
                "general_data": {"command": "Query", "sql_command": "select", "query": sql, "status": 0}}) + "\n")

    # MySQL Enterprise Audit with its usual `log_all` filter: each statement as a
    # `table_access` record per table it reads or writes, as it runs, and a `general` record at
    # its end, with other connections' records between them (300 connections at a time, each
    # running one statement after another, 1 to 400 statements each); half as many statements.
    with open(f"{out_dir}/mysql-audit-logall-bench.json", "w") as f:
        s = random.Random(13)
        r.seed(7)
        next_conn = [0]
        def connection():
            next_conn[0] += 1
            u = s.randrange(len(users))
            return {"id": next_conn[0], "user": users[u], "ip": "10.1.0.%d" % u,
                    "left": 1 + s.randrange(400), "pending": []}
        live = [connection() for _ in range(300)]
        started, n, rid = 0, n_my // 2, 0
        while started < n or any(c["pending"] for c in live):
            k = s.randrange(len(live))
            c = live[k]
            if not c["pending"]:
                if c["left"] == 0 and started < n:
                    live[k] = c = connection()
                if started >= n or c["left"] == 0:
                    continue
                sql, param = stmt(started)
                if param:
                    for j, p in enumerate(param.split(",")):
                        sql = sql.replace("$%d" % (j + 1), "'%s'" % p)
                tables = re.findall(r"\b(?:from|join|update)\s+(\w+)", sql, re.I)
                c["pending"] = [("table_access", t) for t in dict.fromkeys(tables)] + [("general", None)]
                c["sql"] = sql
                c["left"] -= 1
                started += 1
            kind, table = c["pending"].pop(0)
            t = started * 30 * 86400 // n
            day, sec = 1 + t // 86400, t % 86400
            rec = {"timestamp": "2026-03-%02d %02d:%02d:%02d" % (day, sec // 3600, sec // 60 % 60, sec % 60),
                   "id": rid, "class": kind, "connection_id": c["id"],
                   "account": {"user": c["user"], "host": c["ip"]},
                   "login": {"user": c["user"], "os": "", "ip": c["ip"], "proxy": ""}}
            rid += 1
            if kind == "general":
                rec["event"] = "status"
                rec["general_data"] = {"command": "Query", "sql_command": "select", "query": c["sql"], "status": 0}
            else:
                rec["event"] = "read"
                rec["table_access_data"] = {"db": "cdrdb", "table": table, "query": c["sql"], "sql_command": "select"}
            f.write(json.dumps(rec) + "\n")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
