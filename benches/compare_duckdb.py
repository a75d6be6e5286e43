"""flowsql against DuckDB on the same gzip flow-log tree: six queries,
alternating runs, medians, ratios and peak RSS, and each full scan against
the gunzip floor (zlib-rs streaming on 2 threads, examples/gunzip_floor).
Run by scripts/bench-vs-duckdb with the tree, cargo's release folder and
the number of runs."""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

TREE, RELEASE, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
FLOWSQL = os.path.join(RELEASE, "flowsql")
FLOOR = os.path.join(RELEASE, "examples", "gunzip_floor")

days = sorted(
    {"/".join(p.split(os.sep)[-3:]) for p, _, files in os.walk(TREE) if any(f.endswith(".log.gz") for f in files)}
)
first = days[0]  # yyyy/MM/dd
day_sql = "-".join(first.split("/"))
ALL = f"{TREE}/AWSLogs/*/vpcflowlogs/*/*/*/*/*.log.gz"


def first_interface():
    """The interface of the tree's first record, for a selective query."""
    import gzip

    path = next(os.path.join(p, f) for p, _, files in sorted(os.walk(TREE)) for f in sorted(files) if f.endswith(".log.gz"))
    with gzip.open(path, "rt") as text:
        header, record = text.readline().split(), text.readline().split()
    return record[header.index("interface-id")]


ENI = first_interface()
ONE_DAY = f"{TREE}/AWSLogs/*/vpcflowlogs/*/{first}/*.log.gz"


def duck(source):
    return f"read_csv('{source}', delim=' ', header=true, nullstr='-', union_by_name=false)"


QUERIES = [
    ("count", "SELECT count(*) FROM vpc_flow_logs", f"SELECT count(*) FROM {duck(ALL)}"),
    (
        "top talkers",
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC LIMIT 10",
        f"SELECT srcaddr, sum(bytes) AS b FROM {duck(ALL)} GROUP BY 1 ORDER BY b DESC LIMIT 10",
    ),
    (
        "rejected SSH",
        "SELECT count(*) FROM vpc_flow_logs WHERE dstport = 22 AND action = 'REJECT'",
        f"SELECT count(*) FROM {duck(ALL)} WHERE dstport = 22 AND action = 'REJECT'",
    ),
    (
        "by ENI",
        "SELECT interface_id, count(*) AS n, sum(bytes) FROM vpc_flow_logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10",
        f'SELECT "interface-id", count(*) AS n, sum(bytes) FROM {duck(ALL)} GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10',
    ),
    (
        "one ENI",
        f"SELECT count(*), sum(bytes) FROM vpc_flow_logs WHERE interface_id = '{ENI}'",
        f"SELECT count(*), sum(bytes) FROM {duck(ALL)} WHERE \"interface-id\" = '{ENI}'",
    ),
    (
        "one day",
        f"SELECT count(*) FROM vpc_flow_logs WHERE date = DATE '{day_sql}'",
        f"SELECT count(*) FROM {duck(ONE_DAY)}",
    ),
]

DUCK_RUNNER = """
import duckdb, json, resource, sys, time
con = duckdb.connect()
con.execute('SET enable_progress_bar = false')
started = time.perf_counter()
rows = con.execute(sys.argv[1]).fetchall()
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rows": [list(map(str, r)) for r in rows]}))
"""


def run_flowsql(sql):
    started = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", FLOWSQL, TREE, "-q", "--format", "csv", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    rss_kb = int(out.stderr.strip().splitlines()[-1])
    rows = [line.split(",") for line in out.stdout.strip().splitlines()[1:]]
    return wall, rss_kb, rows


def run_duckdb(sql):
    out = subprocess.run([sys.executable, "-c", DUCK_RUNNER, sql], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["wall"], result["rss_kb"], result["rows"]


floor_lines = subprocess.run([FLOOR, TREE, "2", str(RUNS)], capture_output=True, text=True, check=True).stdout
print(floor_lines.strip())
floor = float(floor_lines.split("zlib-rs streaming: ")[1].split(" s")[0])
print(f"tree: {TREE} ({len(days)} days); {RUNS} alternating runs per engine; medians")
print(
    f"| query | flowsql | DuckDB {__import__('duckdb').__version__} | DuckDB / flowsql | flowsql / floor"
    " | flowsql peak RSS | DuckDB peak RSS |"
)
print("|---|---|---|---|---|---|---|")
for name, ours, theirs in QUERIES:
    walls = {"f": [], "d": []}
    rss = {"f": 0, "d": 0}
    answers = {}
    for _ in range(RUNS):
        for engine, run, sql in (("f", run_flowsql, ours), ("d", run_duckdb, theirs)):
            wall, kb, rows = run(sql)
            walls[engine].append(wall)
            rss[engine] = max(rss[engine], kb)
            answers[engine] = rows
    # Same answer, or the comparison means nothing (counts compare exactly).
    if name in ("count", "rejected SSH", "one ENI", "one day") and answers["f"] != answers["d"]:
        sys.exit(f"{name}: flowsql {answers['f']} but DuckDB {answers['d']}")
    f, d = statistics.median(walls["f"]), statistics.median(walls["d"])
    of_floor = "-" if name == "one day" else f"{f / floor:.2f}x"
    print(f"| {name} | {f:.2f} s | {d:.2f} s | {d / f:.1f}x | {of_floor} | {rss['f'] // 1024} MB | {rss['d'] // 1024} MB |")
