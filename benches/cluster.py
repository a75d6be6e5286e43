#!/usr/bin/env python3
"""One process against a Ballista cluster on the same machine.

Starts flowsql-scheduler and two flowsql-executor processes of one task
slot each on 127.0.0.1, then runs every benchmark query alternately in one
flowsql process (--no-cache) and with --cluster, RUNS times each, and
prints the median statement times (the summary line's), their ratio, and
whether the answers are equal.

    benches/cluster.py [TREE] [RUNS] [SETTING=VALUE...]

(release binaries in $CARGO_TARGET_DIR or target/). Each SETTING=VALUE
is SET before the cluster's statements, such as
datafusion.execution.target_partitions=2.
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TREE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/flowsql-tree-10m"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
SETTINGS = "".join(
    f"SET {k} = '{v}'; " for k, v in (a.split("=", 1) for a in sys.argv[3:])
)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
BIN = os.path.join(TARGET, "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flowsql(sql, cluster=None):
    args = [os.path.join(BIN, "flowsql"), TREE, "--no-cache", "--format", "csv", "-c", sql]
    if cluster:
        args += ["--cluster", cluster]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    seconds = float(re.findall(r"in ([0-9.]+)s", out.stderr)[-1])
    return out.stdout, seconds


def start_cluster(work):
    port = free_port()
    procs = [subprocess.Popen(
        [os.path.join(BIN, "flowsql-scheduler"), "--bind-host", "127.0.0.1", "--bind-port", str(port),
         "--min-ready-executors", "2"], stderr=subprocess.DEVNULL)]
    time.sleep(1)
    for i in range(2):
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "flowsql-executor"), "--scheduler-host", "127.0.0.1",
             "--scheduler-port", str(port), "--bind-host", "127.0.0.1",
             "--bind-port", str(free_port()), "--bind-grpc-port", str(free_port()),
             "--work-dir", os.path.join(work, f"executor-{i}"), "--concurrent-tasks", "1"],
            stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").status == 200:
                break
        except Exception:
            pass
        if time.time() > deadline:
            sys.exit("the cluster did not become ready")
        time.sleep(0.2)
    return f"df://127.0.0.1:{port}", procs


def main():
    eni = flowsql("SELECT interface_id FROM vpc_flow_logs LIMIT 1")[0].splitlines()[1]
    queries = [
        ("count", "SELECT count(*) FROM vpc_flow_logs"),
        ("top talkers", "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC, 1 LIMIT 10"),
        ("by pair", "SELECT srcaddr, dstaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1, 2 ORDER BY b DESC, 1, 2 LIMIT 10"),
        ("rejected SSH", "SELECT count(*) FROM vpc_flow_logs WHERE dstport = 22 AND action = 'REJECT'"),
        ("by ENI", "SELECT interface_id, count(*) AS n, sum(bytes) FROM vpc_flow_logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10"),
        ("one ENI", f"SELECT count(*), sum(bytes) FROM vpc_flow_logs WHERE interface_id = '{eni}'"),
    ]
    with tempfile.TemporaryDirectory() as work:
        url, procs = start_cluster(work)
        try:
            print(f"tree {TREE}, {RUNS} alternating runs, statement times (medians), cluster settings: {SETTINGS or 'none'}")
            print("| query | one process | cluster (2 executors x 1 task) | cluster / one | same answer |")
            print("|---|---|---|---|---|")
            for name, sql in queries:
                one, many, same = [], [], True
                for _ in range(RUNS):
                    a, t1 = flowsql(sql)
                    b, t2 = flowsql(SETTINGS + sql, url)
                    one.append(t1)
                    many.append(t2)
                    same = same and a == b
                m1, m2 = statistics.median(one), statistics.median(many)
                print(f"| {name} | {m1:.3f} s | {m2:.3f} s | {m2 / m1:.2f}x | {'yes' if same else 'NO'} |", flush=True)
        finally:
            for p in procs:
                p.kill()


main()
