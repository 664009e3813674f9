"""Headless Chromium for the viewer tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright's own browser download is never used. A missing browser is a failure, not a
skip: CI installs it (``.ci/run``), and a silently skipped viewer test would hide a broken page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from iiif_server.check import free_port, running_server
from tests.conftest import demo_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does this). "
            "The viewer tests never use Playwright's own browser download.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no shared cache or cookies) and page per test, closed afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def demo_site(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``iiif-server demo`` (gunicorn, two workers) on the session's demo images, for the browser
    tests that only read it (catalogue, embeds, viewer, oEmbed): started once, not once per module."""
    env = demo_env(demo_root, tmp_path_factory.mktemp("demo-site-state"))
    with running_server(["demo", "--workers", "2"], free_port(), env=env) as base:
        yield base
