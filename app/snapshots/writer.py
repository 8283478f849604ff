"""Group commit for ingest: one thread per API process does all of ingest's database work, and
stores every request waiting for it in one transaction.

Why: each request doing its own transaction in its own thread cost a thread hop, a commit and
SQLAlchemy's per-transaction work per snapshot, and under load dozens of threads contended for
the GIL and Postgres, so the CPU per snapshot rose with the rate until 500/s collapsed to
~370/s. Here the work waiting is taken together: at low rates a batch is one request, and as
the rate rises batches grow and each snapshot costs less (in-process: 0.44-0.50 ms of API CPU
per snapshot alone, 0.27-0.30 ms four to a transaction).

Every request is answered only after the transaction holding it commits, so a 201 still means
stored. If the transaction fails because the database is unreachable, every request in it gets
that error (the API answers 503 and Studio retries); any other failure is retried one request
per transaction, so one bad request cannot fail the others.

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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from app.database import UNAVAILABLE_ERRORS, get_engine

log = logging.getLogger(__name__)


@dataclass
class _Job:
    function: Callable[..., Any]  # function(connection, *args)
    args: tuple
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class TransactionBatcher:
    """Made at the first ingest request of a process (views._batcher), with its thread."""

    IDLE_RELEASE_S = 1.0  # hand the connection back after this long without a request

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._connection: Connection | None = None  # only this class's thread uses it
        self.transactions = 0  # committed or not; for tests and curiosity
        threading.Thread(target=self._serve, name="ingest-writer", daemon=True).start()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """function(connection, *args) in a transaction shared with whatever else is waiting;
        returns its result once that transaction has committed."""
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
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._run_batch(batch)
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
            except BaseException as error:  # a bug here must not leave requests waiting forever
                log.exception("ingest writer failed")
                outcomes = [(False, error)] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, outcome)
                except RuntimeError:  # its event loop has closed: nobody is waiting
                    pass

    def _run_batch(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """(True, result) or (False, exception) for each job."""
        self.transactions += 1
        try:
            connection = self._checked_out_connection()
            with connection.begin():
                return [(True, job.function(connection, *job.args)) for job in batch]
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
            self._connection = engine.connect()
        return self._connection

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # a broken connection may fail to close; the pool has let go of it
                log.debug("closing the ingest connection failed", exc_info=True)


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.cancelled():  # the client went away; what it sent is stored all the same
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
