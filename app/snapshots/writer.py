"""Ingest's database work: one thread per API process does all of it, on one connection in
autocommit. A request waiting alone is stored in autocommit; requests waiting together are
stored in one transaction (group commit).

Why one thread (docs/decisions/ingest-writer-thread.md): with a transaction per request on its
own thread, dozens of threads contended for the GIL and Postgres under load, and CPU per
snapshot rose with the rate.

Why autocommit alone: a new snapshot is one INSERT, so it needs no transaction of its own; in
autocommit it is one round trip to Postgres where BEGIN, INSERT and COMMIT were three. What
must be atomic is made so where it is written (a snapshot and its corrections:
app/db/writes.py: atomic). Why group commit together: one commit for many requests, so when commits
are slow (a slower disk, a busier server) requests queue, batches grow and the commits per
snapshot fall, rather than throughput being capped at one commit per request.

Every request is answered only once what it wrote is committed, so a 201 still means stored.
If the database is unreachable, requests wait for it, up to `database_wait_s` each, the
writer trying again every OUTAGE_RETRY_S: Studio gives a snapshot 5 tries 2 s apart and keeps
at most 50 in its retry queue, so a restart of the database answered with 503s at once would
lose snapshots Studio cannot hold. A request still waiting at its deadline gets the error (the
API answers 503). At most `max_waiting` requests wait; more are refused at once
(IngestBacklogFull, 503), which bounds the memory they hold. Any other failure in a batch is
retried one request at a time, so one bad request cannot fail the others.

The thread keeps its connection while requests keep coming (a pool check-out and check-in per
transaction costs CPU on every request) and hands it back to the pool after a second without
one, so a connection that sat idle is checked by the pool's ping (app/db/engine.py: PING_IF_IDLE_S)
before it is used again.
"""

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from app.counters import INGEST_BATCH, INGEST_COMMIT_SECONDS
from app.db.engine import UNAVAILABLE_ERRORS, get_engine
from app.db.writes import atomic

log = logging.getLogger(__name__)


@dataclass
class _Job:
    function: Callable[..., Any]  # function(connection, *args)
    args: tuple
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)
    deadline: float  # time.monotonic() after which an unreachable database is the answer


class IngestBacklogFull(Exception):
    """Too many requests already wait for the database: answered 503 at once."""


class IngestWriter:
    """Made at the first ingest request of a process (views._writer), with its thread."""

    IDLE_RELEASE_S = 1.0  # hand the connection back after this long without a request
    OUTAGE_RETRY_S = 0.5  # while the database is unreachable, try again this often

    def __init__(self, max_batch: int, database_wait_s: float = 15.0, max_waiting: int = 1000) -> None:
        self.max_batch = max_batch
        self.database_wait_s = database_wait_s
        self.max_waiting = max_waiting
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._connection: Connection | None = None  # only this class's thread uses it
        self._unavailable: BaseException | None = None  # the last attempt's error, while it lasts
        self._unavailable_at = 0.0  # when that attempt failed (time.monotonic())
        self.group_commits = 0  # batches of several requests in one transaction; for tests
        threading.Thread(target=self._serve, name="ingest-writer", daemon=True).start()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """function(connection, *args) on the writer's connection; returns its result once
        what it wrote is committed."""
        if self._jobs.qsize() >= self.max_waiting:
            raise IngestBacklogFull(f"{self.max_waiting} requests are already waiting for the database")
        loop = asyncio.get_running_loop()
        job = _Job(function, args, loop, loop.create_future(), time.monotonic() + self.database_wait_s)
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
            self._store(batch)

    def _store(self, batch: list[_Job]) -> None:
        """Runs a batch and answers each job; jobs that met an unreachable database are tried
        again until their deadline."""
        while batch:
            if self._unavailable is not None and time.monotonic() - self._unavailable_at < 2 * self.OUTAGE_RETRY_S:
                # Found down a moment ago: jobs past their deadline get that answer without a try.
                batch = self._answer_expired(batch, self._unavailable)
                if not batch:
                    return
            started = time.perf_counter()
            try:
                outcomes = self._run_batch(batch)
                INGEST_BATCH.observe(len(batch))
                INGEST_COMMIT_SECONDS.observe(time.perf_counter() - started)
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
            except BaseException as error:  # a bug here must not leave requests waiting forever
                log.exception("ingest writer failed")
                outcomes = [(False, error)] * len(batch)
            waiting = []
            for job, outcome in zip(batch, outcomes, strict=True):
                ok, value = outcome
                if not ok and isinstance(value, UNAVAILABLE_ERRORS) and time.monotonic() < job.deadline:
                    waiting.append(job)
                else:
                    _answer(job, outcome)
            if waiting and self._unavailable is None:
                log.warning(
                    "database unreachable; %d+ requests wait for it (up to %g s each)", len(waiting), self.database_wait_s
                )
            self._unavailable = next((v for ok, v in outcomes if not ok and isinstance(v, UNAVAILABLE_ERRORS)), None)
            self._unavailable_at = time.monotonic()
            if waiting:
                time.sleep(self.OUTAGE_RETRY_S)
                waiting = self._answer_expired(waiting, self._unavailable)
            batch = waiting

    @staticmethod
    def _answer_expired(batch: list[_Job], error: BaseException) -> list[_Job]:
        """Answers the jobs past their deadline with `error`; returns the others."""
        now = time.monotonic()
        for job in batch:
            if now >= job.deadline:
                _answer(job, (False, error))
        return [job for job in batch if now < job.deadline]

    def _waiting(self, limit: int) -> list[_Job]:
        jobs: list[_Job] = []
        while len(jobs) < limit:
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
            with connection.begin(), atomic(connection) if len(batch) > 1 else nullcontext():
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
