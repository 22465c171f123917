#!/usr/bin/env python3
"""The soak's load and its judge (R21), run by tests/soak.sh.

Drives a `percore serve` and a `percore kv` with a hostile mix for a fixed time: pipelined
keep-alive requests whose answers are checked, reconnect storms, resets at random points,
half-closes, slow readers of large responses, kv commands and pub/sub with reconnects. Every
second it samples each server: open fds, RSS, operations in flight, receive buffers lent,
open connections. After the load it waits for every figure to return to its baseline and
checks that RSS stayed within a band. Exit status 0 when all holds, 1 otherwise.
"""

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

IO_TIMEOUT = 10.0


def log(msg):
    print(f"soak: {msg}", flush=True)


# ---------------------------------------------------------------- sampling


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def scrape(admin):
    """Sums of the metrics the soak watches, from one /metrics scrape."""
    host, port = admin.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=IO_TIMEOUT) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    sums = {}
    for line in body.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        base = name.split("{", 1)[0]
        try:
            sums[base] = sums.get(base, 0.0) + float(value)
        except ValueError:
            pass
    return sums


class Target:
    def __init__(self, name, pid, addr, admin):
        self.name, self.pid, self.addr, self.admin = name, pid, addr, admin
        host, port = addr.rsplit(":", 1)
        self.hostport = (host, int(port))

    def sample(self):
        m = scrape(self.admin)
        return {
            "fds": fds(self.pid),
            "rss_kib": rss_kib(self.pid),
            "ops_in_flight": int(m.get("percore_ops_in_flight", -1)),
            "buffers_lent": int(m.get("percore_recv_buffers_lent", -1)),
            "buffers_free": int(
                m.get("percore_recv_buffers", 0) - m.get("percore_recv_buffers_lent", 0)
            ),
            "connections_open": int(m.get("percore_connections_open", -1)),
            "panics": int(m.get("percore_panics_total", 0)),
        }


# ---------------------------------------------------------------- clients


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []

    def add(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def error(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)
            self.counts["errors"] = self.counts.get("errors", 0) + 1


def connect(hostport):
    s = socket.create_connection(hostport, timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Reader:
    """Buffered reads of HTTP responses and RESP replies from one socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def http_response(self):
        status = int(self.line().split(b" ")[1])
        length, close = 0, False
        while True:
            field = self.line()
            if not field:
                break
            name, _, value = field.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value == b"close":
                close = True
        return status, self.exact(length), close

    def resp(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":"):
            return kind, rest
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return kind, None
            data = self.exact(n + 2)[:-2]
            return kind, data
        if kind == b"*":
            return kind, [self.resp() for _ in range(int(rest))]
        raise ValueError(f"bad RESP line {line!r}")


def echo_request(body, close=False):
    head = b"POST /echo HTTP/1.1\r\nHost: soak\r\n"
    if close:
        head += b"Connection: close\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def http_keepalive(t, stop, tally, seed):
    """Pipelined keep-alive echo requests; every answer checked. Never faulted: any failure
    is an error of the server."""
    rng = random.Random(seed)
    next_id = seed << 40
    while not stop.is_set():
        try:
            s = connect(t.hostport)
            r = Reader(s)
            while not stop.is_set():
                depth = rng.randint(1, 16)
                bodies = []
                for _ in range(depth):
                    next_id += 1
                    bodies.append(b"id=%016x;" % next_id + b"x" * rng.randint(0, 2000))
                s.sendall(b"".join(echo_request(b) for b in bodies))
                for i, b in enumerate(bodies):
                    status, body, close = r.http_response()
                    if status != 200 or body != b:
                        tally.error(f"keep-alive: status {status}, body mismatch {body[:24]!r}")
                        raise EOFError
                    tally.add("http_ok")
                    if close and i + 1 < len(bodies):
                        raise EOFError  # request cap reached: reconnect
                if close:
                    break
            s.close()
        except EOFError:
            pass
        except OSError as e:
            tally.error(f"keep-alive: {e!r}")
            time.sleep(0.05)


def reconnect_storm(t, stop, tally, seed):
    while not stop.is_set():
        socks = []
        try:
            for _ in range(64):
                socks.append(connect(t.hostport))
            for s in socks:
                s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
            for s in socks:
                status, body, _ = Reader(s).http_response()
                if status != 200 or body != b"Hello, World!":
                    tally.error(f"storm: {status} {body!r}")
                tally.add("storm_ok")
        except (OSError, EOFError) as e:
            tally.error(f"storm: {e!r}")
        finally:
            for s in socks:
                s.close()
        time.sleep(0.1)


def resets(t, stop, tally, seed):
    """Connections reset at random points: mid-head, mid-body, after a full request."""
    rng = random.Random(seed)
    request = echo_request(b"r" * 3000)
    while not stop.is_set():
        try:
            s = connect(t.hostport)
            s.sendall(request[: rng.randint(0, len(request))])
            if rng.random() < 0.3:
                time.sleep(0.005)
            rst_close(s)
            tally.add("resets")
        except OSError:
            pass
        time.sleep(0.002)


def half_closes(t, stop, tally, seed):
    """A full request, then FIN: the answer still comes, then the server closes."""
    while not stop.is_set():
        try:
            s = connect(t.hostport)
            s.sendall(echo_request(b"half-close"))
            s.shutdown(socket.SHUT_WR)
            r = Reader(s)
            status, body, _ = r.http_response()
            if status != 200 or body != b"half-close":
                tally.error(f"half-close: {status} {body!r}")
            try:
                r.fill()
                tally.error("half-close: bytes after the answer")
            except EOFError:
                tally.add("half_close_ok")
            s.close()
        except (OSError, EOFError) as e:
            tally.error(f"half-close: {e!r}")
        time.sleep(0.01)


def slow_readers(t, stop, tally, seed):
    """Pipelines many large responses and reads them a trickle at a time, then leaves."""
    rng = random.Random(seed)
    req = b"GET /stream?chunks=16&size=4096&length=1 HTTP/1.1\r\nHost: soak\r\n\r\n"
    while not stop.is_set():
        try:
            s = connect(t.hostport)
            s.settimeout(2.0)
            s.sendall(req * 64)
            until = time.monotonic() + rng.uniform(0.5, 2.0)
            while time.monotonic() < until and not stop.is_set():
                s.recv(1024)
                time.sleep(0.02)
            if rng.random() < 0.5:
                rst_close(s)
            else:
                s.close()
            tally.add("slow_readers")
        except OSError:
            pass


def kv_traffic(t, stop, tally, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            s = connect(t.hostport)
            r = Reader(s)
            for _ in range(200):
                if stop.is_set():
                    break
                depth = rng.randint(1, 16)
                cmds = []
                for _ in range(depth):
                    k = f"soak:{rng.randrange(1000)}"
                    op = rng.random()
                    if op < 0.4:
                        cmds.append(resp_command("SET", k, "v" * rng.randint(1, 300)))
                    elif op < 0.8:
                        cmds.append(resp_command("GET", k))
                    else:
                        cmds.append(resp_command("INCR", f"soak:ctr:{rng.randrange(64)}"))
                s.sendall(b"".join(cmds))
                for _ in cmds:
                    kind, _ = r.resp()
                    if kind == b"-":
                        tally.error("kv: error reply")
                    tally.add("kv_ok")
            if rng.random() < 0.3:
                rst_close(s)
            else:
                s.close()
        except (OSError, EOFError, ValueError) as e:
            tally.error(f"kv: {e!r}")
            time.sleep(0.05)


def kv_pubsub(t, stop, tally, seed):
    """Subscribers on both shards' channels, a publisher, everyone reconnecting every few
    seconds. Each published message must reach the subscriber that was listening."""
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            sub = connect(t.hostport)
            sr = Reader(sub)
            channels = [f"soak:chan:{i}" for i in range(8)]
            sub.sendall(resp_command("SUBSCRIBE", *channels))
            for _ in channels:
                sr.resp()
            pub = connect(t.hostport)
            pr = Reader(pub)
            until = time.monotonic() + rng.uniform(1.0, 4.0)
            sent = 0
            while time.monotonic() < until and not stop.is_set():
                ch = rng.choice(channels)
                msg = b"m%d" % sent
                pub.sendall(resp_command("PUBLISH", ch, msg))
                kind, n = pr.resp()
                if kind != b":" or int(n) < 1:
                    tally.error(f"publish: {kind!r} {n!r}")
                kind, parts = sr.resp()
                if kind != b"*" or parts[2][1] != msg:
                    tally.error(f"subscriber got {parts!r}, expected {msg!r}")
                sent += 1
                tally.add("pubsub_ok")
            pub.close()
            if rng.random() < 0.5:
                rst_close(sub)
            else:
                sub.close()
        except (OSError, EOFError, ValueError, IndexError) as e:
            tally.error(f"pubsub: {e!r}")
            time.sleep(0.05)


# ---------------------------------------------------------------- the run


def run_load(http, kv, seconds, tally):
    stop = threading.Event()
    workers = []
    plan = (
        [(http_keepalive, http)] * 4
        + [(reconnect_storm, http), (resets, http), (half_closes, http), (slow_readers, http)]
        + [(kv_traffic, kv)] * 2
        + [(kv_pubsub, kv), (resets, kv)]
    )
    for i, (fn, target) in enumerate(plan):
        th = threading.Thread(target=fn, args=(target, stop, tally, i + 1), daemon=True)
        th.start()
        workers.append(th)
    time.sleep(seconds)
    stop.set()
    for th in workers:
        th.join(timeout=IO_TIMEOUT + 5)
        if th.is_alive():
            tally.error(f"worker {th.name} did not stop")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True, help="PID,ADDR,ADMIN of percore serve")
    ap.add_argument("--kv", required=True, help="PID,ADDR,ADMIN of percore kv")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--settle", type=float, default=20.0)
    args = ap.parse_args()
    targets = [Target("http", *args.http.split(",")), Target("kv", *args.kv.split(","))]
    for t in targets:
        t.pid = int(t.pid)
    http, kv = targets

    # Warm-up (lazily made fds and allocations), then the baseline of an idle server.
    log("warm-up 5 s")
    run_load(http, kv, 5, Tally())
    time.sleep(2)
    baseline = {t.name: t.sample() for t in targets}
    for t in targets:
        log(f"baseline {t.name}: {baseline[t.name]}")

    samples = {t.name: [] for t in targets}
    tally = Tally()
    stop_sampling = threading.Event()
    csv = open(args.csv, "w")
    csv.write("t,server,fds,rss_kib,ops_in_flight,buffers_lent,buffers_free,connections_open\n")
    start = time.monotonic()

    def sampler():
        while not stop_sampling.wait(1.0):
            for t in targets:
                try:
                    s = t.sample()
                except OSError as e:
                    tally.error(f"scrape {t.name}: {e!r}")
                    continue
                samples[t.name].append(s)
                csv.write(
                    f"{time.monotonic() - start:.1f},{t.name},{s['fds']},{s['rss_kib']},"
                    f"{s['ops_in_flight']},{s['buffers_lent']},{s['buffers_free']},"
                    f"{s['connections_open']}\n"
                )
                csv.flush()

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    log(f"load for {args.seconds:.0f} s")
    run_load(http, kv, args.seconds, tally)
    log(f"load done: {dict(sorted(tally.counts.items()))}")

    # After the load: every figure back to its baseline within the settle time.
    keys = ("fds", "ops_in_flight", "buffers_lent", "connections_open")
    deadline = time.monotonic() + args.settle
    settled = {}
    while time.monotonic() < deadline:
        now = {t.name: t.sample() for t in targets}
        if all(now[n][k] <= baseline[n][k] for n in now for k in keys):
            settled = now
            break
        settled = now
        time.sleep(0.5)
    settle_s = args.settle - max(0.0, deadline - time.monotonic())
    stop_sampling.set()
    th.join()
    csv.close()

    ok = True
    for name, now in settled.items():
        b = baseline[name]
        for k in keys:
            if now[k] > b[k]:
                log(f"FAIL {name}: {k} {now[k]} after the load, baseline {b[k]}")
                ok = False
        if now["panics"] != b["panics"]:
            log(f"FAIL {name}: {now['panics'] - b['panics']} panics")
            ok = False
        rss = [s["rss_kib"] for s in samples[name]]
        third = max(1, len(rss) // 3)
        early, late = max(rss[:third]), max(rss[-third:])
        # A leak grows with time: the last third may not climb past the first third's peak
        # by more than a fifth plus 16 MiB; after the load RSS stays within 64 MiB of the
        # baseline (the allocator keeps freed pages).
        band = early * 1.2 + 16 * 1024
        log(
            f"{name}: fds {b['fds']} → peak {max(s['fds'] for s in samples[name])} → {now['fds']}; "
            f"RSS KiB baseline {b['rss_kib']}, first-third peak {early}, last-third peak {late}, "
            f"after {now['rss_kib']}; buffers free {now['buffers_free']}; settled in {settle_s:.1f} s"
        )
        if late > band:
            log(f"FAIL {name}: RSS climbed from {early} to {late} KiB (band {band:.0f})")
            ok = False
        if now["rss_kib"] > b["rss_kib"] + 64 * 1024:
            log(f"FAIL {name}: RSS {now['rss_kib']} KiB after the load, baseline {b['rss_kib']}")
            ok = False
    must = ["http_ok", "storm_ok", "half_close_ok", "kv_ok", "pubsub_ok", "resets", "slow_readers"]
    for what in must:
        if tally.counts.get(what, 0) == 0:
            log(f"FAIL: no {what} during the load")
            ok = False
    if tally.errors:
        log(f"FAIL: {tally.counts.get('errors')} client errors, first: {tally.errors}")
        ok = False
    log("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
