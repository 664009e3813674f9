"""Which destination the settings name: the one place ``[images] source`` chooses where ingest writes.

Apart from ``masters`` (the files) and ``bucket`` (the bucket, which builds on ``masters``), so
neither imports the other both ways.
"""

from __future__ import annotations

from ..config import Settings
from .masters import Destination, NotWritable, ToFiles


def destination_of(settings: Settings) -> Destination:
    """Where ``[images] source`` says masters are; ``NotWritable`` for a partner's HTTP server."""
    if settings.images.source == "http":
        raise NotWritable('[images] source = "http" is a partner\'s read-only server: ingest and verify write '
                          'and check masters under [images] root or in [s3]\'s bucket')  # fmt: skip
    if settings.images.source == "s3":
        from ..image.s3 import s3_config
        from .bucket import ToBucket

        return ToBucket(s3_config(settings.s3))
    return ToFiles(str(settings.images.root))
