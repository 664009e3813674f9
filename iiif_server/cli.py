"""The ``iiif-server`` command: serve, demo, check, and the tools around them.

This process becomes gunicorn's master, which forks the workers: it must never load
libvips (see ``serving``). Anything that needs pyvips before serving runs in
``serving.in_fresh_process``, and the modules imported here do not import pyvips.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Settings, load_settings
from .errors import ConfigError

#: The demo collection shipped in the package: its export (and vocabulary) beside each other.
DEMO_COLLECTION = Path(__file__).resolve().parent / "demo_collection"
DEMO_EXPORT = DEMO_COLLECTION / "collection.csv"


def _settings(config: str | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    try:
        settings = load_settings(config)
        sections = {name: {k: v for k, v in values.items() if v is not None} for name, values in overrides.items()}
        return settings.replace(**{name: values for name, values in sections.items() if values})
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


_server_options = [
    click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml)."),
    click.option("--host", help="Address to listen on."),
    click.option("--port", type=int, help="Port to listen on."),
    click.option("--workers", type=int, help="Worker processes (0: two per CPU core)."),
]


def server_options(func: Any) -> Any:
    for option in reversed(_server_options):
        func = option(func)
    return func


@click.group()
@click.version_option(__version__, prog_name="iiif-server")
def main() -> None:
    """IIIF Image and Presentation server for heritage collections."""
    _configure_logging()


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips' INFO is a line per threadpool


@main.command()
@server_options
@click.option("--images", type=click.Path(file_okay=False), help="Image root: identifiers resolve under it only.")
def serve(config: str | None, host: str | None, port: int | None, workers: int | None, images: str | None) -> None:
    """Serve the image root over the IIIF Image API under gunicorn."""
    from .serving import serve as run

    settings = _settings(
        config,
        {
            "server": {"host": host, "port": port, "workers": workers},
            "images": {"root": Path(images).resolve() if images else None},
        },
    )
    if not Path(settings.images.root).is_dir():
        raise click.ClickException(f"image root {settings.images.root} is not a folder (set [images] root or --images)")
    _announce(settings, demo=False)
    run(settings)


@main.command()
@server_options
def demo(config: str | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Synthesise demo images on first run, then serve them with the demo collection's manifests.

    Works from any folder: the collection ships in the package; images and state go under [demo] root.
    """
    from .serving import serve as run

    settings = _settings(config, {"server": {"host": host, "port": port, "workers": workers}})
    settings = settings.replace(
        images={"root": settings.demo.root},
        manifests={"source": DEMO_EXPORT, "state_dir": settings.demo.state_path()},
        access={"state_dir": str(settings.demo.state_path())},
    )
    _announce(settings, demo=True)
    run(settings)


@main.command()
@click.option("--versions", default="3.0,2.0", show_default=True, help="Image API versions to validate.")
@click.option("--level", default=2, show_default=True, type=int)
@click.option("--worker", type=click.Choice(["gthread", "asgi"]), help="[server] worker to run (default: asgi).")
def check(versions: str, level: int, worker: str | None) -> None:
    """Run the official IIIF Image API validator against a temporary server."""
    from .check import run_check

    failed = run_check(tuple(v.strip() for v in versions.split(",")), level, echo=click.echo, worker=worker)
    sys.exit(1 if failed else 0)


@main.group()
def cache() -> None:
    """Manage the derivative cache."""


@cache.command()
@click.argument("identifier", required=False)
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
def purge(identifier: str | None, config: str | None) -> None:
    """Purge one image's cached derivatives (or everything) from disk or Redis.

    Running servers drop their in-memory copies within a second.
    """
    from .services import Services

    settings = _settings(config, {})
    count = Services(settings, memory_cache=False).caches.tiered.purge(identifier)
    click.echo(f"purged {count} entries" + (f" of {identifier!r}" if identifier else ""))


def _prepare(settings: Settings, demo: bool) -> None:
    """Before serving, in a spawned child (libvips must not start in gunicorn's master):
    synthesise the demo images that are missing, then build the manifests once."""
    _configure_logging()
    if demo:
        from .demo import build_demo_images

        made = build_demo_images(Path(settings.demo.root), progress=lambda name: click.echo(f"  made {name}"))
        click.echo(f"demo images in {settings.demo.root} ({len(made)} new)")
    _prime_manifests(settings)


def _prime_manifests(settings: Settings) -> None:
    """Build the manifests once before the workers start: their first builds then come from the cache."""
    if not settings.manifests.source.is_file():
        click.echo(f"no collection export at {settings.manifests.source}: no manifests published")
        return
    from .services import Services

    try:
        snapshot = Services(settings, memory_cache=False).catalogue.build()
    except ConfigError as err:
        click.echo(f"manifests not built: {err}", err=True)
        return
    click.echo(
        f"manifests: {snapshot.manifests} published, {len(snapshot.withheld)} withheld, "
        f"{len(snapshot.problems)} row(s) skipped (details: iiif-server manifests build)"
    )


@main.group()
def manifests() -> None:
    """Build and publish IIIF Presentation 3.0 manifests from the collection export."""


@manifests.command("build")
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
@click.option("--source", type=click.Path(dir_okay=False), help="Collection export (CSV or JSON) to build from.")
@click.option("--images", type=click.Path(file_okay=False), help="Image root the export's image paths are under.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Write the static tree (manifests, collections, changes)."
)
@click.option("--base-url", help="Public base URL of the static tree, e.g. https://iiif.example.org.")
@click.option("--validate", is_flag=True, help="Validate every document against the Presentation 3.0 JSON Schema.")
@click.option("--strict", is_flag=True, help="Exit 1 if any row was skipped (or any document is invalid).")
@click.option(
    "--force", is_flag=True, help="Publish the deletions even if over [manifests] max_delete_share would go at once."
)
def manifests_build(
    config: str | None,
    source: str | None,
    images: str | None,
    out: str | None,
    base_url: str | None,
    validate: bool,
    strict: bool,
    force: bool,
) -> None:
    """Build every manifest and collection, record changes for harvesters, print a summary.

    Rows with problems are listed with their row number and skipped; the rest still build.
    A build that would delete more than [manifests] max_delete_share of the published
    manifests is not published (exit 1) unless --force.
    """
    from .presentation.report import run_build

    settings = _settings(
        config,
        {
            "images": {"root": Path(images).resolve() if images else None},
            "manifests": {"source": Path(source).resolve() if source else None},
        },
    )
    base = (base_url or settings.server.public_base_url).rstrip("/")
    if out and not base.startswith(("http://", "https://")):
        raise click.ClickException("--out needs --base-url (or [server] public_base_url): ids are absolute URLs")
    try:
        failed = run_build(settings, Path(out) if out else None, base, validate, echo=click.echo, force=force)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    sys.exit(1 if strict and failed else 0)


@main.command()
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
@click.option("--images", type=click.Path(file_okay=False), help="Image root to put the masters under.")
@click.option("--into", default="", help="Folder under the image root, relative or absolute (layout below it is kept).")
@click.option("--workers", type=int, default=0, help="Conversion processes (0: [ingest] workers, else one per core).")
@click.option("--replace", is_flag=True, help="Replace masters made from other originals (the old ones are kept).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (progress goes to stderr).")
@click.option("--queue", "queue", is_flag=True, help="Enqueue one job per file on Redis for `iiif-server worker`.")
@click.option("--status", "show_status", is_flag=True, help="Show the ingest queue: waiting, running, failed.")
def ingest(
    sources: tuple[Path, ...],
    config: str | None,
    images: str | None,
    into: str,
    workers: int,
    replace: bool,
    as_json: bool,
    queue: bool,
    show_status: bool,
) -> None:
    """Convert scans (files or folder trees) into pyramidal TIFF masters, with a fixity record.

    Exits 1 if any file failed, 2 if --into is outside the image root (nothing is done then);
    rerunning skips what is done. With --queue, the files are converted by `iiif-server worker`
    processes on any machine that shares the storage.
    """
    from .ingest.report import run_ingest, run_queue, show_queue

    settings = _settings(config, {"images": {"root": Path(images).resolve() if images else None}})
    try:
        if show_status:
            show_queue(settings, as_json, echo=click.echo)
            return
        if not sources:
            raise click.UsageError("give the scans to ingest (files or folders), or --status")
        if queue:
            run_queue(settings, list(sources), into, replace, as_json, echo=click.echo)
            return
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    failed = run_ingest(settings, list(sources), into, replace, workers, as_json, echo=click.echo)
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
@click.option("--images", type=click.Path(file_okay=False), help="Image root to put the masters under.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(config: str | None, images: str | None, burst: bool) -> None:
    """Process queued ingest jobs (see `ingest --queue`); run one per core on any machine sharing the storage."""
    from .ingest.queue import work
    from .services import Services

    settings = _settings(config, {"images": {"root": Path(images).resolve() if images else None}})
    try:
        work(Services(settings, memory_cache=False), burst=burst)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


@main.command()
@click.argument("path", default="")
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
@click.option("--images", type=click.Path(file_okay=False), help="Image root whose masters to verify.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(path: str, config: str | None, images: str | None, as_json: bool) -> None:
    """Re-hash recorded masters (all, or those under PATH) and report every missing or altered one.

    PATH is under the image root (relative to it, or absolute). Exits 1 if a master is missing or
    altered, or if nothing matched; 2 if PATH is outside the root.
    """
    from .ingest.report import run_verify

    settings = _settings(config, {"images": {"root": Path(images).resolve() if images else None}})
    sys.exit(1 if run_verify(settings, path, as_json, echo=click.echo) else 0)


@main.group()
def access() -> None:
    """Access control of restricted images: the audit log."""


@access.command("log")
@click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml).")
@click.option(
    "--since", help="Only from then on: a UTC date or time (2026-11-01, 2026-11-01T08:30) or an age (7d, 12h, 30m)."
)
@click.option("--user", help="Only this account.")
@click.option("--image", help="Only this image identifier (as in the URL, decoded: hien-vat/KH-HV-0104-recto.tif).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def access_log(config: str | None, since: str | None, user: str | None, image: str | None, fmt: str) -> None:
    """Print the full-resolution accesses to restricted images, oldest first.

    Exits 1 if nothing matched (an empty log included), 2 on a bad --since.
    """
    import sqlite3

    from .access.audit_report import run_log

    settings = _settings(config, {})
    try:
        shown = run_log(settings, since, user, image, fmt, echo=click.echo)
    except sqlite3.Error as err:
        raise click.ClickException(f"cannot read the audit log: {err}") from None
    sys.exit(0 if shown else 1)


def _announce(settings: Settings, demo: bool) -> None:
    from .serving import in_fresh_process

    in_fresh_process(_prepare, settings, demo)
    url = settings.server.public_base_url or f"http://{settings.server.host}:{settings.server.port}"
    click.echo(f"serving {settings.images.root} at {url}/ (Image API 3.0: {url}/iiif/3/, 2.1: {url}/iiif/2/)")
