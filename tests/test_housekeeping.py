"""The suite cleans up after itself: the test command, Redis, temporary files, the repository tree, docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.cache.conftest import _answers, free_port
from tests.repo_guard import snapshot, written

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def inner_pytest(tmp_path: Path, test_source: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """pytest with the project's settings on one test file, its temporary files under ``tmp_path``."""
    (tmp_path / "inner").mkdir(exist_ok=True)
    (tmp_path / "inner" / "test_inner.py").write_text(test_source)
    env = {**os.environ, **environ, "PYTHONPATH": str(REPO), "PYTEST_DEBUG_TEMPROOT": str(tmp_path / "temproot")}
    (tmp_path / "temproot").mkdir(exist_ok=True)
    settings = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path / "inner"), "-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *settings, "test_inner.py"],
        cwd=tmp_path / "inner",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_runs_the_readme_test_command_which_installs_and_starts_redis() -> None:
    command = README.split("**Install the test dependencies and pass the tests:**", 1)[1].split("```sh\n")[1]
    command = command.split("\n```", 1)[0]
    assert "\n" not in command
    assert command in (REPO / ".ci" / "run").read_text().splitlines()
    assert command.count("redis-server") == 4  # checked, installed (twice: before and after apt-get update), started
    assert "redis-cli -h 127.0.0.1 -p 6379 ping" in command and "--port 6379" in command
    assert command.endswith(".venv/bin/pytest")


def test_the_redis_fixture_stops_the_redis_it_starts(tmp_path: Path) -> None:
    silent = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: the fixture must start its own
    result = inner_pytest(
        tmp_path,
        f"""
from pathlib import Path

import redis

import tests.cache.conftest as shared
from tests.cache.conftest import redis_url  # noqa: F401

shared.SHARED_URL = {silent!r}


def test_gets_a_private_redis(redis_url):
    assert redis_url != shared.SHARED_URL
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()
    Path({str(tmp_path / "url")!r}).write_text(redis_url)
""",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    url = (tmp_path / "url").read_text()
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert not _answers(url)
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _is_redis_on(p, port)]
    assert left == [], "the session's redis-server is still running"


def _is_redis_on(cmdline: Path, port: str) -> bool:
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"redis-server" in w for w in words[:1]) and port.encode() in words


def test_passing_tests_leave_nothing_in_the_temp_folder(tmp_path: Path) -> None:
    source = """
import os


def test_passes(tmp_path):
    (tmp_path / "passed.bin").write_bytes(bytes(1 << 20))


def test_fails_when_asked(tmp_path):
    (tmp_path / "failed.bin").write_bytes(bytes(1 << 20))
    assert "INNER_FAIL" not in os.environ
"""
    passing = inner_pytest(tmp_path, source)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert [p for p in (tmp_path / "temproot").rglob("*") if p.is_file()] == []
    failing = inner_pytest(tmp_path, source, INNER_FAIL="1")
    assert failing.returncode == 1
    kept = [p.name for p in (tmp_path / "temproot").rglob("*") if p.is_file()]
    assert kept == ["failed.bin"]  # what the failed test needs, and nothing of the passing ones


def test_the_repository_guard_sees_every_write(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "cache").mkdir(parents=True)
    (repo / ".gitignore").write_text("/cache/\n.pytest_cache/\n")
    (repo / "tracked.txt").write_text("v1")
    (repo / "cache" / "old").write_text("there before")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=repo, check=True)
    before = snapshot(repo)
    assert before is not None
    (repo / "cache" / "new").write_text("a server's disk cache")  # inside an ignored folder that existed
    (repo / "state.sqlite").write_text("untracked")
    (repo / "tracked.txt").write_text("v2")
    (repo / ".pytest_cache").mkdir()
    (repo / ".pytest_cache" / "x").write_text("a tool's cache: not the tests' doing")
    after = snapshot(repo)
    assert after is not None
    assert written(before, after) == ["cache/new", "state.sqlite", "tracked.txt"]
    assert snapshot(tmp_path / "not-a-repo") is None


def test_the_readme_points_to_documents_that_exist() -> None:
    named = set(re.findall(r"`(docs/[^`]*)`", README))
    assert "docs/access.md" in named
    for path in named:
        assert (REPO / path).is_file(), f"README points to {path}, which is not a document"
    access = (REPO / "docs" / "access.md").read_text()
    assert "not yet" in access and "issue 12" in access
