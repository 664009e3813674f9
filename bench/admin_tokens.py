"""How fast can one address guess the admin token? (issue 11)

    .venv/bin/python bench/admin_tokens.py [--seconds 10] [--clients 8] [--workers 2]

Runs ``iiif-server serve`` on 127.0.0.1 with an admin token, then ``--clients`` keep-alive
connections POST /admin/cache/purge with wrong tokens for ``--seconds``, and prints how many
guesses were checked (401) and how many refused unchecked (429), per second, and what that
means for trying a million tokens. Uses only 127.0.0.1; the server's images are this repo's sample.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from iiif_server.check import free_port, running_server  # noqa: E402

IMAGES = BENCH.parent / "iiif_server" / "data"


def guess(base: str, clients: int, seconds: float) -> Counter[int]:
    port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + seconds
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        number = 0
        while time.monotonic() < deadline:
            connection.request("POST", "/admin/cache/purge", headers={"Authorization": f"Bearer guess-{slot}-{number}"})
            response = connection.getresponse()
            response.read()
            number += 1
            with lock:
                statuses[response.status] += 1
        connection.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    env = {"IIIF_SERVER_ADMIN_TOKEN": "bench-token-not-guessable", "IIIF_SERVER_SERVER_ACCESS_LOG": "off"}
    server = ["serve", "--images", str(IMAGES), "--workers", str(args.workers)]
    with running_server(server, free_port(), env) as base:
        statuses = guess(base, args.clients, args.seconds)
    checked = statuses[401] / args.seconds
    print(f"{args.clients} clients, {args.seconds:g} s, {args.workers} workers: {dict(statuses)}")
    print(f"guesses checked: {checked:.1f}/s; refused unchecked (429): {statuses[429] / args.seconds:.0f}/s")
    if statuses[429]:  # throttled: a short run sees the first burst; the lasting rate is the policy's
        checked = 5 * args.workers / 60  # [admin] max_failures per block_seconds, per worker (defaults)
        print(f"lasting rate at most {checked * 60:.0f} guesses/min (5 per 60 s per worker)")
    print(f"a million guesses: {1e6 / checked / 3600:.1f} hours")


if __name__ == "__main__":
    main()
