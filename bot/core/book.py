"""The job store as the source of truth of the queue. No Discord imports.

* `add`: a new job is committed before anyone is told it is queued.
* `on_change`: every state change the scheduler reports is written in order (not awaited).
* `save_outcome`: a finished job's images go to the data dir and its outcome to the store before the
  job counts as done, so a restart between "done" and "posted" posts it instead of running it again.
* `delivered`: the user has seen the job's end; its token is forgotten and its result files dropped.
* `restore`: at start, every job not yet delivered comes back: queued ones in their fair order, a
  running one queued first and marked as resumed (A1111 can't tell us whether it finished), ended
  ones ready to be delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bot.errors import JobFailed, JobInterrupted
from bot.text import T, Text, text_from_json

from .files import DataFiles
from .generate import Outcome
from .jobs import Job, JobState, Origin, notes_to_json, request_from_record
from .store import JobRecord, JobStore, StoreWriter

__all__ = ["MAX_ATTEMPTS", "JobBook"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job interrupted by a restart runs once more; interrupted again, it fails clearly


def stored_reason(reason: Text | str) -> str:
    """A failure's reason as the store keeps it: a message (JSON), rendered in the reader's language later."""
    return orjson.dumps(reason.to_json()).decode() if isinstance(reason, Text) else str(reason)


def reason_from_store(value: str | None) -> Text | str:
    if not value:
        return T("failure.internal")
    if value.startswith("{"):
        try:
            return text_from_json(orjson.loads(value))
        except orjson.JSONDecodeError:
            pass
    return value  # written by an older version: English text


class JobBook:
    def __init__(self, store: JobStore, files: DataFiles, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.files = files
        self.writer = StoreWriter(store)
        self.clock = clock
        self._outcomes: dict[str, dict[str, Any]] = {}  # restored, not yet delivered results (no bytes)

    def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.close()

    # ------------------------------------------------------------------ writing
    def new_record(self, job: Job) -> JobRecord:
        """A new job as the store keeps it."""
        request = job.request
        return JobRecord(
            id=job.id, kind=request.kind, user_id=job.user_id, payload=request.record(), status="queued",
            created_at=time.time(), guild_id=job.origin.guild_id, channel_id=job.origin.channel_id,
            parent_id=job.origin.parent_id, origin=job.origin.to_dict(),
            extra={"notes": notes_to_json(request.notes), "spoiler": request.spoiler,
                   "asked": list(getattr(request, "asked", ()))}, round=job.round, seq=job.seq,
            message_id=job.message_id,
        )

    async def add(self, job: Job) -> BaseException | None:
        """Commit a new job. Returns None, IdTaken (pick another id), or the storage error."""
        return await self.writer.add(self.new_record(job))

    def on_change(self, job: Job) -> None:
        """Scheduler listener: write the job's new state (in order, not awaited)."""
        changes: dict[str, Any] = {"status": job.state.value, "backend": job.backend, "attempts": job.attempts}
        if job.state is JobState.QUEUED:
            changes["front"] = int(job.front)
        elif job.state is JobState.RUNNING:
            changes["started_at"] = time.time()
        elif job.is_final:
            changes["finished_at"] = time.time()
            if isinstance(job.result, Outcome):
                changes["seeds"] = job.result.seeds
                changes["infotexts"] = [img.infotext or "" for img in job.result.images]
            if job.error is not None:
                changes["error"] = stored_reason(getattr(job.error, "message", None) or T("failure.internal"))
        self.writer.update(job.id, **changes)

    async def save_outcome(self, job: Job, outcome: Outcome) -> Outcome:
        """Keep the images and the outcome before the job counts as done. Returns the outcome to hold
        in memory: without its image bytes once they are on disk (the delivery uploads the files)."""
        try:
            await asyncio.to_thread(self.files.save_results, job.id,
                                    [(img.filename, img.data) for img in outcome.images])
        except (OSError, ValueError):
            log.exception("Job %s: could not keep its images for delivery after a restart", job.id)
            return outcome
        error = await self.writer.update(job.id, outcome=outcome.record())
        if error is not None:
            log.error("Job %s: could not record its outcome: %r", job.id, error)
        return outcome.without_data()

    def note_message(self, job: Job, message_id: int) -> None:
        job.message_id = message_id
        self.writer.update(job.id, message_id=message_id)

    async def settled(self, job: Job) -> None:
        """Wait until what is known of `job` (its end included) is committed."""
        await self.writer.settled(job.id)

    async def delivered(self, job: Job, *, result_message_id: int | None = None, problem: str | None = None) -> None:
        """The user has seen the job's end (or it could not be shown: `problem`)."""
        changes: dict[str, Any] = {"delivered_at": time.time(), "origin": job.origin.without_token().to_dict()}
        if result_message_id is not None:
            changes["result_message_id"] = result_message_id
        if problem:
            changes["delivery_error"] = problem[:500]
        error = await self.writer.update(job.id, **changes)
        if error is not None:  # keep the images: the next start delivers again rather than renders again
            log.error("Job %s: could not record its delivery: %r", job.id, error)
            return
        self._outcomes.pop(job.id, None)
        await asyncio.to_thread(self.files.drop_results, job.id)
        job.result = None  # the images live in Discord now; don't keep their bytes
        job.progress = None

    async def outcome(self, job: Job) -> Outcome | None:
        """A finished job's outcome, from memory or (after a restart) from the store; images without
        bytes are in the data dir (`image_file`)."""
        if isinstance(job.result, Outcome):
            return job.result
        data = self._outcomes.get(job.id)
        if data is None:
            return None
        outcome = Outcome.from_record(data, [b""] * len(data.get("images") or []))
        names = [img.filename for img in outcome.images]
        return outcome if await asyncio.to_thread(self.files.has_results, job.id, names) else None

    def image_file(self, job: Job, filename: str) -> Path | None:
        return self.files.result_path(job.id, filename)

    async def flush(self) -> None:
        await self.writer.flush()

    # ------------------------------------------------------------------ restoring
    async def restore(self) -> tuple[list[Job], int, set[str]]:
        """Rebuild every undelivered job. Returns (jobs, the highest seq, backends that were running one)."""
        records = await self.store.undelivered()
        busy = {r.backend for r in records if r.status == "running" and r.backend}
        last_seq = max((r.seq for r in records), default=0)
        jobs = await self.restore_records(records)
        kept = {j.id for j in jobs if j.id in self._outcomes}
        for job_id in await asyncio.to_thread(self.files.result_jobs):
            if job_id not in kept:
                await asyncio.to_thread(self.files.drop_results, job_id)  # delivered, or left by a crash
        return jobs, last_seq, busy

    async def restore_records(self, records: list[JobRecord]) -> list[Job]:
        """Rebuild undelivered jobs (at start, or adopted from a process that stopped): a running one runs
        again first in line (a second interruption fails it), a finished one is delivered (run again when its
        images are not here), a waiting one keeps its place."""
        jobs: list[Job] = []
        for record in records:
            try:
                job = self._rebuild(record)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("Job %s can't be restored (%r); marking it failed", record.id, exc)
                await self.writer.update(record.id, status="failed", finished_at=time.time(),
                                         error=stored_reason(T("failure.damaged")), delivered_at=time.time(),
                                         delivery_error=f"unrestorable: {exc!r}"[:500])
                continue
            if record.status == "done":
                outcome = record.outcome or {}
                names = [str(e.get("filename")) for e in outcome.get("images") or []]
                if await asyncio.to_thread(self.files.has_results, record.id, names):
                    self._outcomes[record.id] = outcome
                    job.finish(JobState.DONE, self.clock())
                else:  # done, but its images are gone: run it again rather than lose it
                    log.warning("Job %s finished, but its images are not here; running it again", record.id)
                    job.state, job.resumed, job.front = JobState.QUEUED, True, True
                    self.writer.update(job.id, status="queued", front=1)
            jobs.append(job)
        return jobs

    def job_from_record(self, record: JobRecord, now: float) -> Job:
        """A stored job as it is, without changing anything (what another process shows of it)."""
        origin = Origin.from_dict(record.origin)
        request = request_from_record(record.kind, record.payload, record.extra or {})
        job = Job(record.id, origin, request, record.seq, record.round, now, attempts=record.attempts,
                  message_id=record.message_id, backend=record.backend, front=bool(record.front))
        if record.status in ("failed", "cancelled", "done", "running"):
            job.state = JobState(record.status)
        elif record.status != "queued":
            raise ValueError(f"unknown status {record.status!r}")
        job.resumed = record.status == "queued" and record.attempts > 0
        return job

    def _rebuild(self, record: JobRecord) -> Job:
        job = self.job_from_record(record, self.clock())
        job.backend = None if record.status in ("queued", "running") else record.backend
        status = record.status
        job.resumed = False
        if status == "running":
            if record.attempts >= MAX_ATTEMPTS:
                error = JobInterrupted(T("failure.restarted_too_often", count=record.attempts))
                job.finish(JobState.FAILED, self.clock(), error=error)
                self.writer.update(job.id, status="failed", finished_at=time.time(), error=stored_reason(error.message))
            else:
                job.state = JobState.QUEUED
                job.resumed = job.front = True
                self.writer.update(job.id, status="queued", backend=None, front=1)
        elif status in ("failed", "cancelled"):
            error = JobFailed(reason_from_store(record.error)) if status == "failed" else None
            job.finish(JobState(status), self.clock(), error=error)
        elif status == "done":
            job.state = JobState.QUEUED  # settled by `restore_records`: are its images here?
        return job
