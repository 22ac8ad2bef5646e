#!/usr/bin/env python3
"""Bounded attacks on a flux-metrics-api on 127.0.0.1, and a probe of ordinary requests.

Used by scripts/bench-hostile.sh; every attack is bounded in connections and time and stops by
itself. Loopback only: attackers connect from 127.0.0.1 and 127.0.0.1x addresses, the probe from
127.0.0.2, as kube-apiserver would come from an address of its own.

  hostile.py probe PORT SECONDS RATE              one line of JSON: probes, ok, p50/p99 ms
  hostile.py ATTACK PORT SECONDS [N]              runs one attack for SECONDS

Attacks: idle-h2, slow-headers, pipeline, hold-slots, scripts.
"""

import asyncio
import json
import socket
import ssl
import struct
import sys
import time

METRIC = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count"


def tls_context(alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    return ctx


async def connect(port, alpn, local="127.0.0.1", tls=True):
    """A (reader, writer) pair from `local`, TLS with `alpn` unless tls is False."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((local, 0))
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
    return await asyncio.wait_for(
        asyncio.open_connection(sock=sock, ssl=tls_context(alpn) if tls else None,
                                server_hostname="localhost" if tls else None), 10)


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_get(path, stream=1):
    # HPACK: :method GET (2), :scheme https (7), :path literal (name 4), :authority literal (name 1).
    block = b"\x82\x87" + b"\x04" + bytes([len(path)]) + path.encode() + b"\x01\x09localhost"
    return h2_frame(1, 0x5, stream, block)  # HEADERS, END_STREAM | END_HEADERS


def addresses(spec):
    """`127.0.0.10-27` is 18 addresses; `127.0.0.3` one."""
    base, _, last = spec.rpartition(".")
    first, _, end = last.partition("-")
    return [f"{base}.{i}" for i in range(int(first), int(end or first) + 1)]


async def idle_h2(port, seconds, n, local):
    """Connections that each send one request, then stay open, answering pings; `n` per
    address of `local` (a range such as 127.0.0.10-27, to pass the server's global cap)."""
    async def one(address):
        try:
            r, w = await connect(port, ["h2"], address)
            w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) + h2_get("/healthz"))
            await w.drain()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                head = await asyncio.wait_for(r.readexactly(9), end - time.monotonic())
                length = int.from_bytes(head[:3], "big")
                body = await r.readexactly(length)
                if head[3] == 6 and not head[4] & 1:  # PING: answer it, as the client did
                    w.write(h2_frame(6, 1, 0, body))
                elif head[3] == 4 and not head[4] & 1:  # SETTINGS: acknowledge
                    w.write(h2_frame(4, 1, 0))
                await w.drain()
        except Exception:
            pass
    await asyncio.gather(*(one(a) for a in addresses(local) for _ in range(n)))


async def slow_headers(port, seconds, n, local):
    """HTTP/1.1 request heads sent a byte a second."""
    async def one():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                r, w = await connect(port, ["http/1.1"], local)
                w.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                while time.monotonic() < end:
                    await asyncio.sleep(1)
                    w.write(b"a")
                    await w.drain()
            except Exception:
                await asyncio.sleep(0.2)
    await asyncio.gather(*(one() for _ in range(n)))


async def pipeline(port, seconds, n, local):
    """HTTP/1.1 connections pipelining big answers (/openapi/v2) and never reading."""
    async def one():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                r, w = await connect(port, ["http/1.1"], local)
                w.write(b"GET /openapi/v2 HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2000)
                await asyncio.wait_for(w.drain(), 10)
                await asyncio.sleep(max(0, min(15, end - time.monotonic())))
                w.close()
            except Exception:
                await asyncio.sleep(0.2)
    await asyncio.gather(*(one() for _ in range(n)))


async def hold_slots(port, seconds, n, local):
    """One address opening as many connections as it can and holding them, reconnecting."""
    held = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while len(held) < n and time.monotonic() < end:
            try:
                r, w = await connect(port, ["http/1.1"], local, tls=False)
                held.append((r, w))
            except Exception:
                break
        # Drop those the server closed, then reconnect.
        alive = []
        for r, w in held:
            if r.at_eof() or w.is_closing():
                w.close()
            else:
                alive.append((r, w))
        held = alive
        await asyncio.sleep(0.5)
        for r, _ in held:
            try:
                await asyncio.wait_for(r.read(1), 0.001)
            except Exception:
                pass
    for _, w in held:
        w.close()


async def scripts(port, seconds, n, local):
    """Scrapes of /metrics, which evaluates every custom metric (the hungry and runaway ones)."""
    async def one():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                r, w = await connect(port, ["http/1.1"], local)
                while time.monotonic() < end:
                    for path in ("/metrics", "/api/v1/metrics"):
                        w.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                        await w.drain()
                        await read_answer(r)
            except Exception:
                await asyncio.sleep(0.2)
    await asyncio.gather(*(one() for _ in range(n)))


async def read_answer(r):
    """Reads one HTTP/1.1 answer with a Content-Length; its status code."""
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await r.readexactly(length)
    return status


async def probe(port, seconds, rate):
    """Ordinary requests, each on a fresh connection from 127.0.0.2 (handshake included, as a
    new client pays it), at `rate` per second; prints the success rate and latencies."""
    latencies, failures = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            async def once():
                r, w = await connect(port, ["http/1.1"], "127.0.0.2")
                w.write(f"GET {METRIC} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                await w.drain()
                status = await read_answer(r)
                w.close()
                return status
            status = await asyncio.wait_for(once(), 10)
            if status == 200:
                latencies.append((time.monotonic() - started) * 1000)
            else:
                failures += 1
        except Exception:
            failures += 1
        await asyncio.sleep(max(0, 1 / rate - (time.monotonic() - started)))
    latencies.sort()
    pct = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None
    total = len(latencies) + failures
    print(json.dumps({"probes": total, "ok": len(latencies),
                      "ok_percent": round(100 * len(latencies) / total, 2) if total else 0,
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": latencies[-1] if latencies else None}))


ATTACKS = {"idle-h2": (idle_h2, 64), "slow-headers": (slow_headers, 200),
           "pipeline": (pipeline, 20), "hold-slots": (hold_slots, 1000), "scripts": (scripts, 4)}


def main():
    what, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if what == "probe":
        asyncio.run(probe(port, seconds, float(sys.argv[4])))
        return
    attack, default_n = ATTACKS[what]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else default_n
    local = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
    asyncio.run(attack(port, seconds, n, local))


if __name__ == "__main__":
    main()
