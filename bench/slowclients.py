"""Slow and idle clients against a real `iiif-server serve`: the p99 of normal requests, unloaded and
while N sockets hold connections open (issue 11).

    .venv/bin/python bench/slowclients.py [--worker asgi|gthread] [--sockets 1000] [--workers N]

Three phases, each measured by one client making GETs of a hot tile one after another for ``--seconds``
(20 ms apart), each on a new connection (so accepting counts, as for a browser opening its six), with a
10 s timeout:

- **unloaded**;
- **slowloris**: ``--sockets`` connections sending a request head one byte every ``--drip`` seconds
  (reconnecting when the server closes one, like the attack);
- **idle**: ``--sockets`` connections that connect and send nothing (reconnecting likewise).

The attackers run in another process (asyncio), so they do not take the measuring client's GIL.
Prints one line per phase: p50, p99, failures, and how many attack sockets the server closed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iiif_server.check import free_port, running_server

TILE = "/iiif/3/scan.tif/0,0,256,256/256,/0/default.jpg"
HEAD = b"GET /iiif/3/scan.tif/info.json HTTP/1.1\r\nHost: iiif.test\r\nUser-Agent: slow\r\n\r\n"


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def get(port: int, path: str, timeout: float = 10.0) -> float:
    """Seconds for one GET on a fresh connection; raises on failure."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: iiif.test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(data[:80])
    return time.perf_counter() - started


def measure(port: int, seconds: float, pause: float = 0.02) -> tuple[float, float, int, int]:
    """p50, p99, failures and count of GETs made one after another for ``seconds``."""
    times: list[float] = []
    failures = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        try:
            times.append(get(port, TILE))
        except OSError:
            failures += 1
        time.sleep(pause)
    if not times:
        return float("inf"), float("inf"), failures, failures
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], failures, len(times) + failures


async def _hold(port: int, kind: str, drip: float, closed: list[int], stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        try:
            sent = 0
            while not stop.is_set():
                if kind == "slowloris":
                    writer.write(HEAD[sent % (len(HEAD) - 4) : sent % (len(HEAD) - 4) + 1])
                    sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=drip)
                except TimeoutError:
                    continue
                if not data or reader.at_eof():
                    closed[0] += 1
                    break
                await reader.read()  # an answer (408): the server closes next
                closed[0] += 1
                break
        except OSError:
            closed[0] += 1
        finally:
            writer.close()


def attack(
    port: int,
    kind: str,
    sockets: int,
    drip: float,
    stop: multiprocessing.synchronize.Event,
    result: multiprocessing.Queue[int],
) -> None:
    raise_fd_limit()
    closed = [0]

    async def main() -> None:
        await asyncio.gather(*(_hold(port, kind, drip, closed, stop) for _ in range(sockets)))

    asyncio.run(main())
    result.put(closed[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", default="asgi", choices=["asgi", "gthread"])
    parser.add_argument("--workers", type=int, default=0, help="0: the server's default")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--drip", type=float, default=5.0, help="seconds between a slowloris socket's bytes")
    parser.add_argument("--seconds", type=float, default=25.0, help="of measuring, per phase")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds the sockets are opened before measuring")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--nofile", type=int, default=0, help="the server's soft fd limit (systemd: 1024)")
    args = parser.parse_args()
    if args.nofile:  # inherited by the server (the attackers raise their own)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    else:
        raise_fd_limit()
    import pyvips

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        root.mkdir()
        pyvips.Image.xyz(2048, 2048).cast("uchar").tiffsave(
            str(root / "scan.tif"), tile=True, pyramid=True, compression="jpeg", tile_width=256, tile_height=256
        )
        env = {"IIIF_SERVER_SERVER_WORKER": args.worker, "IIIF_SERVER_SERVER_ACCESS_LOG": "off"}
        env.update(dict(item.split("=", 1) for item in args.env))
        port = free_port()
        command = ["serve", "--images", str(root)] + (["--workers", str(args.workers)] if args.workers else [])
        with running_server(command, port, env, log=Path(folder) / "server.log"):
            for _ in range(50):  # warm every worker's caches
                get(port, TILE)
            p50, p99, failed, made = measure(port, args.seconds)
            print(f"{args.worker} unloaded: p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  failures {failed}/{made}")
            for kind in ("slowloris", "idle"):
                result: multiprocessing.Queue[int] = multiprocessing.Queue()
                stop = multiprocessing.Event()
                attacker = multiprocessing.Process(
                    target=attack, args=(port, kind, args.sockets, args.drip, stop, result)
                )
                attacker.start()
                time.sleep(args.settle)
                p50, p99, failed, made = measure(port, args.seconds)
                stop.set()
                closed = result.get(timeout=args.drip + 30)
                attacker.join(10)
                print(
                    f"{args.worker} {args.sockets} {kind}: p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  "
                    f"failures {failed}/{made}; attack sockets closed by the server: {closed}"
                )
                time.sleep(2)


if __name__ == "__main__":
    main()
