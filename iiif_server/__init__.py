"""iiif_server: an IIIF Image (3.0, 2.1) and Presentation server for heritage collections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]

if TYPE_CHECKING:
    from .app import create_app


def __getattr__(name: str) -> Any:
    """``create_app`` on first use: ingest workers and the CLI need not import Flask and the rest."""
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
