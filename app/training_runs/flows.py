"""Starting a run and making sure it reaches a worker: the one way in, for the API and the CLI.

The run row is the outbox. A run is committed as queued, then numbered and sent; a run whose
message never reaches a worker (the broker down at that moment, or a broker restart losing its
queue) is found by `redispatch_lost_runs`, which the API calls every `run_sweep_interval_s`:
a queued run that no worker has started `run_dispatch_timeout_s` after it was sent is sent
again, and after `run_max_dispatches` sendings it is failed with the reason. The same holds
between stages: a running run whose next stage no worker has started `run_dispatch_timeout_s`
after the previous one finished (the chain's message lost) is sent again from that stage, and
failed once its sendings reach `run_max_dispatches`. So no run waits for a worker, at its start
or between two stages, for longer than run_max_dispatches x run_dispatch_timeout_s +
run_sweep_interval_s (6.5 min by default).
"""

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.broker import BrokerUnavailable, send_run
from app.config import Settings
from app.db.engine import session_scope
from app.training_runs import service
from app.training_runs.models import TERMINAL_STATUSES, TrainingRun
from app.training_runs.schemas import RunParameters, RunView

log = logging.getLogger(__name__)


class RunInProgress(Exception):
    """One run at a time: another is queued or running."""

    def __init__(self, run: TrainingRun | None) -> None:
        if run is None:  # it ended in the moment between the refusal and the look
            super().__init__("another run was started at the same moment; try again")
        else:
            super().__init__(f"run {run.id} is {run.status}; cancel it or wait for it to finish")
        self.run_id = run.id if run is not None else None


def start_run(parameters: RunParameters, *, db_session: Session) -> TrainingRun:
    """Creates a run and sends it to the workers. RunInProgress when another holds the slot;
    BrokerUnavailable (the run then failed with that reason, the slot free) when the broker
    cannot take it."""
    active = service.get_active(db_session=db_session)
    if active is not None:
        raise RunInProgress(active)
    try:
        run = service.create_run(parameters, db_session=db_session)
    except IntegrityError:  # another start got in between the check and the insert
        db_session.rollback()
        raise RunInProgress(service.get_active(db_session=db_session)) from None
    dispatch = service.record_dispatch(run.id, db_session=db_session)
    try:
        send_run(run.id, dispatch)
    except BrokerUnavailable as error:
        service.fail(run.id, f"not started: {error}", db_session=db_session)
        raise
    db_session.refresh(run)
    return run


def redispatch_lost_runs(settings: Settings, *, db_session: Session) -> list[str]:
    """Sends again each run that waits for a worker (queued and not started, or running with
    its next stage not started) past run_dispatch_timeout_s, from the stage it waits for, or
    fails it after the last try; returns what it did, one line per run."""
    before = datetime.now(UTC) - timedelta(seconds=settings.run_dispatch_timeout_s)
    waiting = [(run, 0) for run in service.get_unstarted(db_session=db_session, dispatched_before=before)]
    waiting += [
        (run, service.STAGES.index(run.stage) + 1) for run in service.get_stalled(db_session=db_session, finished_before=before)
    ]
    done = []
    for run, first_stage in waiting:
        if run.dispatches >= settings.run_max_dispatches:
            sendings, apart = run.dispatches, f"{settings.run_dispatch_timeout_s:g} s apart"
            if first_stage == 0:
                reason = f"no worker started it after {sendings} sendings, {apart}: is a worker listening on the 'cpu' queue?"
            else:
                reason = (
                    f"its {service.STAGES[first_stage]} stage never started after {run.stage} finished, over "
                    f"{sendings} sendings {apart}: is a worker listening on its queue?"
                )
            if service.fail(run.id, reason, db_session=db_session, only_if_queued=first_stage == 0):
                done.append(f"run {run.id} failed: {reason}")
            continue
        dispatch = service.record_dispatch(run.id, db_session=db_session, seen=run.dispatches)
        if dispatch is None:  # started, cancelled, or sent again by another API process meanwhile
            continue
        try:
            send_run(run.id, dispatch, first_stage=first_stage)
            where = f" from its {service.STAGES[first_stage]} stage" if first_stage else ""
            done.append(f"run {run.id} sent again{where} (sending {dispatch})")
        except BrokerUnavailable as error:  # counted as a sending: the next sweep tries again
            done.append(f"run {run.id} could not be sent again: {error}")
    for line in done:
        log.warning("%s", line)
    return done


def follow(run_id: int, *, every_s: float = 1.0) -> Iterator[RunView]:
    """The run as it goes, every `every_s` seconds, until it has ended (the last one yielded)."""
    while True:
        time.sleep(every_s)
        with session_scope() as session:
            current = RunView.model_validate(service.get(run_id, db_session=session))
        yield current
        if current.status in TERMINAL_STATUSES:
            return
