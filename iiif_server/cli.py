"""The ``iiif-server`` command: serve, demo, check, users, access, and the rest below.

This process becomes gunicorn's master, which forks the workers: it must never load
libvips (see ``serving``). Anything that needs pyvips before serving runs in
``serving.in_fresh_process``, and the modules imported here do not import pyvips.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .config import Settings, load_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from .access.accounts import Accounts

#: The demo collection shipped in the package: its export (and vocabulary) beside each other.
DEMO_COLLECTION = Path(__file__).resolve().parent / "demo_collection"
DEMO_EXPORT = DEMO_COLLECTION / "collection.csv"
#: The account `iiif-server demo` makes (never `serve`): it may see the demo's restricted images.
DEMO_ACCOUNT = "demo-researcher"
DEMO_LEVELS = ("restricted",)


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
    if settings.images.source == "file" and not Path(settings.images.root).is_dir():
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

    settings = _demo_settings(_settings(config, {"server": {"host": host, "port": port, "workers": workers}}))
    _announce(settings, demo=True)
    _demo_account(settings)
    run(settings)


def _demo_settings(settings: Settings) -> Settings:
    """The demo's images, collection and state (change history, accounts): never a museum's."""
    state = settings.demo.state_path()
    return settings.replace(
        images={"root": settings.demo.root},
        manifests={"source": DEMO_EXPORT, "state_dir": state},
        access={"state_dir": str(state)},
    )


def _demo_account(settings: Settings) -> None:
    """On the demo's first run: an account for its restricted images, its password printed this once."""
    from .access.accounts import accounts_for

    accounts = accounts_for(settings)
    if accounts.get(DEMO_ACCOUNT) is not None:
        return
    password = secrets.token_urlsafe(12)
    accounts.add(DEMO_ACCOUNT, password, DEMO_LEVELS, "Demo researcher (demo only)")
    click.echo(
        f"demo account (demo only; the password is shown this once, reset it with "
        f"`iiif-server users passwd {DEMO_ACCOUNT} --demo`): {DEMO_ACCOUNT} / {password}"
    )


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

    Masters go under the image root, or into [s3]'s bucket with [images] source = "s3".
    Exits 1 if any file failed, 2 if --into is outside the image root or the bucket's prefix, or
    the source is read-only (nothing is done then);
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

    PATH is under the image root (relative to it, or absolute), or with [images] source = "s3" a
    folder under the bucket's prefix (every object is read back). Exits 1 if a master is missing or
    altered, or if nothing matched; 2 if PATH is outside the root or the source is read-only.
    """
    from .ingest.report import run_verify

    settings = _settings(config, {"images": {"root": Path(images).resolve() if images else None}})
    sys.exit(1 if run_verify(settings, path, as_json, echo=click.echo) else 0)


_users_options = [
    click.option("--config", type=click.Path(dir_okay=False), help="config.toml to read (default: ./config.toml)."),
    click.option("--demo", is_flag=True, help="The accounts of `iiif-server demo`, not [access] state_dir's."),
]


def users_options(func: Any) -> Any:
    for option in reversed(_users_options):
        func = option(func)
    return func


def _accounts(config: str | None, demo: bool) -> Accounts:
    from .access.accounts import accounts_for

    settings = _settings(config, {})
    return accounts_for(_demo_settings(settings) if demo else settings)


def _new_password(from_stdin: bool) -> str:
    """From a hidden prompt, typed twice; or the first line of stdin. Never from an argument (ps shows those)."""
    from .access.accounts import check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return check_password(password)


@main.group()
def users() -> None:
    """Manage the local accounts that may log in (/auth/login) to see restricted images.

    Exits 1 with a one-line error if a name, level, date or password is invalid, or the account
    does (not) exist. Passwords are read from a prompt or with --password-stdin, and are never shown.
    """


@users.command("add")
@click.argument("username")
@click.option("--levels", required=True, help="Access levels it may see, comma-separated, e.g. restricted.")
@click.option("--expires", help="Last day the account works, YYYY-MM-DD (default: never).")
@click.option("--name", "display_name", default="", help="Name shown on the login page (default: USERNAME).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (for scripts).")
@users_options
def users_add(
    username: str,
    levels: str,
    expires: str | None,
    display_name: str,
    password_stdin: bool,
    config: str | None,
    demo: bool,
) -> None:
    """Create an account."""
    from .access.accounts import check_username, parse_expiry, parse_levels

    with _account_errors():
        check_username(username)
        parsed = parse_levels(levels), parse_expiry(expires) if expires else None
        accounts = _accounts(config, demo)
        if accounts.get(username) is not None:
            raise click.ClickException(f"an account named {username!r} exists already (iiif-server users passwd)")
        account = accounts.add(username, _new_password(password_stdin), parsed[0], display_name, parsed[1])
    click.echo(f"added {account.username}: levels {','.join(account.levels)}" + _until(account.expires))


@users.command("remove")
@click.argument("username")
@users_options
def users_remove(username: str, config: str | None, demo: bool) -> None:
    """Delete an account; its sessions end at once."""
    with _account_errors():
        _accounts(config, demo).remove(username)
    click.echo(f"removed {username}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (for scripts).")
@users_options
def users_passwd(username: str, password_stdin: bool, config: str | None, demo: bool) -> None:
    """Set an account's password; its sessions end (whoever knew the old one is logged out)."""
    with _account_errors():
        accounts = _accounts(config, demo)
        if accounts.get(username) is None:
            raise click.ClickException(f"no account named {username!r}")
        accounts.set_password(username, _new_password(password_stdin))
    click.echo(f"password of {username} changed; its sessions ended")


@users.command("list")
@users_options
def users_list(config: str | None, demo: bool) -> None:
    """The accounts, their levels and expiry (never their password hashes)."""
    with _account_errors():
        accounts = _accounts(config, demo).all()
    if not accounts:
        click.echo("no accounts")
    rows = [("username", "name", "levels", "expires", "updated")] + [
        (a.username, a.display_name, ",".join(a.levels), a.expires.isoformat() if a.expires else "-", a.updated)
        for a in accounts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows if accounts else ():
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _until(expires: date | None) -> str:
    return f", until {expires.isoformat()}" if expires else ""


@contextlib.contextmanager
def _account_errors() -> Iterator[None]:
    from .access.accounts import AccountError

    try:
        yield
    except (AccountError, ConfigError) as err:
        raise click.ClickException(str(err)) from None


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
@click.option("--demo", is_flag=True, help="The audit log of `iiif-server demo`, not [access] state_dir's.")
def access_log(
    config: str | None, since: str | None, user: str | None, image: str | None, fmt: str, demo: bool
) -> None:
    """Print the full-resolution accesses to restricted images, oldest first.

    Exits 1 if nothing matched (an empty log included), 2 on a bad --since.
    """
    import sqlite3

    from .access.audit_report import run_log

    settings = _settings(config, {})
    if demo:
        settings = _demo_settings(settings)
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
    click.echo(f"the public catalogue at {url}/, operators' status at {url}/status")
    if demo:
        click.echo(f"try: {url}/search?q=trong+dong, a viewer to embed: {url}/embed/KH-HV-0101 (docs/website.md)")
