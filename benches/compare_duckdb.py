"""flowsql against DuckDB on the same flow-log tree: seven queries,
alternating runs, medians, ratios and peak RSS, and each full scan against
the gunzip floor (zlib-rs streaming on 2 threads, examples/gunzip_floor),
both the floor measured at the start and one measured once beside each of
the query's rounds (a shared machine's speed drifts over a run).
Run by scripts/bench-vs-duckdb with the tree, cargo's release folder and
the number of runs:

    compare_duckdb.py TREE RELEASE RUNS [--parquet] [--text-tree TEXT_TREE]

With --parquet (or when TREE holds .log.parquet objects and no .log.gz),
the tree is AWS's Parquet delivery (generate_tree TREE --parquet): DuckDB
reads it with read_parquet (columns named with `_`, as AWS names them),
and the gunzip floor is skipped ('-'). With --text-tree, a gzip-text tree
of the same records, it also times flowsql's count(*) over both trees
(the goal: at least 10x faster over Parquet).

flowsql runs with --no-cache against DuckDB. With --cache it runs instead
the local cache's benchmark: each query with --no-cache, then cold with
the cache filling (a new, empty cache folder), then warm, in alternating
runs, each fill's time against the run without the cache just before it
(the median and range of those ratios, in statement time and in the
process's CPU time); the cache's size on disk against
the tree's; and, with --s3, the same tree
in moto's S3 server on 127.0.0.1 behind a proxy that adds 30 ms to every
request (benches/big_bucket.py's), warm queries over S3 against warm local
ones with the GETs moto saw. --cache needs no DuckDB; --s3 needs moto and
boto3 (the test virtual environment's Python)."""

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


def machine():
    """The processor and the vector level flowsql's decoder runs at, for
    the record: the same code's ratios differ between processors (an AVX2
    level capped with FLOWSQL_MAX_SIMD on an AVX-512 processor is not an
    AVX2-only processor)."""
    name, flags, family, model = "unknown processor", set(), "?", "?"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    name = value
                elif key == "cpu family":
                    family = value
                elif key == "model":
                    model = value
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    # The features src/cpu.rs asks of each level (`abm` is LZCNT).
    avx2 = {"avx2", "bmi1", "bmi2", "popcnt", "abm"} <= flags
    avx512 = avx2 and {"avx512f", "avx512bw", "avx512_vbmi2"} <= flags
    has = "AVX-512" if avx512 else "AVX2" if avx2 else "SSE2"
    # The caps flowsql takes (src/cpu.rs); any other value caps nothing.
    cap = os.environ.get("FLOWSQL_MAX_SIMD", "")
    levels = ["SSE2", "AVX2", "AVX-512"]
    capped = {"sse2": "SSE2", "avx2": "AVX2"}.get(cap.lower(), has)
    runs = min(has, capped, key=levels.index)
    note = f" (FLOWSQL_MAX_SIMD={cap})" if cap else ""
    return f"processor: {name} (family {family}, model {model}), {has}; flowsql's decoder at {runs}{note}; {os.cpu_count()} cores"


def zlib_rs_floor(runs):
    """The gunzip floor's lines, and its zlib-rs streaming seconds."""
    lines = subprocess.run([FLOOR, TREE, "2", str(runs)], capture_output=True, text=True, check=True).stdout
    return lines, float(lines.split("zlib-rs streaming: ")[1].split(" s")[0])


def has_objects(tree, suffix):
    return any(f.endswith(suffix) for _, _, files in os.walk(tree) for f in files)


options = sys.argv[4:]
TEXT_TREE = None
if "--text-tree" in options:
    at = options.index("--text-tree")
    if at + 1 >= len(options):
        sys.exit("--text-tree needs a path")
    TEXT_TREE = options.pop(at + 1)
    options.pop(at)
PARQUET = "--parquet" in options
if PARQUET:
    options.remove("--parquet")
CACHE = "--cache" in options
if CACHE:
    options.remove("--cache")
S3 = "--s3" in options
if S3:
    options.remove("--s3")
if options:
    sys.exit(f"unknown arguments: {' '.join(options)}")
if not PARQUET and has_objects(TREE, ".log.parquet") and not has_objects(TREE, ".log.gz"):
    PARQUET = True
SUFFIX = ".log.parquet" if PARQUET else ".log.gz"

days = sorted(
    {"/".join(p.split(os.sep)[-3:]) for p, _, files in os.walk(TREE) if any(f.endswith(SUFFIX) for f in files)}
)
first = days[0]  # yyyy/MM/dd
day_sql = "-".join(first.split("/"))
ALL = f"{TREE}/AWSLogs/*/vpcflowlogs/*/*/*/*/*{SUFFIX}"


def first_interface():
    """The interface of the tree's first record, for a selective query."""
    path = next(os.path.join(p, f) for p, _, files in sorted(os.walk(TREE)) for f in sorted(files) if f.endswith(SUFFIX))
    if PARQUET:
        import duckdb

        return duckdb.connect().execute(f"SELECT interface_id FROM read_parquet('{path}') LIMIT 1").fetchall()[0][0]
    import gzip

    with gzip.open(path, "rt") as text:
        header, record = text.readline().split(), text.readline().split()
    return record[header.index("interface-id")]


ENI = first_interface()
ONE_DAY = f"{TREE}/AWSLogs/*/vpcflowlogs/*/{first}/*{SUFFIX}"
# DuckDB's name for the interface column: the text header's, or AWS's Parquet column.
IFACE = "interface_id" if PARQUET else '"interface-id"'


def duck(source):
    if PARQUET:
        return f"read_parquet('{source}')"
    return f"read_csv('{source}', delim=' ', header=true, nullstr='-', union_by_name=false)"


QUERIES = [
    ("count", "SELECT count(*) FROM vpc_flow_logs", f"SELECT count(*) FROM {duck(ALL)}"),
    (
        "top talkers",
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC LIMIT 10",
        f"SELECT srcaddr, sum(bytes) AS b FROM {duck(ALL)} GROUP BY 1 ORDER BY b DESC LIMIT 10",
    ),
    (
        "by pair",
        "SELECT srcaddr, dstaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1, 2 ORDER BY b DESC, 1, 2 LIMIT 10",
        f"SELECT srcaddr, dstaddr, sum(bytes) AS b FROM {duck(ALL)} GROUP BY 1, 2 ORDER BY b DESC, 1, 2 LIMIT 10",
    ),
    (
        "rejected SSH",
        "SELECT count(*) FROM vpc_flow_logs WHERE dstport = 22 AND action = 'REJECT'",
        f"SELECT count(*) FROM {duck(ALL)} WHERE dstport = 22 AND action = 'REJECT'",
    ),
    (
        "by ENI",
        "SELECT interface_id, count(*) AS n, sum(bytes) FROM vpc_flow_logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10",
        f"SELECT {IFACE}, count(*) AS n, sum(bytes) FROM {duck(ALL)} GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10",
    ),
    (
        "one ENI",
        f"SELECT count(*), sum(bytes) FROM vpc_flow_logs WHERE interface_id = '{ENI}'",
        f"SELECT count(*), sum(bytes) FROM {duck(ALL)} WHERE {IFACE} = '{ENI}'",
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


STATEMENT_TIMES = {}
LAST = {}


def run_flowsql(sql, tree=TREE, flags=("--no-cache",), env=None):
    """The process's wall time (start-up and opening the tree included),
    peak RSS and rows; the statement's own time, as flowsql's summary line
    gives it (what DuckDB's figure measures), goes to STATEMENT_TIMES (and
    is returned in LAST), and the process's CPU time (user and system) to
    LAST."""
    started = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", FLOWSQL, tree, *flags, "--format", "csv", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    wall = time.perf_counter() - started
    lines = out.stderr.strip().splitlines()
    rss_kb, user, system = lines[-1].split()
    rss_kb = int(rss_kb)
    LAST["cpu"] = float(user) + float(system)
    summary = next(line for line in lines if " row(s) in " in line)
    LAST["statement"] = float(summary.split(" row(s) in ")[1].split("s;")[0])
    LAST["summary"] = summary
    STATEMENT_TIMES.setdefault(sql, []).append(LAST["statement"])
    rows = [line.split(",") for line in out.stdout.strip().splitlines()[1:]]
    return wall, rss_kb, rows


def run_duckdb(sql):
    out = subprocess.run([sys.executable, "-c", DUCK_RUNNER, sql], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["wall"], result["rss_kb"], result["rows"]


def run_cache_benchmark():
    """The local cache: cold without it, cold filling it, warm; its size;
    and with --s3, warm over S3 (30 ms per request) against warm local."""
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="flowsql-cache-bench-")
    env = dict(os.environ, XDG_CACHE_HOME=home)
    scans = [q for q in QUERIES if q[0] != "one day"]
    # Each cold run fills a new folder (an empty cache, as on first use);
    # they are removed at the end: removing thousands of files just before
    # a fill makes ext4 slow to create the next ones.
    fresh = []
    print(f"tree: {TREE} ({len(days)} days); {RUNS} alternating runs; medians of statement times (process wall in brackets)")
    print("| query | --no-cache | cold, filling the cache | warm | cold / warm | filling / --no-cache, per run (range) | the same in CPU time | peak RSS (warm, filling) |")
    print("|---|---|---|---|---|---|---|---|")
    warm_local = {}
    for name, ours, _ in scans:
        times = {"none": [], "fill": [], "warm": []}
        cpus = {"none": [], "fill": [], "warm": []}
        walls = {"none": [], "fill": [], "warm": []}
        rss = {"fill": 0, "warm": 0}
        answers = {}
        for _ in range(RUNS):
            for mode in ("none", "fill", "warm"):
                if mode == "fill":
                    fresh.append(tempfile.mkdtemp(prefix="flowsql-cache-bench-"))
                    env = dict(os.environ, XDG_CACHE_HOME=fresh[-1])
                flags = ("--no-cache",) if mode == "none" else ()
                wall, kb, rows = run_flowsql(ours, flags=flags, env=env)
                times[mode].append(LAST["statement"])
                cpus[mode].append(LAST["cpu"])
                walls[mode].append(wall)
                if mode in rss:
                    rss[mode] = max(rss[mode], kb)
                answers[mode] = rows
                if mode == "warm" and "from the local cache" not in LAST["summary"]:
                    sys.exit(f"{name}: the warm run did not read from the cache: {LAST['summary']}")
        if not answers["none"] == answers["fill"] == answers["warm"]:
            sys.exit(f"{name}: answers differ: {answers}")
        m = {k: statistics.median(v) for k, v in times.items()}
        w = {k: statistics.median(v) for k, v in walls.items()}
        warm_local[name] = m["warm"]
        # Each run's fill against the run without the cache just before
        # it: the host's speed drifts by more than a fill costs within
        # a benchmark, and a pair run seconds apart shares the drift.
        # The same in CPU time: what a fill adds as work, whether or not
        # it overlaps the query's waiting.
        paired = sorted(f / n for f, n in zip(times["fill"], times["none"]))
        paired_cpu = sorted(f / n for f, n in zip(cpus["fill"], cpus["none"]))
        print(
            f"| {name} | {m['none']:.3f} s ({w['none']:.2f}) | {m['fill']:.3f} s ({w['fill']:.2f}) | {m['warm']:.3f} s ({w['warm']:.2f})"
            f" | {m['none'] / m['warm']:.1f}x | {statistics.median(paired):.2f}x ({paired[0]:.2f}-{paired[-1]:.2f})"
            f" | {statistics.median(paired_cpu):.2f}x ({paired_cpu[0]:.2f}-{paired_cpu[-1]:.2f})"
            f" | {rss['warm'] // 1024} MB, {rss['fill'] // 1024} MB |"
        )
    for folder in fresh:
        shutil.rmtree(folder, ignore_errors=True)
    # Every query's columns in one cache, for its size.
    env = dict(os.environ, XDG_CACHE_HOME=home)
    for _, ours, _ in scans:
        run_flowsql(ours, flags=(), env=env)
    info = subprocess.run([FLOWSQL, "--cache-info"], env=env, check=True, capture_output=True, text=True).stdout
    cached = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(home) for f in fs)
    gzip = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(TREE) for f in fs if f.endswith(SUFFIX))
    print(f"cache on disk after every query above: {cached / 2**20:.0f} MiB against {gzip / 2**20:.0f} MiB of gzip ({cached / gzip:.2f}x)")
    print(info.strip())
    if S3:
        run_s3_cache_benchmark(scans, warm_local)
    shutil.rmtree(home, ignore_errors=True)


def run_s3_cache_benchmark(scans, warm_local):
    import shutil
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from big_bucket import moto_api, start_moto, start_proxy

    server, moto_port, s3 = start_moto()
    home = None
    try:
        proxy_port = start_proxy(moto_port, 0.030)
        s3.create_bucket(Bucket="bench")
        root = os.path.join(TREE, "AWSLogs")
        for path, _, files in os.walk(root):
            for f in files:
                local = os.path.join(path, f)
                key = os.path.relpath(local, TREE)
                with open(local, "rb") as body:
                    s3.put_object(Bucket="bench", Key=key, Body=body.read(), ACL="public-read")
        home = tempfile.mkdtemp(prefix="flowsql-cache-bench-s3-")
        env = {"PATH": os.environ["PATH"], "HOME": home, "XDG_CACHE_HOME": home, "AWS_EC2_METADATA_DISABLED": "true"}
        location = "s3://bench"
        flags = ("--endpoint-url", f"http://127.0.0.1:{proxy_port}", "--no-sign-request")
        print()
        print("Over S3 (moto on 127.0.0.1, 30 ms added to every request): warm statement times, medians")
        print("| query | cold over S3, filling | warm over S3 | warm local | S3 / local, warm | object GETs in the warm runs |")
        print("|---|---|---|---|---|---|")
        for name, ours, _ in scans:
            cold, warm, gets = [], [], 0
            for i in range(RUNS):
                if i == 0:
                    run_flowsql(ours, tree=location, flags=flags, env=env)
                    cold.append(LAST["statement"])
                moto_api(moto_port, "/moto-api/recorder/reset-recording")
                moto_api(moto_port, "/moto-api/recorder/start-recording")
                run_flowsql(ours, tree=location, flags=flags, env=env)
                moto_api(moto_port, "/moto-api/recorder/stop-recording")
                warm.append(LAST["statement"])
                log = moto_api(moto_port, "/moto-api/recorder/download-recording", method="GET")
                requests = [json.loads(line) for line in log.splitlines() if line.strip()]
                # Object GETs: a key after the bucket, no query (LIST and the
                # bucket's location are queries).
                gets += sum(
                    1
                    for r in requests
                    if r.get("method") == "GET"
                    and "?" not in r.get("url", "")
                    and r.get("url", "").split("/bench/", 1)[-1] not in ("", r.get("url", ""))
                )
            w = statistics.median(warm)
            print(f"| {name} | {cold[0]:.3f} s | {w:.3f} s | {warm_local[name]:.3f} s | {w / warm_local[name]:.2f}x | {gets} |")
    finally:
        server.terminate()
        # The cache these runs filled (about the gzip's size).
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


print(machine())
if CACHE:
    run_cache_benchmark()
    sys.exit(0)

if PARQUET:
    floor = None  # no gzip stream to inflate: the floor means nothing here
else:
    floor_lines, floor = zlib_rs_floor(RUNS)
    print(floor_lines.strip())
print(f"tree: {TREE} ({len(days)} days{', Parquet' if PARQUET else ''}); {RUNS} alternating runs per engine; medians")
# A shared machine's speed drifts over the minutes a run takes: each scan's
# ratio is to the floor measured in turn with its own runs (the "floor
# beside" column), not only to the one measured at the start.
print(
    f"| query | flowsql | DuckDB {__import__('duckdb').__version__} | DuckDB / flowsql | flowsql / floor"
    " | flowsql peak RSS | DuckDB peak RSS | flowsql statement | DuckDB / flowsql statement"
    " | floor beside | flowsql / floor beside |"
)
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, ours, theirs in QUERIES:
    walls = {"f": [], "d": []}
    rss = {"f": 0, "d": 0}
    answers = {}
    floors_beside = []
    for _ in range(RUNS):
        for engine, run, sql in (("f", run_flowsql, ours), ("d", run_duckdb, theirs)):
            wall, kb, rows = run(sql)
            walls[engine].append(wall)
            rss[engine] = max(rss[engine], kb)
            answers[engine] = rows
        if floor is not None and name != "one day":
            floors_beside.append(zlib_rs_floor(1)[1])
    # Same answer, or the comparison means nothing (counts compare exactly).
    if name in ("count", "by pair", "rejected SSH", "one ENI", "one day") and answers["f"] != answers["d"]:
        sys.exit(f"{name}: flowsql {answers['f']} but DuckDB {answers['d']}")
    f, d = statistics.median(walls["f"]), statistics.median(walls["d"])
    of_floor = "-" if name == "one day" or floor is None else f"{f / floor:.2f}x"
    statement = statistics.median(STATEMENT_TIMES[ours])
    if floors_beside:
        beside = statistics.median(floors_beside)
        beside_cells = f"{beside:.2f} s | {f / beside:.2f}x"
    else:
        beside_cells = "- | -"
    print(
        f"| {name} | {f:.2f} s | {d:.2f} s | {d / f:.1f}x | {of_floor} | {rss['f'] // 1024} MB | {rss['d'] // 1024} MB"
        f" | {statement:.3f} s | {d / statement:.1f}x | {beside_cells} |"
    )

if PARQUET and TEXT_TREE:
    # flowsql's count(*) over the Parquet tree against the text tree of the same records.
    count_sql = "SELECT count(*) FROM vpc_flow_logs"
    walls = {"p": [], "t": []}
    answers = {}
    for _ in range(RUNS):
        for kind, tree in (("p", TREE), ("t", TEXT_TREE)):
            wall, _, rows = run_flowsql(count_sql, tree)
            walls[kind].append(wall)
            answers[kind] = rows
    if answers["p"] != answers["t"]:
        print(f"warning: count(*) is {answers['p']} over Parquet but {answers['t']} over text ({TEXT_TREE})")
    p, t = statistics.median(walls["p"]), statistics.median(walls["t"])
    verdict = "met" if t / p >= 10 else "NOT met"
    print(
        f"count(*) in flowsql, Parquet {p:.2f} s against text {t:.2f} s ({TEXT_TREE}):"
        f" {t / p:.1f}x faster over Parquet (goal >= 10x: {verdict})"
    )
