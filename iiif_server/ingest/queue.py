"""Ingest across machines on RQ: one Redis job per file, run by ``iiif-server worker`` wherever the storage is.

A job is the same ``batch.process`` the in-process pool runs, so results, refusals and idempotency
are the same: a job that runs twice (a retry, a re-enqueued batch) skips a master it already made.
Job ids are derived from the file and its master, so enqueueing a batch again does not queue what
is still waiting. Unexpected crashes (a worker killed, storage gone) are retried with backoff;
a file that cannot be converted is an outcome, not a crash, and is not retried.

Sources are given as absolute paths: every worker must see the scans at the same paths, and the
image root too (a shared mount) unless masters go to the bucket (``[images] source = "s3"``).
Each worker converts with its own ``[ingest]`` settings.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from ..config import Settings, load_settings
from ..errors import ConfigError
from ..services import Services
from .batch import FAILED, REPLACED, Job, process
from .destinations import destination_of
from .notify import notify, options_of

_WAITING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def connect(settings: Settings) -> tuple[Redis, Queue]:
    url = settings.ingest.queue_url or settings.cache.redis_url
    if not url:
        raise ConfigError("ingest --queue needs Redis: set [ingest] queue_url (or [cache] redis_url)")
    redis = Redis.from_url(url)
    return redis, Queue(settings.ingest.queue_name, connection=redis)


def job_id(job: Job) -> str:
    return "ingest-" + hashlib.sha1(f"{job.source}\0{job.identifier}".encode()).hexdigest()[:32]


def enqueue(settings: Settings, jobs: list[Job], replace: bool) -> tuple[int, int]:
    """Queue every job not already waiting; returns (queued, already waiting)."""
    redis, queue = connect(settings)
    queued = waiting = 0
    for job in jobs:
        identity = job_id(job)
        try:
            if RQJob.fetch(identity, connection=redis).get_status() in _WAITING:
                waiting += 1
                continue
        except NoSuchJobError:
            pass
        queue.enqueue(
            ingest_job,
            job.source,
            job.identifier,
            job.size,
            replace,
            job_id=identity,
            description=f"ingest {job.source} -> {job.identifier}",
            retry=Retry(max=3, interval=[10, 60, 300]),
            job_timeout=settings.ingest.job_timeout,
            result_ttl=7 * 86400,
            failure_ttl=30 * 86400,
        )
        queued += 1
    return queued, waiting


def ingest_job(source: str, identifier: str, size: int, replace: bool) -> dict[str, Any]:
    """What a worker runs for one file: the outcome as a dict (kept as the job's result).

    With the services of the worker that runs it (``work``): each machine converts with its own
    settings. A job run by a plain ``rq worker`` reads the settings as the CLI would.
    """
    services: Services = getattr(get_current_job(), "services", None) or Services(load_settings(), memory_cache=False)
    settings = services.settings
    outcome = process(Job(source, identifier, size), destination_of(settings), options_of(settings), replace)
    if outcome.status == REPLACED:
        notify(services, [identifier])
    return outcome.as_dict()


def work(services: Services, burst: bool = False) -> None:
    """Process jobs until stopped (or, with ``burst``, until the queue is empty).

    The worker's jobs carry its ``services`` (a job class of its own): the work-horse that runs
    each job is forked from this process and inherits them.
    """
    redis, queue = connect(services.settings)
    job_class = type("IngestJob", (RQJob,), {"services": services})
    Worker([queue], connection=redis, job_class=job_class).work(burst=burst, logging_level="INFO")


def status(settings: Settings) -> dict[str, Any]:
    """How many jobs wait, run, finished and crashed; the files that failed, with reasons."""
    redis, queue = connect(settings)
    finished = queue.finished_job_registry.get_job_ids()
    outcomes: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    for job in RQJob.fetch_many(finished, connection=redis):
        result = job.return_value() if job is not None else None
        if isinstance(result, dict):
            outcomes[str(result.get("status"))] += 1
            if result.get("status") == FAILED:
                failures.append({"source": str(result["source"]), "reason": str(result["reason"])})
    crashed = []
    for job in RQJob.fetch_many(queue.failed_job_registry.get_job_ids(), connection=redis):
        if job is not None:
            last = (job.exc_info or "").strip().splitlines()[-1:] or ["?"]
            crashed.append({"job": job.description or job.id, "error": last[0]})
    return {
        "queue": queue.name,
        "queued": queue.count,
        "running": queue.started_job_registry.count,
        "finished": len(finished),
        "outcomes": dict(outcomes),
        "failed_files": failures,
        "crashed": crashed,
    }
