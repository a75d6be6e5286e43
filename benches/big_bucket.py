"""What a one-account, one-day query (and, with --all-accounts, a query of
every account's one day) costs as a bucket grows: moto's S3
server on 127.0.0.1 behind a proxy that adds a delay to every request (as
the S3 tests' latency proxy does), buckets of N accounts x 4 regions with
one small object per account, region and day, and the flowsql binary run
as a user would (opening included). Prints, for each N, the wall time and
the LIST and total requests moto saw (its recorder). Usage:
    benches/big_bucket.py FLOWSQL [ACCOUNTS ...] [--latency-ms MS] [--days D] [--all-accounts]
Run with the test virtual environment's Python (scripts/setup-test-deps
prints it), which has moto and boto3."""

import argparse
import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_proxy(upstream_port, delay):
    """A TCP proxy on its own thread: every chunk the client sends waits
    `delay` seconds before it goes on, so each request pays the delay."""
    port = free_port()

    async def pump(reader, writer, wait):
        try:
            while data := await reader.read(65536):
                if wait:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            pump(client_reader, server_writer, True), pump(server_reader, client_writer, False)
        )

    async def main(ready):
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    ready = threading.Event()
    threading.Thread(target=lambda: asyncio.run(main(ready)), daemon=True).start()
    ready.wait()
    return port


def start_moto(env=None):
    """moto's S3 server on a free port of 127.0.0.1, once it answers, and
    a boto3 client of it: (process, port, client). It runs in the
    temporary folder, where it may write its recording, not the clone."""
    import boto3

    port = free_port()
    moto_server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    server = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(port)], env=env,
                              cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            moto_api(port, "/moto-api/recorder/stop-recording")
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.terminate()
        sys.exit("moto's server did not start")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    return server, port, s3


def moto_api(port, path, method="POST"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request) as answer:
        return answer.read().decode()


def fill(s3, bucket, accounts, days):
    s3.create_bucket(Bucket=bucket)
    for i in range(accounts):
        acct = f"{100_000_000_000 + i:012d}"
        for region in REGIONS:
            for d in range(days):
                day = f"2026/10/{d + 1:02d}"
                stamp = f"202610{d + 1:02d}T0000Z"
                start = 1790812800 + d * 86400
                text = f"{HEADER}\n2 {acct} eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 {i} {start} {start + 60} ACCEPT OK\n"
                key = (
                    f"big/AWSLogs/{acct}/vpcflowlogs/{region}/{day}/"
                    f"{acct}_vpcflowlogs_{region}_fl-0123456789abcdef0_{stamp}_abcd1234.log.gz"
                )
                s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(text.encode()), ACL="public-read")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flowsql")
    parser.add_argument("accounts", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--all-accounts", action="store_true")
    args = parser.parse_args()

    recording = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
    server, moto_port, s3 = start_moto(dict(os.environ, MOTO_RECORDER_FILEPATH=recording))
    try:
        proxy_port = start_proxy(moto_port, args.latency_ms / 1000)
        scope = "every account" if args.all_accounts else "one account"
        print(f"{scope}, one day; {args.latency_ms:g} ms added to every request; {args.days} days per region")
        print("| accounts x regions | wall | LIST requests | all requests | answer |")
        print("|---|---|---|---|---|")
        for accounts in args.accounts:
            bucket = f"big-{accounts}"
            fill(s3, bucket, accounts, args.days)
            acct = f"{100_000_000_000 + accounts // 2:012d}"
            if args.all_accounts:
                sql = "SELECT count(*) FROM vpc_flow_logs WHERE date = DATE '2026-10-02'"
            else:
                sql = (f"SELECT count(*) FROM vpc_flow_logs WHERE aws_account_id = '{acct}' "
                       "AND aws_region = 'us-east-1' AND date = DATE '2026-10-02'")
            with tempfile.TemporaryDirectory() as home:
                moto_api(moto_port, "/moto-api/recorder/reset-recording")
                moto_api(moto_port, "/moto-api/recorder/start-recording")
                started = time.perf_counter()
                out = subprocess.run(
                    [args.flowsql, f"s3://{bucket}/big", "--endpoint-url", f"http://127.0.0.1:{proxy_port}",
                     "--no-sign-request", "-q", "--format", "csv", "-c", sql],
                    capture_output=True, text=True, env={"PATH": os.environ["PATH"], "HOME": home},
                )
                wall = time.perf_counter() - started
                moto_api(moto_port, "/moto-api/recorder/stop-recording")
            if out.returncode != 0:
                sys.exit(out.stderr)
            log = moto_api(moto_port, "/moto-api/recorder/download-recording", method="GET")
            requests = [json.loads(line) for line in log.splitlines() if line.strip()]
            lists = sum(1 for r in requests if r.get("method") == "GET" and "list-type" in r.get("url", ""))
            answer = out.stdout.strip().splitlines()[-1]
            print(f"| {accounts} x 4 | {wall:.2f} s | {lists} | {len(requests)} | {answer} |", flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
