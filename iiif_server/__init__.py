"""iiif_server: an IIIF Image (3.0, 2.1) and Presentation server for heritage collections."""

from __future__ import annotations

__version__ = "0.1.0"

from .app import create_app

__all__ = ["__version__", "create_app"]
