"""bench/attack.py keeps working: four cheap scenarios of ``--quick`` against a real server, end to end.

The probe's verdicts depend on the issue-11 fixes, so this asserts the tool (a table, a JSON file with
figures for every scenario, no timeouts of its own, nothing left running), plus what holds today and must
keep holding: traversal attempts read nothing outside the root, and hostile files (a PNG or JPEG declaring
billions of pixels, a truncated pyramid, tile offsets past the end) get quick 4xx answers, never a 5xx.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ATTACK = Path(__file__).resolve().parent.parent / "bench" / "attack.py"


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (here: the test's own temp folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.slow
def test_quick_protocol_fuzz_admin_and_bomb_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "attack.json"
    images = tmp_path / "images"
    args = ["--quick", "--only", "protocol,fuzz,admin,bomb", "--images", str(images), "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(ATTACK), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a target missed (the table says which)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1")]
    assert [row.split(" | ")[1] for row in rows] == ["protocol", "fuzz", "admin", "bomb"], done.stdout
    report = json.loads(out.read_text())
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == {"protocol", "fuzz", "admin", "bomb"}
    for scenario in scenarios.values():
        assert scenario["figure"] and not scenario["figure"].startswith(("timeout", "error", "server")), scenario
        assert scenario["passed"] in (True, False)
        assert (scenario["passed"] is True) == ("pass" in next(r for r in rows if scenario["name"] in r))

    protocol = scenarios["protocol"]["details"]
    assert set(protocol) == {"bad request line", "20 KB URL", "64 KB of headers"}
    for case in protocol.values():  # the server answered each with some HTTP status: the tool parsed it
        assert 200 <= case["status"] < 600 and case["content_type"], case

    fuzz = scenarios["fuzz"]["details"]
    assert sum(fuzz["statuses"].values()) == 120  # every fuzzed URL asked and answered or counted
    assert fuzz["leaked_bytes"] == 0 and 200 not in fuzz["traversal_statuses"].values()

    admin = scenarios["admin"]["details"]["statuses"]
    assert len(admin) == 50 and set(admin) <= {401, 429}, admin  # the token was set: never 404

    bomb = scenarios["bomb"]["details"]
    assert len(bomb["answers"]) == 6, bomb  # every hostile file was made and asked
    for name, answers in bomb["answers"].items():
        statuses = {a["request"]: a["status"] for a in answers if "status" in a}
        assert set(statuses) == {"info.json", "full/max", "tile"}, (name, answers)
        assert statuses["info.json"] in (200, 422), (name, answers)  # a header may be readable
        assert 400 <= statuses["full/max"] < 500 and 400 <= statuses["tile"] < 500, (name, answers)  # never decoded
    assert bomb["after"] == {"info_status": 200, "tile_status": 200}  # the server still serves
    assert bomb["tracebacks_logged"] == 0

    deadline = time.monotonic() + 10  # every server the tool started is gone (they run under the temp root)
    while processes_mentioning(str(images)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_mentioning(str(images))
