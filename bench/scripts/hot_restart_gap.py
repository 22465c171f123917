#!/usr/bin/env python3
"""Measures a hot restart of `percore serve` (docs/deploy.md, bench/RESULTS.md).

Clients connect in a tight loop (new connection per request: connect, GET /, read to the
close); after --before seconds a successor takes over with --upgrade-from, the old process
drains and exits, and the load goes on --after seconds more. Reported per round, for the
switch window (successor started → old process exited, plus 0.5 s) against a baseline
window of the same length just before it, in the same run:
  - the longest gap between two consecutive completed requests (no request completed:
    what a client sees as "the server did not accept");
  - p50 / p99 / max latency of the requests started in the window;
  - refused connections and failed requests (must be 0).

    bench/scripts/hot_restart_gap.py --bin target/release/percore --rounds 5

Loopback only; every loop is bounded by the round's duration.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_request(port):
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        return t0, time.monotonic(), "refused:" + type(e).__name__
    try:
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        ok = data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"Hello, World!")
        return t0, time.monotonic(), None if ok else "failed:bad response %r" % data[:60]
    except OSError as e:
        return t0, time.monotonic(), "failed:" + type(e).__name__
    finally:
        s.close()


def wait_listening(port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def window_stats(results, start, end):
    done = sorted(t1 for t0, t1, err in results if err is None and start <= t1 < end)
    gaps = [b - a for a, b in zip([start] + done, done + [end])]
    lat = [t1 - t0 for t0, t1, err in results if err is None and start <= t0 < end]
    return {
        "requests": len(lat),
        "longest_gap_ms": max(gaps) * 1000 if gaps else float("nan"),
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
    }


def one_round(args, sock_dir, round_no):
    port = free_port()
    path = os.path.join(sock_dir, "up-%d.sock" % round_no)
    base = [args.bin, "serve", "--listen", "127.0.0.1:%d" % port, "--shards", str(args.shards),
            "--quiet", "--drain-delay", "0", "--upgrade-socket", path]
    old = subprocess.Popen(base, stderr=subprocess.DEVNULL)
    new = None
    try:
        if not wait_listening(port):
            raise SystemExit("the server did not start")
        results = []
        lock = threading.Lock()
        stop = threading.Event()

        def client():
            mine = []
            deadline = time.monotonic() + args.before + args.after + 30
            while not stop.is_set() and time.monotonic() < deadline:
                mine.append(one_request(port))
            with lock:
                results.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.before)
        switch = time.monotonic()
        new = subprocess.Popen(base + ["--upgrade-from", path], stderr=subprocess.DEVNULL)
        old.wait(timeout=30)
        exited = time.monotonic()
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join()
        end = exited + 0.5
        length = end - switch
        errors = [err for _, _, err in results if err]
        return {
            "switch_s": exited - switch,
            "baseline": window_stats(results, switch - length, switch),
            "switch": window_stats(results, switch, end),
            "refused": sum(1 for e in errors if e.startswith("refused")),
            "failed": sum(1 for e in errors if e.startswith("failed")),
            "total": len(results),
        }
    finally:
        for proc in (old, new):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default="target/release/percore")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--before", type=float, default=2.0)
    p.add_argument("--after", type=float, default=1.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as sock_dir:
        rounds = [one_round(args, sock_dir, i) for i in range(args.rounds)]
    if args.json:
        print(json.dumps(rounds, indent=1))
    print("| round | switch s | gap ms (baseline → switch) | p50 ms | p99 ms | max ms | refused | failed | requests |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds):
        b, s = r["baseline"], r["switch"]
        print("| %d | %.3f | %.2f → %.2f | %.3f → %.3f | %.3f → %.3f | %.2f → %.2f | %d | %d | %d |" % (
            i, r["switch_s"], b["longest_gap_ms"], s["longest_gap_ms"], b["p50_ms"], s["p50_ms"],
            b["p99_ms"], s["p99_ms"], b["max_ms"], s["max_ms"], r["refused"], r["failed"], r["total"]))
    med = lambda key, w: statistics.median(r[w][key] for r in rounds)
    print("median: gap %.2f → %.2f ms (×%.2f), p99 %.3f → %.3f ms (×%.2f), refused %d, failed %d" % (
        med("longest_gap_ms", "baseline"), med("longest_gap_ms", "switch"),
        med("longest_gap_ms", "switch") / med("longest_gap_ms", "baseline"),
        med("p99_ms", "baseline"), med("p99_ms", "switch"),
        med("p99_ms", "switch") / med("p99_ms", "baseline"),
        sum(r["refused"] for r in rounds), sum(r["failed"] for r in rounds)))
    return 0 if all(r["refused"] == 0 and r["failed"] == 0 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
