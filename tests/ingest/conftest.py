"""The shared real Redis fixture, for the RQ queue tests."""

from tests.cache.conftest import redis_url  # noqa: F401  (a fixture, used by name)
