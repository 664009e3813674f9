"""Ingest: raw scans -> pyramidal TIFF access masters under the image root, with a fixity record."""
