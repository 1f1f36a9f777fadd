"""The engine: the small facade the Discord side calls. No Discord imports.

It wires the collaborators together and adds nothing of its own beyond the job life cycle:

    preparer   options -> a checked request in its context (server rules, presets, reruns)
    scheduler  admission, the fair queue and the backend pool
    book       the job store as the source of truth (written before a user is told, read back at start)
    generator  one job on one backend -> upload-ready images
    prefs      server settings and user preferences
    catalogue  what the WebUIs offer (autocomplete, name checks)

The Discord side: `admit` (a refusal costs nothing), `submit` (durable before it returns), then it
renders the `Job` it got back and reports `note_message` / `delivered`. At start `restored` lists the
jobs whose messages must be brought up to date.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings
from bot.errors import StorageError
from bot.text import T
from bot.webui.backend import Backend, backend_kind, open_backend

from .book import JobBook
from .catalogue import CatalogueCache
from .files import DataFiles
from .generate import Generator, Outcome, without_metadata
from .jobs import DescribeRequest, DrawRequest, Job, JobState, Origin, Request, Ticket, UpscaleRequest
from .limits import DailyLimit, DailyQuota
from .metrics import Metrics, MetricsServer
from .moderation import blocked
from .payload import BuiltPayload
from .pgstore import PgJobStore
from .policy import Preferences
from .prepare import DescribeInput, Preparer, UpscaleInput
from .routing import Router
from .scheduler import Scheduler, StatusView
from .shared import DB_ERRORS, SharedQueue, SharedScheduler, unavailable
from .store import IdTaken, JobRecord, JobStore

__all__ = ["STORE_FILE", "Engine"]

log = logging.getLogger(__name__)

STORE_FILE = "sdcord.db"
CLOSE_FLUSH = 15.0  # seconds pending job changes get to be written at shutdown


class Engine:
    def __init__(self, settings: Settings, clients: list[Backend] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, gateway: bool = True) -> None:
        self.settings = settings
        self.shared = bool(settings.database_url)  # one queue in PostgreSQL shared by several processes
        runs_workers = settings.webui_given or not self.shared  # a gateway alone runs no backend
        self.clients = clients if clients is not None else [
            open_backend(b.url, auth=b.auth, generation_timeout=settings.generation_timeout, name=f"webui{i}",
                         **({"max_download": settings.max_download} if backend_kind(b.url) == "form" else {}))
            for i, b in enumerate(settings.backends if runs_workers else ())
        ]
        self.clock = clock
        self.gateway = gateway  # False: `sdcord worker` (no Discord gateway; it runs the shared queue's jobs)
        self.catalogue = CatalogueCache(self.clients)
        self.router = Router(self.clients, self.catalogue)
        self.files = DataFiles(settings.data_dir)
        self.generator = Generator(self.files, inputs=self.load_input)
        self.prefs = Preferences(read_through=self.shared)  # other gateways change them too
        rate, per = settings.rate_limit
        options = dict(rate=rate, per=per, clock=clock, retention=settings.job_retention,
                       max_queued_per_user=settings.max_queued_per_user, wait_limit=settings.backend_wait_limit,
                       router=self.router)
        self.scheduler: Scheduler = (SharedScheduler(self.clients, self._run_job, lease_ttl=settings.lease_ttl,
                                                     **options) if self.shared  # type: ignore[arg-type]
                                     else Scheduler(self.clients, self._run_job, **options))  # type: ignore[arg-type]
        self.scheduler.backend_back.append(self.catalogue.refresh_backend)
        self.metrics = Metrics()
        self.metrics.watch(self.scheduler)
        self._metrics_server: MetricsServer | None = None
        self.preparer = Preparer(settings, self.catalogue, self.prefs, self.files, self.find_job,
                                 inputs=self.load_input)
        self._book: JobBook | None = None
        self.restored: list[Job] = []  # undelivered jobs found at start
        self.quota: DailyQuota | None = None  # jobs per user per UTC day (one process; a shared queue counts in SQL)
        self.followers: list[Callable[[Job], None]] = []  # told of jobs this process takes over (shared queue)

    @property
    def book(self) -> JobBook:
        if self._book is None:
            raise RuntimeError("the engine is not started")
        return self._book

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the job store, rebuild the queue from it, start the backend workers, warm the catalogue."""
        if self.shared:
            await self._start_shared()
        else:
            await self._start_local()
        self.catalogue.refresh()
        if self.settings.metrics_port is not None:
            self._metrics_server = MetricsServer(self.metrics, self.settings.metrics_host, self.settings.metrics_port)
            await self._metrics_server.start()

    async def _start_shared(self) -> None:
        """DATABASE_URL: the job store and the waiting line in PostgreSQL. Nothing is restored here: jobs of a
        process that stopped are adopted by whichever live process sees them first (this one, at its first
        heartbeat, when they are old enough)."""
        settings = self.settings
        try:
            store = await PgJobStore.open(settings.database_url or "")
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc
        self._book = JobBook(store, self.files, clock=self.clock)
        self._book.start()
        await self.prefs.load(store)
        self.generator.numbers = store.take_numbers  # one image counter for every worker
        rate, per = settings.rate_limit
        role = "gateway" if self.gateway else "worker"
        queue = SharedQueue(store.pool, store.dsn, role=role, lease_ttl=settings.lease_ttl, rate=rate, per=per,
                            cap=settings.max_queued_per_user)
        await queue.register()
        scheduler = self.scheduler
        assert isinstance(scheduler, SharedScheduler)
        scheduler.attach(queue, self._book)
        scheduler.adopted.append(self._adopted)
        scheduler.listeners.append(self._book.on_change)
        scheduler.start()

    def _adopted(self, job: Job) -> None:
        for follower in self.followers:
            follower(job)

    async def _start_local(self) -> None:
        store = await JobStore.open(self.settings.data_dir / STORE_FILE)
        self._book = JobBook(store, self.files, clock=self.clock)
        self._book.start()
        await self.prefs.load(store)
        self.quota = DailyQuota(lambda user, since, guild: store.jobs_since(user, since, guild_id=guild))
        jobs, last_seq, busy = await self._book.restore()
        for job in jobs:
            self.scheduler.restore(job)
        self.scheduler.restored(last_seq, busy)
        self.restored = jobs
        if jobs:
            waiting = sum(1 for j in jobs if not j.is_final)
            log.info("Restored %d job(s) from the store: %d to run, %d to deliver", len(jobs), waiting,
                     len(jobs) - waiting)
        self.scheduler.listeners.append(self._book.on_change)
        self.scheduler.start()

    def pause(self) -> None:
        """Shutting down: take no new jobs, start no waiting ones (they stay queued for the next start)."""
        self.scheduler.pause()

    async def wait_running(self, timeout: float) -> None:
        """Give running jobs up to `timeout` seconds to finish."""
        running = [asyncio.ensure_future(j.wait_done()) for j in self.scheduler.running()]
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()

    async def stop(self) -> None:
        """End the workers; a job still running stays in the store as running, to run again at the next start."""
        await self.scheduler.stop()

    async def close(self) -> None:
        """Stop the workers, commit every pending change, hand this process's jobs to the others (a shared
        queue), close the store and the clients. Idempotent."""
        await self.scheduler.stop()
        if self._book is not None:  # bounded: a database that is down must not hold the stop for minutes
            try:
                await asyncio.wait_for(self._book.flush(), CLOSE_FLUSH)
            except TimeoutError:
                log.error("Job changes not written within %g s at shutdown; the next start resumes from the store",
                          CLOSE_FLUSH)
        if isinstance(self.scheduler, SharedScheduler):
            await self.scheduler.leave()
        await self.catalogue.close()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        book, self._book = self._book, None
        if book is not None:
            await book.close()
            await book.store.close()
        await asyncio.gather(*(c.close() for c in self.clients))

    async def flush(self) -> None:
        """Wait until every job change so far is committed."""
        if self._book is not None:
            await self._book.flush()

    # ------------------------------------------------------------------ jobs
    async def admit(self, user_id: int, guild_id: int | None = None) -> Ticket:
        """Reserve a slot (daily quota, rate limit, queue cap) or raise Refused. Costs nothing. `guild_id`: the
        server the job would run in (its own daily limit applies). A shared queue raises StorageError
        ("temporarily unavailable") while its database can't be reached."""
        daily = await self.daily_limits(guild_id)
        if isinstance(self.scheduler, SharedScheduler):
            return await self.scheduler.reserve(user_id, daily=daily, guild_id=guild_id)
        day = self.quota.day if self.quota is not None else 0.0
        taken = await self.quota.take(user_id, daily) if self.quota is not None and daily else ()
        try:
            ticket = await self.scheduler.reserve(user_id)
        except BaseException:
            if self.quota is not None:
                self.quota.give_back(taken, day)
            raise
        ticket.quota = (day, taken) if taken else None
        return ticket

    async def daily_limits(self, guild_id: int | None) -> list[DailyLimit]:
        """The daily limits a job in this place counts against: DAILY_LIMIT, and the server's own."""
        out = [DailyLimit(self.settings.daily_limit)] if self.settings.daily_limit else []
        policy = await self.prefs.server_policy(guild_id) if guild_id else None
        if policy is not None and policy.daily_limit:
            out.append(DailyLimit(policy.daily(self.settings), guild_id))
        return out

    def release(self, ticket: Ticket) -> None:
        """An admitted job that won't be submitted: its slot, token and daily count come back."""
        if not ticket.used:
            self._give_back_quota(ticket)
        self.scheduler.release(ticket)

    def _give_back_quota(self, ticket: Ticket) -> None:
        if ticket.quota is not None and self.quota is not None:
            self.quota.give_back(ticket.quota[1], ticket.quota[0])
            ticket.quota = None

    def check_route(self, request: BuiltPayload | UpscaleInput | DescribeInput) -> None:
        """Raise OptionError, naming what is missing, when no backend of the pool could run `request`."""
        self.router.check(request)

    async def submit(self, ticket: Ticket, request: BuiltPayload | UpscaleInput | DescribeInput, origin: Origin, *,
                     message_id: int | None = None) -> Job:
        """Store the job (committed before this returns), then queue it. `message_id`: its message, when
        already known (a deferred response). Raises StorageError when the store can't keep it; the ticket
        is given back then."""
        try:
            stored = await self._stored_request(request)
            job = self.scheduler.new_job(ticket, stored, origin)
            job.message_id = message_id
        except BaseException:
            self.release(ticket)
            raise
        problem: BaseException | None = None
        scheduler = self.scheduler
        for _ in range(5):
            if isinstance(scheduler, SharedScheduler):
                problem = await scheduler.store_new(job, self.book.new_record(job))
            else:
                problem = await self.book.add(job)
            if not isinstance(problem, IdTaken):
                break
            scheduler.renumber(job)
        if problem is not None:
            scheduler.discard(job)
            if not self.shared:
                scheduler.limiter.refund(job.user_id)
                self._give_back_quota(ticket)
            log.error("Job for user %s could not be stored: %r", origin.user_id, problem)
            raise StorageError(T("refuse.unavailable" if self.shared else "failure.storage"), detail=repr(problem))
        self.scheduler.enqueue(job)
        return job

    async def _stored_request(self, request: BuiltPayload | UpscaleInput | DescribeInput) -> Request:
        """The request as it is kept: input images go to the data dir by content, without their metadata
        (what the WebUI will get; an upscale's infotext was read from the original bytes before)."""
        if isinstance(request, DescribeInput):
            return DescribeRequest(await self._keep(request.image))
        if isinstance(request, UpscaleInput):
            digest = await self._keep(request.image)
            return UpscaleRequest(digest, request.infotext, request.scale, request.upscaler,
                                  request.source_job, request.index)
        digest = mask = None
        if request.init_image is not None:
            digest = await self._keep(request.init_image)
        if request.mask is not None:
            mask = await self._keep(request.mask)
        return DrawRequest(dict(request.payload), tuple(request.notes), request.spoiler, digest,
                           asked=tuple(sorted(request.asked)), mask=mask)

    async def _keep(self, data: bytes) -> str:
        """Keep an input image by content, without its metadata (stripped in a thread); in a shared queue also
        in the database, before the job is, so whichever worker takes the job can read it."""
        digest, stripped = await asyncio.to_thread(self._keep_input, data)
        if self.shared:
            try:
                await self.book.store.put_input(digest, stripped)
            except DB_ERRORS as exc:
                raise unavailable(exc) from exc
        return digest

    def _keep_input(self, data: bytes) -> tuple[str, bytes]:
        """In a worker thread: strip the input image's metadata and keep it by content."""
        stripped = without_metadata(data)
        return self.files.save_input(stripped), stripped

    async def load_input(self, digest: str) -> bytes | None:
        """A kept input image: from the data dir, else (a shared queue: kept by another process) from the
        database, then kept here too. None when it is nowhere."""
        data = await asyncio.to_thread(self.files.load_input, digest)
        if data is None and self.shared and self._book is not None:
            try:
                data = await self._book.store.get_input(digest)
            except DB_ERRORS as exc:
                log.warning("Input %s could not be read from the database: %r", digest[:12], exc)
                return None
            if data is not None:
                await asyncio.to_thread(self.files.save_input, data)
        return data

    async def _run_job(self, job: Job, client: Backend) -> Outcome:
        request, limit = job.request, job.origin.filesize_limit
        if isinstance(request, UpscaleRequest):
            outcome = await self.generator.upscale(request, client, filesize_limit=limit)
        elif isinstance(request, DescribeRequest):
            policy = await self.prefs.server_policy(job.origin.guild_id) if job.origin.guild_id else None
            words = policy.blocklist if policy is not None else ()
            outcome = await self.generator.describe(request, client, lambda text: not blocked(text, words))
        else:
            outcome = await self.generator.generate(request, client, filesize_limit=limit)
        return await self.book.save_outcome(job, outcome)  # the bytes stay on disk, not in memory

    def job(self, job_id: str) -> Job | None:
        return self.scheduler.get(job_id)

    async def cancel(self, job: Job, by: int | None = None) -> bool:
        return await self.scheduler.cancel(job, by=by)

    async def cancel_id(self, job_id: str, by: int | None = None) -> bool:
        """Cancel a job this process doesn't hold (a shared queue: waiting, or running on another worker)."""
        if isinstance(self.scheduler, SharedScheduler):
            return await self.scheduler.cancel_id(job_id, by)
        job = self.scheduler.get(job_id)
        return job is not None and await self.scheduler.cancel(job, by=by)

    # ------------------------------------------------------------------ what job messages and /status show
    def position(self, job: Job) -> int | None:
        return self.scheduler.position(job)

    def queue_length(self) -> int:
        return self.scheduler.queue_length()

    def estimate_start(self, job: Job) -> float | None:
        """Seconds until a queued job starts, from measured job durations; None while not known."""
        return self.scheduler.estimate_start(job)

    async def status(self, user_id: int, limit: int) -> StatusView:
        """/status for one user: backends, queue length, their first `limit` jobs with positions."""
        try:
            return await self.scheduler.status_of(user_id, limit)
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc

    # ------------------------------------------------------------------ delivery bookkeeping
    def note_message(self, job: Job, message_id: int) -> None:
        """The job's own message is known (for actions on it, and to edit it after a restart)."""
        if job.message_id != message_id:
            self.book.note_message(job, message_id)

    async def outcome(self, job: Job) -> Outcome | None:
        """A finished job's images and summary (from the data dir after a restart)."""
        if job.state is not JobState.DONE:
            return None
        return await self.book.outcome(job)

    def image_file(self, job: Job, filename: str) -> Path | None:
        """Where a result image without bytes in memory is kept until delivered."""
        return self.book.image_file(job, filename)

    async def settled(self, job: Job) -> None:
        """Wait until the job's end is committed: deliver nothing the store doesn't know yet."""
        await self.book.settled(job)

    async def delivered(self, job: Job, *, result_message_id: int | None = None, problem: str | None = None) -> None:
        """The user has seen the job's end (or it could not be shown: `problem`)."""
        await self.book.delivered(job, result_message_id=result_message_id, problem=problem)

    async def find_job(self, *, job_id: str | None = None, message_id: int | None = None) -> JobRecord | None:
        """A stored job by id, else by its (job or result) message."""
        if self._book is None:
            return None
        store = self._book.store
        record = await store.get(job_id) if job_id else None
        if record is None and message_id is not None:
            record = await store.by_message(message_id)
        return record

    # ------------------------------------------------------------------ /history
    async def history(self, user_id: int, page: int, per_page: int) -> tuple[list[JobRecord], int]:
        """Page `page` (from 1; past the end: the last one) of a user's jobs, newest first, and how many they
        have. Read from the store, so it sees every process's jobs in a shared queue; a job this process holds
        shows its state and message as they are now (the store may be a write behind). Raises StorageError
        while a shared database can't be reached."""
        store = self.book.store
        per_page = max(1, per_page)
        try:
            total = await store.count_jobs(user_id)
            last = max(1, -(-total // per_page))
            records = await store.history(user_id, limit=per_page, offset=(min(max(1, page), last) - 1) * per_page)
        except DB_ERRORS as exc:
            raise unavailable(exc) from exc
        for record in records:
            job = self.scheduler.get(record.id)
            if job is not None:
                record.status = job.state.value
                record.message_id = job.message_id or record.message_id
        return records, total
