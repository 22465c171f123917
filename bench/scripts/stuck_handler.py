#!/usr/bin/env python3
"""A handler that holds its unit: what other clients see.

Starts each server in turn on 127.0.0.1, sends `GET /work?ms=5000` on one connection (a
handler that holds its process/worker/shard for 5 s), then six `GET /` one after another,
each on a new connection, and prints the slowest and median of the six, plus the server's
`/healthz` status 2 s into the stall where it has one.

    python3 bench/scripts/stuck_handler.py [PATH_TO_PERCORE]

Peers: Node.js (`bench/peers/node/work.js`, one process and `cluster` with 2 workers) and
`percore serve --shards 2 --unhealthy-after 1` (default binary: target/release/percore).
"""
import socket
import subprocess
import sys
import threading
import time


def get(port, path, timeout=15):
    started = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        data += f" ERR {e}".encode()
    s.close()
    return data.split(b"\r\n")[0].decode(errors="replace"), time.time() - started


def run(name, cmd, port, health=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                get(port, "/")
                break
            except OSError:
                time.sleep(0.1)
        holder = threading.Thread(target=lambda: get(port, "/work?ms=5000"))
        held_at = time.time()
        holder.start()
        time.sleep(0.5)
        took = sorted(get(port, "/")[1] for _ in range(6))
        # Past percore's --unhealthy-after 1 (the handler runs 5 s).
        time.sleep(max(0.0, held_at + 2.0 - time.time()))
        status = get(port, health)[0] if health else "-"
        holder.join()
    finally:
        proc.terminate()
        proc.wait()
    print(
        f"{name}: six fresh GET / during a 5 s handler: slowest {took[-1] * 1000:.0f} ms, "
        f"median {took[3] * 1000:.0f} ms; /healthz during: {status}"
    )


def main():
    percore = sys.argv[1] if len(sys.argv) > 1 else "target/release/percore"
    node = ["node", "bench/peers/node/work.js", "--listen"]
    run("node, one process", node + ["127.0.0.1:18081"], 18081)
    run("node, cluster of 2", node + ["127.0.0.1:18082", "--workers", "2"], 18082)
    run(
        "percore, 2 shards",
        [percore, "serve", "--listen", "127.0.0.1:18083", "--shards", "2",
         "--unhealthy-after", "1", "--quiet"],
        18083,
        "/healthz",
    )


if __name__ == "__main__":
    main()
