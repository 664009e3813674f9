"""Accessibility audits with axe-core (vendored in tests/web/axe/) in a Playwright page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "axe" / "axe.min.js"
SERIOUS = ("serious", "critical")


def violations(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations of the page as it is now, of the given impacts.

    Each: ``{"id", "impact", "help", "nodes": [target selectors]}``, so a failing assertion names them.
    """
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in found if v["impact"] in impacts]
