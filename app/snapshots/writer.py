"""Ingest's database work: one thread per API process does all of it, on one connection in
autocommit. A request waiting alone is stored in autocommit; requests waiting together are
stored in one transaction (group commit).

Why one thread: each request doing its own transaction in its own thread cost a thread hop per
request, and under load dozens of threads contended for the GIL and Postgres, so the CPU per
snapshot rose with the rate until 500/s collapsed to ~370/s.

Why autocommit alone: a new snapshot is one INSERT, so it needs no transaction of its own; in
autocommit it is one round trip to Postgres where BEGIN, INSERT and COMMIT were three. What
must be atomic is made so where it is written (a snapshot and its corrections:
database.atomic). Why group commit together: one commit for many requests, so when commits
are slow (a slower disk, a busier server) requests queue, batches grow and the commits per
snapshot fall, rather than throughput being capped at one commit per request.

Every request is answered only once what it wrote is committed, so a 201 still means stored.
If the database is unreachable, the request meets that error (the API answers 503 and Studio
retries), and so does every request waiting, at once, rather than each waiting for the
database in turn. Any other failure in a batch is retried one request at a time, so one bad
request cannot fail the others.

The thread keeps its connection while requests keep coming (a pool check-out and check-in per
transaction cost ~0.1 ms of CPU, measured) and hands it back to the pool after a second without
one, so a connection that sat idle is checked by the pool's ping (database.PING_IF_IDLE_S)
before it is used again.
"""

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from app.database import UNAVAILABLE_ERRORS, atomic, get_engine

log = logging.getLogger(__name__)


@dataclass
class _Job:
    function: Callable[..., Any]  # function(connection, *args)
    args: tuple
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class IngestWriter:
    """Made at the first ingest request of a process (views._writer), with its thread."""

    IDLE_RELEASE_S = 1.0  # hand the connection back after this long without a request

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._connection: Connection | None = None  # only this class's thread uses it
        self.group_commits = 0  # batches of several requests in one transaction; for tests
        threading.Thread(target=self._serve, name="ingest-writer", daemon=True).start()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """function(connection, *args) on the writer's connection; returns its result once
        what it wrote is committed."""
        loop = asyncio.get_running_loop()
        job = _Job(function, args, loop, loop.create_future())
        self._jobs.put(job)
        return await job.future

    def _serve(self) -> None:
        while True:
            try:
                batch = [self._jobs.get(timeout=self.IDLE_RELEASE_S)]
            except queue.Empty:
                self._release_connection()
                batch = [self._jobs.get()]
            batch += self._waiting(self.max_batch - 1)
            try:
                outcomes = self._run_batch(batch)
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
            except BaseException as error:  # a bug here must not leave requests waiting forever
                log.exception("ingest writer failed")
                outcomes = [(False, error)] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                _answer(job, outcome)
            unavailable = next((o for ok, o in outcomes if not ok and isinstance(o, UNAVAILABLE_ERRORS)), None)
            if unavailable is not None:  # the database is gone: those waiting get the same answer now
                for job in self._waiting():
                    _answer(job, (False, unavailable))

    def _waiting(self, limit: int | None = None) -> list[_Job]:
        jobs: list[_Job] = []
        while limit is None or len(jobs) < limit:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _run_batch(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """(True, result) or (False, exception) for each job."""
        try:
            connection = self._checked_out_connection()
            # SQLAlchemy's begin() is bookkeeping only here (no BEGIN in autocommit); atomic()
            # sends BEGIN and COMMIT around a batch of several.
            with connection.begin(), (atomic(connection) if len(batch) > 1 else nullcontext()):
                outcomes = [(True, job.function(connection, *job.args)) for job in batch]
            self.group_commits += len(batch) > 1
            return outcomes
        except UNAVAILABLE_ERRORS as error:  # (a deadlock is one too: rare, and retried by Studio)
            self._release_connection()  # the pool discards it if it is broken
            return [(False, error)] * len(batch)
        except BaseException as error:  # whatever it is, it goes to the request, not this thread
            self._release_connection()
            if len(batch) == 1:
                return [(False, error)]
            log.warning("a batch of %d failed (%s); storing them one by one", len(batch), error)
            return [self._run_batch([job])[0] for job in batch]

    def _checked_out_connection(self) -> Connection:
        engine = get_engine()
        if self._connection is not None and self._connection.engine is not engine:  # settings changed (tests)
            self._release_connection()
        if self._connection is None:
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # a broken connection may fail to close; the pool has let go of it
                log.debug("closing the ingest connection failed", exc_info=True)


def _answer(job: _Job, outcome: tuple[bool, Any]) -> None:
    try:
        job.loop.call_soon_threadsafe(_settle, job.future, outcome)
    except RuntimeError:  # its event loop has closed: nobody is waiting
        pass


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.cancelled():  # the client went away; what it sent is stored all the same
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
