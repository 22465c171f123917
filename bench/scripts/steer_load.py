#!/usr/bin/env python3
"""Open-loop load for the heavy-request scenario (bench/scripts/steer_heavy.sh).

Light `GET /` requests are *scheduled* at a fixed rate, and each one's latency is measured
from its scheduled time, so a stalled server cannot slow the load down and hide its stall
(no coordinated omission). A request takes an idle keep-alive connection, or opens a new one
when none is idle (up to --max-conns), as a browser or a connection pool would: requests stuck
on a stalled worker hold their connections, and new ones show where the server puts new
connections. Heavy requests (`--heavy-path`, default /work?ms=200) go on their own connections
(`Connection: close`) at --heavy-rate. Prints one JSON line; besides the percentiles of the
measured light requests (after --warmup), it counts the light requests over --slow-ms among
all of them, warm-up included: `slow_first_burn` those scheduled before the first heavy
response came back (what an unknown heavy route's first run costs), `slow_after_first_burn`
the rest, with the span of the latter's scheduled times (`slow_after_span_s`, seconds from
the start: a stall of the whole machine shows as one short span) and how many of them were
waiting while no heavy request was in flight (`slow_after_between_burns`: no burn can have
held them), and, for percore, the heavy responses that say they ran on the shard
(`heavy_inline`: inline burns). Two figures tell a
stalled client from a slow server: `client_late_max_ms`, the most a request was sent after
its scheduled time (this process not running when it should), and `client_majflt`, this
process's major page faults (waits for the disk).
"""

import argparse
import asyncio
import collections
import json
import math
import resource
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", default="127.0.0.1:8080")
    p.add_argument("--rate", type=float, default=500.0, help="light requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds not recorded")
    p.add_argument("--heavy-rate", type=float, default=2.0, help="heavy requests per second")
    p.add_argument("--heavy-path", default="/work?ms=200")
    p.add_argument("--heavy-conns", type=int, default=0,
                   help="long-lived keep-alive connections sending heavy requests back to back "
                        "(the skew scenario) instead of --heavy-rate")
    p.add_argument("--max-conns", type=int, default=256)
    p.add_argument("--light-close", action="store_true",
                   help="each light request on a new connection (Connection: close), so "
                        "every request shows where the server places a new connection")
    p.add_argument("--light-conns", type=int, default=0,
                   help="open this many light connections before the load starts (the pool "
                        "then uses them in turn, and opens more only up to --max-conns)")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--slow-ms", type=float, default=100.0,
                   help="a light request slower than this counts as slow")
    return p.parse_args()


async def exchange(reader, writer, path, close=False):
    extra = "Connection: close\r\n" if close else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    # A server that ends the connection (keep-alive request limit) says so; the
    # connection then leaves the pool instead of failing the next request.
    closing = b"\r\nconnection: close" in head.lower()
    return status, closing, body


class Light:
    def __init__(self, args, host, port):
        self.args, self.host, self.port = args, host, port
        # Used in turn (FIFO), so every open connection carries its share of requests.
        self.idle = collections.deque()
        self.waiters = asyncio.Queue()
        self.open = 0
        self.opened = 0
        self.latencies = []
        # (scheduled time, latency) of every answered light request, warm-up included.
        self.samples = []
        self.errors = 0

    async def conn(self):
        if self.idle:
            return self.idle.popleft()
        if self.open < self.args.max_conns:
            self.open += 1
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except Exception:
                self.open -= 1
                raise
        return await self.waiters.get()

    def give_back(self, conn):
        if self.waiters._getters:  # a request is waiting for a connection
            self.waiters.put_nowait(conn)
        else:
            self.idle.append(conn)

    async def one(self, scheduled, record):
        if self.args.light_close:
            return await self.one_close(scheduled, record)
        loop = asyncio.get_running_loop()
        conn = None
        try:
            conn = await asyncio.wait_for(self.conn(), self.args.timeout)
            status, closing, _ = await asyncio.wait_for(exchange(*conn, "/"), self.args.timeout)
            latency = loop.time() - scheduled
            if closing:
                conn[1].close()
                self.open -= 1
            else:
                self.give_back(conn)
            conn = None
            if status == 200:
                self.samples.append((scheduled, latency))
            if record:
                if status == 200:
                    self.latencies.append(latency)
                else:
                    self.errors += 1
        except Exception:
            if record:
                self.errors += 1
            if conn is not None:
                conn[1].close()
                self.open -= 1


    async def one_close(self, scheduled, record):
        loop = asyncio.get_running_loop()
        try:
            async def go():
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    return (await exchange(reader, writer, "/", True))[0]
                finally:
                    writer.close()
            self.opened += 1
            status = await asyncio.wait_for(go(), self.args.timeout)
            latency = loop.time() - scheduled
            if status == 200:
                self.samples.append((scheduled, latency))
            if record:
                if status == 200:
                    self.latencies.append(latency)
                else:
                    self.errors += 1
        except Exception:
            if record:
                self.errors += 1


async def heavy_one(args, host, port, out):
    sent = asyncio.get_running_loop().time()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
        started = time.monotonic()
        status, _, body = await asyncio.wait_for(
            exchange(reader, writer, args.heavy_path, True), 30)
        out["heavy_ok" if status == 200 else "heavy_errors"] += 1
        out["heavy_inline"] += body.endswith(b" on the shard\n")
        out["heavy_ms"].append((time.monotonic() - started) * 1000)
        out["heavy_done"].append(asyncio.get_running_loop().time())
        out["heavy_spans"].append((sent, out["heavy_done"][-1]))
        writer.close()
    except Exception:
        out["heavy_errors"] += 1
        out["heavy_spans"].append((sent, asyncio.get_running_loop().time()))


async def heavy_keepalive(args, host, port, out, until):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < until:
            status, closing, _ = await asyncio.wait_for(
                exchange(reader, writer, args.heavy_path), 30)
            out["heavy_ok" if status == 200 else "heavy_errors"] += 1
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()
    except Exception:
        out["heavy_errors"] += 1


def pct(sorted_ms, q):
    if not sorted_ms:
        return None
    return round(sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)], 2)


async def main():
    args = parse_args()
    host, port = args.addr.rsplit(":", 1)
    port = int(port)
    loop = asyncio.get_running_loop()
    light = Light(args, host, port)
    heavy = {"heavy_ok": 0, "heavy_errors": 0, "heavy_inline": 0, "heavy_ms": [],
             "heavy_done": [], "heavy_spans": []}
    total = args.warmup + args.duration
    tasks = []
    if args.heavy_conns:
        until = time.monotonic() + 0.5 + total
        tasks += [asyncio.ensure_future(heavy_keepalive(args, host, port, heavy, until))
                  for _ in range(args.heavy_conns)]
        await asyncio.sleep(0.2)
    for _ in range(args.light_conns):
        light.idle.append(await asyncio.open_connection(host, port))
        light.open += 1
        light.opened += 1
    t0 = loop.time() + 0.05
    n_light = int(total * args.rate)
    n_heavy = int(total * args.heavy_rate) if not args.heavy_conns else 0
    events = [(t0 + i / args.rate, "light") for i in range(n_light)]
    events += [(t0 + (j + 0.5) / args.heavy_rate, "heavy") for j in range(n_heavy)]
    events.sort()
    late_max = 0.0
    majflt0 = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    for at, kind in events:
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late_max = max(late_max, loop.time() - at)
        if kind == "light":
            tasks.append(asyncio.ensure_future(light.one(at, at - t0 >= args.warmup)))
        else:
            tasks.append(asyncio.ensure_future(heavy_one(args, host, port, heavy)))
    await asyncio.gather(*tasks)
    lat = sorted(x * 1000 for x in light.latencies)
    # Without a heavy response (a no-burn baseline) every slow request counts as "after".
    first_done = min(heavy["heavy_done"], default=-math.inf)
    slow_samples = [(at, lat) for at, lat in light.samples if lat * 1000 > args.slow_ms]
    slow = [at for at, _ in slow_samples]
    after = [at - t0 for at in slow if at >= first_done]
    # A slow request after the first burn whose wait overlapped no heavy request in flight.
    between = sum(1 for at, lat in slow_samples if at >= first_done and not any(
        s < at + lat and at < d for s, d in heavy["heavy_spans"]))
    print(json.dumps({
        "light_ok": len(lat),
        "light_errors": light.errors,
        "p50_ms": pct(lat, 0.50),
        "p99_ms": pct(lat, 0.99),
        "p999_ms": pct(lat, 0.999),
        "max_ms": round(lat[-1], 2) if lat else None,
        "light_conns_opened": light.opened,
        "heavy_ok": heavy["heavy_ok"],
        "heavy_errors": heavy["heavy_errors"],
        "heavy_p50_ms": pct(sorted(heavy["heavy_ms"]), 0.5),
        "slow_first_burn": sum(1 for at in slow if at < first_done),
        "slow_after_first_burn": len(after),
        "slow_after_span_s": [round(min(after), 2), round(max(after), 2)] if after else None,
        "slow_after_between_burns": between,
        "heavy_inline": heavy["heavy_inline"],
        "client_late_max_ms": round(late_max * 1000, 2),
        "client_majflt": resource.getrusage(resource.RUSAGE_SELF).ru_majflt - majflt0,
    }))


asyncio.run(main())
