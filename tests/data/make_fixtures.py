#!/usr/bin/env python3
"""Writes the checked-in fixture trees under tests/data/ (deterministic: gzip mtime 0).

The records are the sample records of AWS's flow-log documentation (and the
public parser test suites quoted in ../shared/reference/flow-log-format.md),
with their start/end times moved next to the 5-minute time in their file
names (durations kept), as real delivery has them. Run from anywhere:
    python3 tests/data/make_fixtures.py
"""
import calendar
import gzip
import os
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def epoch(text):
    return calendar.timegm(time.strptime(text, "%Y%m%dT%H%MZ"))


def write(path, header, lines, members=1):
    """Writes header + lines as gzip; members > 1 splits the text into several gzip members."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = ("" if header is None else header + "\n") + "".join(l + "\n" for l in lines)
    data = text.encode("utf-8", "surrogateescape")
    parts = [data]
    if members > 1:
        cut = data.index(b"\n", len(data) // 2) + 1
        parts = [data[:cut], data[cut:]]
    with open(path, "wb") as f:
        for part in parts:
            f.write(gzip.compress(part, compresslevel=6, mtime=0))


def retime(line, t_file, fields, start_idx, end_idx, offset=30):
    """Moves start/end so that end lies `offset` seconds after the file time, keeping the duration."""
    parts = line.split(" ")
    tokens = [p for p in parts if p != ""]
    s, e = int(tokens[start_idx]), int(tokens[end_idx])
    new_end = t_file + offset
    new_start = new_end - (e - s)
    # Replace in place, keeping the original spacing (the double-space sample).
    out, seen = [], 0
    for p in parts:
        if p == "":
            out.append(p)
            continue
        if seen == start_idx:
            p = str(new_start)
        elif seen == end_idx:
            p = str(new_end)
        out.append(p)
        seen += 1
    return " ".join(out)


def name(account, region, flow_log, t, suffix):
    return f"{account}_vpcflowlogs_{region}_{flow_log}_{t}_{suffix}.log.gz"


def main():
    bucket = os.path.join(HERE, "bucket")
    shutil.rmtree(bucket, ignore_errors=True)
    logs = os.path.join(bucket, "flow-logs", "AWSLogs")
    a1, a2 = "111122223333", "444455556666"

    # --- Positional daily: us-east-1, 2024-01-15: three formats in one folder.
    day15 = os.path.join(logs, a1, "vpcflowlogs", "us-east-1", "2024", "01", "15")
    t = "20240115T1200Z"
    v2 = [
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
        "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK",
        "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
        "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA",
        "2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK",
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 203.0.113.12 0 0 1 4 336 1432917094 1432917142 REJECT OK",
        "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK",
        "2 123456789010 eni-abc123de 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
    ]
    v2_header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
    write(os.path.join(day15, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60001", t, "1a2b3c4d")),
          v2_header, [retime(l, epoch(t), 14, 10, 11) for l in v2])
    # The same flow log later that day, written as two gzip members (multi-member gzip).
    t2 = "20240115T1805Z"
    write(os.path.join(day15, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60001", t2, "5e6f7a8b")),
          v2_header, [retime(l, epoch(t2), 14, 10, 11, offset=100) for l in v2[:2] + v2[4:7]], members=2)

    v3_header = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status"
    v3 = [
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43416 10.0.0.62 52.213.180.42 6 376 7 1566848875 1566848933 ACCEPT 18 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 100701 70 1566848875 1566848933 ACCEPT 2 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 632 12 1566848875 1566848933 ACCEPT 18 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 63388 1219 1566848933 1566849113 ACCEPT 1 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 23294588 15774 1566848933 1566849113 ACCEPT 1 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43638 5001 52.213.180.42 10.0.0.62 6 1260 17 1566933133 1566933193 ACCEPT 3 OK",
        # The documented sample with a double space after 43638.
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43638  10.0.0.62 52.213.180.42 6 967 14 1566933133 1566933193 ACCEPT 19 OK",
    ]
    t3 = "20240115T0300Z"
    write(os.path.join(day15, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60002", t3, "9c8b7a6f")),
          v3_header, [retime(l, epoch(t3), 21, 16, 17) for l in v3])

    # The console's alphabetical "all fields" header (v5), with a SKIPDATA row.
    alpha_header = "account-id action az-id bytes dstaddr dstport end flow-direction instance-id interface-id log-status packets pkt-dst-aws-service pkt-dstaddr pkt-src-aws-service pkt-srcaddr protocol region srcaddr srcport start sublocation-id sublocation-type subnet-id tcp-flags traffic-path type version vpc-id"
    alpha = [
        "999999999999 ACCEPT use2-az2 4895 192.0.2.156 50318 1614866511 ingress i-00123456789abcdef eni-00123456789abcdef OK 15 - 192.0.2.156 S3 198.51.100.6 6 us-east-2 198.51.100.7 443 1614866493 - - subnet-0123456789abcdef 19 - IPv4 5 vpc-04456ab739938ee3f",
        "999999999999 ACCEPT use2-az2 3015 198.51.100.6 443 1614866511 egress i-00123456789abcdef eni-00123456789abcdef OK 16 S3 198.51.100.7 - 192.0.2.156 6 us-east-2 192.0.2.156 50318 1614866493 - - subnet-0123456789abcdef 7 7 IPv4 5 vpc-04456ab739938ee3f",
        "325352056000 - apne1-az1 - - - 1700185000 - i-085c8f3d12aa57000 eni-03a3504cbdd789000 SKIPDATA - - - - - - ap-northeast-1 - - 1700185000 - - subnet-f27b1000 - - - 5 vpc-bcd5b000",
    ]
    t4 = "20240115T2355Z"
    write(os.path.join(day15, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60003", t4, "0f0e0d0c")),
          alpha_header, [retime(l, epoch(t4), 29, 20, 6, offset=60) for l in alpha])

    # 2024-01-16, just after midnight: records that started on the 15th.
    day16 = os.path.join(logs, a1, "vpcflowlogs", "us-east-1", "2024", "01", "16")
    t5 = "20240116T0000Z"
    write(os.path.join(day16, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60001", t5, "abcdef01")),
          v2_header, [
              "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20642 22 6 30 5120 %d %d ACCEPT OK" % (epoch(t5) - 420, epoch(t5) + 40),
              "2 123456789010 eni-1235b8ca123456789 198.51.100.7 172.31.16.21 40001 3389 6 2 120 %d %d REJECT OK" % (epoch(t5) - 300, epoch(t5) + 10),
              "2 123456789010 eni-1235b8ca123456789 - - - - - - - %d %d - NODATA" % (epoch(t5) - 600, epoch(t5) + 5),
          ])
    # A header-only object (no traffic records in the window).
    write(os.path.join(day16, name(a1, "us-east-1", "fl-0a1b2c3d4e5f60001", "20240116T0005Z", "abcdef02")), v2_header, [])

    # --- Positional hourly: eu-west-1, NAT gateway custom format (no times).
    nat_header = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr"
    nat = [
        "- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5",
        "- eni-1235b8ca123456789 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5",
        "- eni-1235b8ca123456789 203.0.113.5 10.0.0.220 203.0.113.5 10.0.0.220",
        "- eni-1235b8ca123456789 10.0.0.220 10.0.1.5 203.0.113.5 10.0.1.5",
        "i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5",
        "i-01234567890123456 eni-1111aaaa2222bbbb3 203.0.113.5 10.0.1.5 203.0.113.5 10.0.1.5",
    ]
    for hour, t in (("00", "20240116T0010Z"), ("23", "20240116T2350Z")):
        folder = os.path.join(logs, a1, "vpcflowlogs", "eu-west-1", "2024", "01", "16", hour)
        write(os.path.join(folder, name(a1, "eu-west-1", "fl-0bbbbbbbbbbbbbbb1", t, "11111111")), nat_header,
              nat if hour == "00" else nat[4:])

    # --- Hive daily: 444455556666 us-east-1, transit gateway custom format, plus an unknown field.
    hive15 = os.path.join(logs, f"aws-account-id={a2}", "aws-service=vpcflowlogs", "aws-region=us-east-1",
                          "year=2024", "month=01", "day=15")
    tgw_header = "version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status"
    tgw = [
        "3 eni-33333333333333333 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb i-01234567890123456 10.20.33.164 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK",
        "3 eni-33333333333333333 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb i-01234567890123456 10.40.2.236 10.20.33.164 80 39812 6 19 IPv4 10.40.2.236 10.20.33.164 ACCEPT OK",
        "3 eni-11111111111111111 123456789010 vpc-abcdefab012345678 subnet-11111111aaaaaaaaa - 10.40.1.175 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK",
        "3 eni-22222222222222222 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb - 10.40.2.236 10.40.2.31 80 39812 6 19 IPv4 10.40.2.236 10.20.33.164 ACCEPT OK",
    ]
    write(os.path.join(hive15, name(a2, "us-east-1", "fl-0ccccccccccccccc1", "20240115T0630Z", "22222222")), tgw_header, tgw)
    enc_header = "flow-direction traffic-path srcaddr dstaddr srcport dstport encryption-status instance-tag-2"
    enc = [
        "ingress - 10.0.133.8 10.0.128.55 43236 80 1 web",
        "egress 1 10.0.128.55 10.0.133.8 80 43236 1 web",
        "ingress - 10.0.130.104 10.0.128.55 55016 80 0 -",
        "egress 1 10.0.128.55 10.0.130.104 80 55016 0 batch",
    ]
    write(os.path.join(hive15, name(a2, "us-east-1", "fl-0ddddddddddddddd1", "20240115T0640Z", "33333333")), enc_header, enc)

    # --- Hive hourly: 444455556666 ap-southeast-2, v5 service/path/direction format.
    hive16 = os.path.join(logs, f"aws-account-id={a2}", "aws-service=vpcflowlogs", "aws-region=ap-southeast-2",
                          "year=2024", "month=01", "day=16", "hour=23")
    v5_header = "version srcaddr dstaddr srcport dstport protocol start end type packets bytes account-id vpc-id subnet-id instance-id interface-id region az-id sublocation-type sublocation-id action tcp-flags pkt-srcaddr pkt-dstaddr pkt-src-aws-service pkt-dst-aws-service traffic-path flow-direction log-status"
    v5 = [
        "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK",
        "5 10.0.0.71 52.95.128.179 34210 80 6 1616729292 1616729349 IPv4 7 471 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 3 10.0.0.71 52.95.128.179 - S3 8 egress OK",
    ]
    t6 = "20240116T2355Z"
    write(os.path.join(hive16, name(a2, "ap-southeast-2", "fl-0eeeeeeeeeeeeeee1", t6, "44444444")),
          v5_header, [retime(l, epoch(t6), 29, 6, 7) for l in v5])

    # --- Keys that are not flow-log files: skipped, never errors.
    with open(os.path.join(logs, "README.txt"), "w") as f:
        f.write("not a flow log\n")
    os.makedirs(os.path.join(logs, a1, "elasticloadbalancing", "us-east-1", "2024", "01", "15"), exist_ok=True)
    write(os.path.join(logs, a1, "elasticloadbalancing", "us-east-1", "2024", "01", "15", "elb.log.gz"), None, ["h2 2024-01-15T00:00:00Z app/x"])
    # (Parquet objects are flow-log files: tests/it/parquet.rs builds its
    # trees of them from these text objects at test time.)

    # --- A tree of bad input, for the malformed-line and bad-object rules.
    bad = os.path.join(HERE, "malformed")
    shutil.rmtree(bad, ignore_errors=True)
    bad_day = os.path.join(bad, "AWSLogs", a1, "vpcflowlogs", "us-east-1", "2024", "02", "01")
    tb = "20240201T0000Z"
    lines = [
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1000 22 6 1 100 %d %d ACCEPT OK" % (epoch(tb), epoch(tb) + 30),
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1000 22 6 1 100 %d ACCEPT OK" % epoch(tb),
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 http 22 6 1 100 %d %d ACCEPT OK" % (epoch(tb), epoch(tb) + 30),
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1000 22 6 1 100 %d %d ACCEPT OK" % (epoch(tb), epoch(tb) + 60),
    ]
    write(os.path.join(bad_day, name(a1, "us-east-1", "fl-0bad0000000000001", tb, "55555555")), v2_header, lines)


if __name__ == "__main__":
    main()
