"""The scheduler: each device polled at its own interval, the buffer pushed every few seconds.

Polls and pushes run in separate thread pools, so a store that is slow or down never delays a
poll, and one device's poll never waits for another's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("ekinerja.sync.jobs")

PUSH_JOB = "push"
# After new punches arrive, push this soon rather than waiting for the next interval; a short
# delay lets punches from several devices share a batch.
PUSH_SOON_S = 0.25


class _ExpectedSkips(logging.Filter):
    """Drops APScheduler's warning that a job was skipped because its last run is still going.

    That is by design here (one run per job at a time: a hung terminal's poll waits for its
    timeout), and a warning every interval would bury the warnings an operator can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_ExpectedSkips())


class Jobs:
    """Owns the APScheduler instance and the job ids."""

    def __init__(self, device_count: int) -> None:
        self.scheduler = BackgroundScheduler(
            executors={
                "devices": ThreadPoolExecutor(max_workers=max(1, device_count)),
                "push": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._again = threading.Event()
        self._stopping = False

    def add_poll(self, device_id: str, interval_s: float, poll: Callable[[], None]) -> None:
        """Poll a device every ``interval_s``, first at once."""
        self.scheduler.add_job(
            poll,
            "interval",
            seconds=interval_s,
            id=f"poll:{device_id}",
            name=f"poll {device_id}",
            executor="devices",
            next_run_time=datetime.now(),
        )

    def add_push(self, interval_s: float, push: Callable[[], None]) -> None:
        """Push the buffer every ``interval_s``, first at once."""

        def push_until_caught_up() -> None:
            # A run that push_soon() asked for while this one was running would be skipped
            # (one instance at a time): run again here instead, so a live punch never waits
            # for the next interval.
            while True:
                self._again.clear()
                push()
                if not self._again.is_set():
                    return

        self.scheduler.add_job(
            push_until_caught_up,
            "interval",
            seconds=interval_s,
            id=PUSH_JOB,
            name="push",
            executor="push",
            next_run_time=datetime.now(),
        )

    def add_repeating(self, name: str, interval_s: float, job: Callable[[], object]) -> None:
        """Run ``job`` every ``interval_s``, first at once, beside the pushes (it talks to the store too)."""
        self.scheduler.add_job(
            job, "interval", seconds=interval_s, id=name, name=name, executor="push", next_run_time=datetime.now()
        )

    def add_daily(self, name: str, job: Callable[[], object]) -> None:
        """Run ``job`` once a day, first an hour after start (housekeeping, off the busy morning)."""
        first = datetime.now() + timedelta(hours=1)
        self.scheduler.add_job(job, "interval", days=1, id=name, name=name, executor="push", next_run_time=first)

    def push_soon(self) -> None:
        """Bring the next push forward: new punches are waiting."""
        if self._stopping:  # shutdown(wait=True) holds the job store's lock while it waits for this very job
            return
        self._again.set()
        job = self.scheduler.get_job(PUSH_JOB)
        if job is None or job.next_run_time is None:  # not scheduled (stopping): nothing to bring forward
            return
        soon = datetime.now(job.next_run_time.tzinfo) + timedelta(seconds=PUSH_SOON_S)
        if job.next_run_time > soon:
            job.modify(next_run_time=soon)

    def start(self) -> None:
        """Start running jobs in the background."""
        self.scheduler.start()

    def pause(self) -> None:
        """Start no more jobs (those running go on), and bring no push forward any more."""
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.pause()

    def stop(self) -> None:
        """Stop and wait for running jobs to finish."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
