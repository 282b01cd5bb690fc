"""The composition root: builds the real adapters (or takes the ones a test hands in), wires the
core to them and owns their lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from query_service import statedir
from query_service.api import router
from query_service.cluster import Member, PartitionState
from query_service.dead_letters import DELIVERY_TIMEOUT_MS, KafkaDeadLetters
from query_service.dependencies import Services
from query_service.errors import install_error_handlers
from query_service.ingest import Ingest
from query_service.membership import Membership
from query_service.metrics import QueryMetrics
from query_service.middleware import RequestTimer, ServedBy
from query_service.ports import (
    ClusterMembership,
    ConsumerFactory,
    DeadLetters,
    MembershipFactory,
    TopicProvisioner,
    ViewStores,
)
from query_service.positions import Caps, Positions
from query_service.projection import Changes
from query_service.reads import Reader
from query_service.routing import Routing
from query_service.runner import Runner, kafka_consumer, kafka_topics, settle_heap
from query_service.settings import QuerySettings
from query_service.store import RocksPartitionStores, is_database
from query_service.tickets import StreamTickets
from shared.access import install_access
from shared.auth import TokenVerifier
from shared.headers import SecurityHeaders

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "web"
WORKER_THREADS = 4
RUNNER_STOP_S = DELIVERY_TIMEOUT_MS / 1000 + 15
# The exit status of a process that stopped because a part of it failed for good.
EXIT_FAILED = 70
MAX_FORWARD_CONNECTIONS = 64


def open_stores(settings: QuerySettings) -> RocksPartitionStores:
    """The current version of the view; one of an older format (one database for the whole
    view) is replaced by a new, empty version that the runner builds from the log (not ready
    until it has caught up).
    """
    version = statedir.current_version(settings.query_state_dir)
    if is_database(version):
        old = version
        version = statedir.new_version(settings.query_state_dir)
        statedir.swap(settings.query_state_dir, version)
        log.warning(
            "%s holds the view in an older format: rebuilding it from the log into %s "
            "(the old version stays on disk for the operator to remove)",
            old,
            version,
        )
    log.info("serving the view in %s", version)
    return RocksPartitionStores(version, settings.orders_topic)


class _LoopProgress:
    """The runner's progress, handed to the event loop's positions in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, positions: Positions) -> None:
        self._loop = loop
        self._positions = positions

    def applied(self, offsets: Mapping[int, int], changes: Changes) -> None:
        self._loop.call_soon_threadsafe(self._positions.advance, offsets, changes)

    def taken(self, partition: int, applied: int) -> None:
        self._loop.call_soon_threadsafe(self._positions.taken, partition, applied)

    def released(self, partition: int) -> None:
        self._loop.call_soon_threadsafe(self._positions.released, partition)


def create_app(
    settings: QuerySettings | None = None,
    *,
    stores: ViewStores | None = None,
    dead_letters: DeadLetters | None = None,
    consumer_factory: ConsumerFactory | None = None,
    provision_topics: TopicProvisioner | None = None,
    membership: MembershipFactory | None = None,
    terminate: Callable[[str], None] | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """The query service. Adapters not handed in are the real ones, built from `settings`; the
    stores are opened when the app starts (not here), so building an app touches no disk.

    `membership` builds the cluster membership adapter (by default Kafka's, membership.py).
    `terminate` ends the process when a part of it has failed for good (by default: a clear log
    line, then exit non-zero, so that a supervisor restarts it).
    `verifier` checks bearer tokens (default: PyJWT against AUTH_JWKS_URL).
    """
    settings = settings if settings is not None else QuerySettings()
    cfg = settings
    metrics = QueryMetrics()
    incarnation = uuid.uuid4().hex
    end_process = terminate if terminate is not None else exit_process
    secret = cfg.query_stream_ticket_secret
    tickets = StreamTickets(
        secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32),
        cfg.query_stream_ticket_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        view_stores = stores if stores is not None else open_stores(cfg)
        letters = dead_letters if dead_letters is not None else KafkaDeadLetters(cfg)
        caps = Caps(cfg.query_max_waiters, cfg.query_max_streams, cfg.query_max_streams_per_user)
        positions = Positions({}, cfg.query_sse_queue_size, caps)
        runner = Runner(
            cfg,
            Ingest(view_stores, letters, metrics),
            metrics,
            _LoopProgress(loop, positions),
            consumer_factory=consumer_factory or (lambda: kafka_consumer(cfg)),
            provision_topics=provision_topics or kafka_topics(cfg),
        )

        def own_state() -> Member:
            return member_state(cfg, runner, positions, incarnation)

        make_membership = membership if membership is not None else kafka_membership
        members = make_membership(cfg, own_state, runner)
        view = members.view
        metrics.sse_subscribers.set_function(lambda: positions.subscriber_count)
        metrics.ryw_waiters.set_function(lambda: positions.waiter_count)
        reader = Reader(
            view_stores, positions, lambda: runner.partitions or cfg.orders_topic_partitions
        )
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=MAX_FORWARD_CONNECTIONS), trust_env=False
        )
        routing = Routing(
            view,
            runner.holds,
            runner.partition_ready,
            client,
            metrics,
            forward_timeout_s=cfg.query_forward_timeout_ms / 1000,
            suspect_s=cfg.query_member_timeout_ms / 1000,
        )
        app.state.services = Services(
            cfg,
            metrics,
            reader,
            positions,
            runner,
            anyio.CapacityLimiter(WORKER_THREADS),
            routing,
            view,
            tickets,
        )
        settle_heap()
        runner.start()
        members.start()
        watch = asyncio.create_task(_watch(app, runner, members, end_process))
        try:
            yield
        finally:
            watch.cancel()
            # First: a clean leave tells the others to take over at once.
            await asyncio.to_thread(members.stop)
            # Long enough for a dead-letter delivery under way to finish or time out.
            await asyncio.to_thread(runner.stop, RUNNER_STOP_S)
            await client.aclose()
            letters.close()
            view_stores.close()

    app = FastAPI(
        title="Order items query service",
        version="1",
        summary="Each user's ordered items by price group, read from the OrderPlaced events.",
        lifespan=lifespan,
    )
    app.state.failure = None  # why the instance is ending itself, once it is
    app.include_router(router)
    install_error_handlers(app)
    install_access(app, cfg, verifier)
    app.add_middleware(RequestTimer, metrics=metrics)
    app.add_middleware(ServedBy, instance_id=cfg.query_instance_id)
    # The page calls the command service and the issuer's token endpoint, and nothing else.
    app.add_middleware(
        SecurityHeaders,
        connect_origins=[_origin(cfg.query_command_service_url), _origin(cfg.auth_issuer)],
    )
    if STATIC_DIR.is_dir():
        # Mounted last, so every API route above wins over a file of the same name.
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


WATCH_INTERVAL_S = 0.5
EXIT_GRACE_S = 10.0


async def _watch(
    app: FastAPI, runner: Runner, members: ClusterMembership, terminate: Callable[[str], None]
) -> None:
    """A process whose consumer or membership thread has died must not stay half alive (ready,
    answering from a frozen view): it ends, loudly, for its supervisor to restart it."""
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        failure = runner.failure or members.failure
        if failure is not None:
            app.state.failure = failure
            terminate(f"query instance stopping: {failure!r}")
            return


def exit_process(reason: str) -> None:
    log.critical("%s", reason)
    os.kill(os.getpid(), signal.SIGTERM)
    # Should the orderly shutdown hang, do not outlive it for long.
    threading.Timer(EXIT_GRACE_S, os._exit, args=(EXIT_FAILED,)).start()


def kafka_membership(
    settings: QuerySettings, own_state: Callable[[], Member], runner: Runner
) -> ClusterMembership:
    return Membership(settings, own_state, runner.place, lambda: runner.partitions)


def member_state(
    settings: QuerySettings, runner: Runner, positions: Positions, incarnation: str
) -> Member:
    held = runner.held
    return Member(
        instance_id=settings.query_instance_id,
        incarnation=incarnation,
        url=settings.query_advertised_url,
        heartbeat_ms=int(time.time() * 1000),
        ready=runner.ready,
        partitions={
            p: PartitionState(positions.applied_offset(p), state.lag, state.ready)
            for p, state in held.items()
        },
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
