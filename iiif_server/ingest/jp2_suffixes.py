"""File suffixes of JPEG 2000 scans: known without importing the decoder (numpy, glymur)."""

SUFFIXES = (".jp2", ".j2k", ".jpx", ".jpf")
