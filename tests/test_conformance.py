"""The official IIIF Image API validator, level 2, against the production server (3.0 and 2.x)."""

from __future__ import annotations

import pytest

from iiif_server.check import run_check


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_validator_level_2_passes_for_3_0_and_2_0(worker: str) -> None:
    lines: list[str] = []
    failed = run_check(("3.0", "2.0"), level=2, echo=lines.append, worker=worker)
    assert failed == 0, "\n".join(lines)
    assert lines[0].startswith("Image API 3.0 level 2: 33 passed, 0 failed")
    assert lines[1].startswith("Image API 2.0 level 2: 30 passed, 0 failed")
