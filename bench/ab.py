"""Before/after: two installs of our server, side by side, on the public hot path (bench/README.md).

::

    .venv/bin/python bench/ab.py --baseline OLD/.venv/bin/iiif-server [--candidate NEW/.venv/bin/iiif-server] \
        [--rounds 5] [--duration 8] [--only tiles-c16,hot-tile,info]

``bench/run.py`` compares us with iipsrv; a change that must not slow the public path (issue 12:
"within 5 % of today's throughput") needs a finer comparison than two such runs minutes apart on a
noisy machine. So both servers run at once, on the same images and defaults, and each round loads
one, then the other (alternating which goes first), for every scenario: drift hits both alike.
The report gives each server's median req/s over the rounds and the median of the per-round
ratios candidate/baseline, with their spread; and, steadier than throughput on a shared machine,
the server's own CPU time per request (user + system, its whole process group, from /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import run  # bench/run.py: servers, scenarios, wrk

DEFAULT_SCENARIOS = "tiles-c16,hot-tile,info"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the iiif-server entry point before the change")
    parser.add_argument("--candidate", type=Path, default=run.our_binary(), help="after (default: this venv's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    parser.add_argument("--only", default=DEFAULT_SCENARIOS, help=f"scenarios (default {DEFAULT_SCENARIOS})")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    scenarios = [scenario for scenario in run.SCENARIOS if scenario.name in wanted and not scenario.distinct]
    if not scenarios or args.candidate is None or not args.baseline.exists():
        parser.error("nothing to compare: check --only, --baseline and --candidate")
    run.become_subreaper()
    run.ensure_images()
    results: dict[str, dict[str, list[float]]] = {s.name: {"baseline": [], "candidate": []} for s in scenarios}
    cpu: dict[str, dict[str, list[float]]] = {s.name: {"baseline": [], "candidate": []} for s in scenarios}
    groups: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="iiif-ab-") as tmp, contextlib.ExitStack() as stack:
        servers = []
        for name, binary in (("baseline", args.baseline), ("candidate", args.candidate)):
            workdir = Path(tmp) / name
            workdir.mkdir()
            server, proc = stack.enter_context(run.our_server(workdir, binary, None))
            servers.append(replace(server, name=name))
            groups[name] = proc.pid  # started in a session of its own: the group of every worker
        problems = [problem for server in servers for problem in run.preflight(server, scenarios)]
        if problems:
            print("!!! wrong answers before any load:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        for index in range(args.rounds):
            order = servers if index % 2 == 0 else servers[::-1]
            for scenario in scenarios:
                for server in order:
                    seed = run.scenario_seed(scenario) + index
                    run.run_wrk(server, scenario, args.warmup, seed + 1000)
                    before = group_ticks(groups[server.name])
                    result = run.run_wrk(server, scenario, args.duration, seed)
                    used = (group_ticks(groups[server.name]) - before) / os.sysconf("SC_CLK_TCK")
                    cpu[scenario.name][server.name].append(used / max(result.requests, 1) * 1e6)
                    if result.errors:
                        print(f"!!! {server.name} {scenario.name}: {result.error_text()}", file=sys.stderr)
                        return 2
                    results[scenario.name][server.name].append(result.rps)
            print(f"round {index + 1}/{args.rounds} done", flush=True)
    print(report(scenarios, results, cpu, args))
    return 0


def group_ticks(group: int) -> int:
    """CPU clock ticks used so far by the live processes of one process group."""
    return sum(ticks for pgid, ticks in run.cpu_ticks().values() if pgid == group)


def report(
    scenarios: list[run.Scenario],
    results: dict[str, dict[str, list[float]]],
    cpu: dict[str, dict[str, list[float]]],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"{args.rounds} rounds of {args.duration} s per server and scenario, alternating; baseline {args.baseline},"
        f" candidate {args.candidate}",
        "",
        "| scenario | baseline req/s (median) | candidate req/s (median) | candidate/baseline, median of rounds"
        " | range of rounds | server CPU µs/request, baseline → candidate (median) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for scenario in scenarios:
        base, cand = results[scenario.name]["baseline"], results[scenario.name]["candidate"]
        ratios = [c / b for b, c in zip(base, cand, strict=True)]
        lines.append(
            f"| {scenario.label} | {statistics.median(base):,.0f} | {statistics.median(cand):,.0f} | "
            f"**{statistics.median(ratios):.3f}** | {min(ratios):.3f}–{max(ratios):.3f} | "
            f"{statistics.median(cpu[scenario.name]['baseline']):.0f} → "
            f"{statistics.median(cpu[scenario.name]['candidate']):.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
