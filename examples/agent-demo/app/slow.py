#!/usr/bin/env python3
"""The agent-demo program: a checksum and a report, with real slowness in its code.

Two things make it slow: a naive pure-Python hot loop (`checksum`) and an unbuffered writer
(`write_report`: one write(2) system call per line). It prints `METRIC seconds=<wall time>`;
the coding agent's job is to make that smaller without changing `checksum=` or the report.
"""
import os
import time

N = 1_000_000
LINES = 40_000
MODULUS = 1_000_003


def checksum(n):
    total = 0
    i = 0
    while i < n:
        total = (total + i * i) % MODULUS
        i += 1
    return total


def write_report(path, lines):
    with open(path, "wb", buffering=0) as f:
        for i in range(lines):
            f.write(b"%d\n" % i)


def main():
    out = os.path.join(os.environ.get("AUTORESEARCH_RUN_DIR", "."), "report.txt")
    start = time.perf_counter()
    value = checksum(N)
    write_report(out, LINES)
    elapsed = time.perf_counter() - start
    print(f"checksum={value}")
    print(f"METRIC seconds={elapsed:.4f}")


main()
