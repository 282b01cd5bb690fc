"""The composition root: builds the real adapters (or takes the ones a test hands in), wires the
core to them and owns their lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from query_service.cluster.forwarding import Forwarder
from query_service.cluster.membership import STOP_S as MEMBERSHIP_STOP_S
from query_service.cluster.membership import Membership
from query_service.cluster.model import Member, PartitionState
from query_service.http.dependencies import Services
from query_service.http.errors import install_error_handlers
from query_service.http.fast import FastReads, hot_routes
from query_service.http.handoff import router as handoff_router
from query_service.http.middleware import RequestTimer, ServedBy, served_by
from query_service.http.page_cache import PageCache
from query_service.http.positions import Caps, Positions
from query_service.http.routes import router
from query_service.http.tickets import StreamTickets
from query_service.ingest.batch import Ingest
from query_service.ingest.dead_letters import DELIVERY_TIMEOUT_MS, KafkaDeadLetters
from query_service.ingest.handoff import HandoffReceiver
from query_service.ingest.kafka import kafka_consumer, kafka_topics
from query_service.ingest.runner import Runner
from query_service.metrics import QueryMetrics
from query_service.ports import (
    ClusterMembership,
    ConsumerFactory,
    DeadLetters,
    Handoff,
    Holding,
    MembershipFactory,
    Origins,
    PartitionStores,
    Placeable,
    TopicProvisioner,
)
from query_service.settings import QuerySettings
from query_service.store.rocks import RocksPartitionStores
from query_service.store.serving import CheckpointServer
from query_service.store.upgrade import open_stores
from query_service.view.projection import Changes
from query_service.view.reads import Reader
from shared.access import install_access
from shared.auth import TokenVerifier
from shared.exceptions import SchemaRejected
from shared.headers import SecurityHeaders, security_headers
from shared.http import FRAMEWORK_TELEMETRY
from shared.lifecycle import Terminate, end_on_failure, terminator
from shared.registry import ConfluentSchemaRegistry, SchemaRegistry, check_readable
from shared.tracing import Tracing

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "web"
WORKER_THREADS = 4
# Long enough for a dead-letter delivery under way to finish or time out.
RUNNER_STOP_S = DELIVERY_TIMEOUT_MS / 1000 + 15
# After SIGTERM, how long reads still waiting may go on before they are cancelled (every
# stream ends at once): the clean leave, which tells the others to take over, follows.
SHUTDOWN_GRACE_S = 5.0
# A failed instance's orderly shutdown (leave the cluster, stop the consumer) may take this long
# before the process is ended hard.
TERMINATE_GRACE_S = MEMBERSHIP_STOP_S + RUNNER_STOP_S + 10
WATCH_INTERVAL_S = 0.5


class _LoopProgress:
    """The runner's progress, handed to the event loop's positions in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, positions: Positions) -> None:
        self._loop = loop
        self._positions = positions

    def applied(self, offsets: Mapping[int, int], changes: Changes, origins: Origins) -> None:
        self._loop.call_soon_threadsafe(self._positions.advance, offsets, changes, origins)

    def taken(self, partition: int, applied: int) -> None:
        self._loop.call_soon_threadsafe(self._positions.taken, partition, applied)

    def released(self, partition: int) -> None:
        self._loop.call_soon_threadsafe(self._positions.released, partition)


class _Health:
    """The `Readiness` port over the consumer and membership threads (both swap what it reads)."""

    def __init__(self, runner: Runner, members: ClusterMembership) -> None:
        self._runner = runner
        self._members = members

    def holding(self) -> Holding:
        return self._runner.holding()

    def failure(self) -> BaseException | None:
        return self._runner.failure() or self._members.failure


async def _check_schemas(registry: SchemaRegistry, topic: str) -> None:
    """What writers registered, checked against what this release reads; a registry that does
    not answer is no reason to stop serving."""
    try:
        await asyncio.to_thread(check_readable, registry, topic)
    except SchemaRejected as exc:
        log.warning("the event schemas were not checked: %s", exc)


def create_app(
    settings: QuerySettings | None = None,
    *,
    stores: PartitionStores | None = None,
    dead_letters: DeadLetters | None = None,
    consumer_factory: ConsumerFactory | None = None,
    provision_topics: TopicProvisioner | None = None,
    membership: MembershipFactory | None = None,
    terminate: Terminate | None = None,
    verifier: TokenVerifier | None = None,
    handoff: Handoff | None = None,
    tracing: Tracing | None = None,
    schema_registry: SchemaRegistry | None = None,
) -> FastAPI:
    """The query service. Adapters not handed in are the real ones, built from `settings`; the
    stores are opened when the app starts (not here), so building an app touches no disk.

    `membership` builds the cluster membership adapter (by default Kafka's, membership.py).
    `terminate` ends the process when a part of it has failed for good (by default: a clear log
    line, then exit non-zero, so that a supervisor restarts it).
    `verifier` checks bearer tokens (default: PyJWT against AUTH_JWKS_URL).
    `handoff` receives partitions as checkpoints (default: over HTTP from the other instances,
    when QUERY_CLUSTER_SECRET is set and the stores are RocksDB's).
    `tracing` continues each traced order's trace in its apply (default: off).
    `schema_registry` is asked at start whether it holds a version this release cannot read
    (default: SCHEMA_REGISTRY_URL's, if set): a warning, not a refusal.
    """
    settings = settings if settings is not None else QuerySettings()
    cfg = settings
    registry = schema_registry
    if registry is None and cfg.schema_registry_url is not None:
        registry = ConfluentSchemaRegistry(cfg.schema_registry_url)
    tracing_ = tracing if tracing is not None else Tracing.off()
    metrics = QueryMetrics()
    incarnation = uuid.uuid4().hex
    end_process = terminate if terminate is not None else terminator(TERMINATE_GRACE_S)
    secret = cfg.query_stream_ticket_secret
    tickets = StreamTickets(
        secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32),
        cfg.query_stream_ticket_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if registry is not None:
            await _check_schemas(registry, cfg.orders_topic)
        partition_stores = stores if stores is not None else open_stores(cfg)
        letters = dead_letters if dead_letters is not None else KafkaDeadLetters(cfg)
        positions = Positions({}, cfg.query_sse_queue_size, Caps.of(cfg))
        cluster_secret = cfg.query_cluster_secret
        receiver: Handoff | None = handoff
        checkpoints: CheckpointServer | None = None
        # Hand-off needs the cluster's secret and checkpoints of RocksDB stores (not a test's
        # in-memory ones). The view of members is read once membership exists (below).
        if cluster_secret is not None and isinstance(partition_stores, RocksPartitionStores):
            key = cluster_secret.get_secret_value().encode()
            receiver = HandoffReceiver(cfg, partition_stores, lambda: members.view(), metrics, key)
            checkpoints = CheckpointServer(cfg, partition_stores, metrics)
        runner = Runner(
            cfg,
            Ingest(partition_stores, letters, metrics, tracing_),
            metrics,
            _LoopProgress(loop, positions),
            consumer_factory=consumer_factory or (lambda: kafka_consumer(cfg)),
            provision_topics=provision_topics or kafka_topics(cfg),
            handoff=receiver,
        )

        def own_state() -> Member:
            return member_state(cfg, runner.holding(), incarnation)

        make_membership = membership if membership is not None else kafka_membership
        members = make_membership(cfg, own_state, runner)
        health = _Health(runner, members)
        metrics.sse_subscribers.set_function(lambda: positions.subscriber_count)
        metrics.ryw_waiters.set_function(lambda: positions.waiter_count)
        reader = Reader(
            partition_stores.get,
            positions.applied_offset,
            lambda: runner.partitions or cfg.orders_topic_partitions,
        )
        forwarder = Forwarder(
            members.view,
            runner.holds,
            runner.partition_ready,
            metrics,
            fresh=lambda partition: members.fresh(partition, runner.applied(partition)),
            forward_timeout_s=cfg.query_forward_timeout_ms / 1000,
            suspect_s=cfg.query_member_timeout_ms / 1000,
        )
        await forwarder.start()
        app.state.services = Services(
            cfg,
            metrics,
            reader,
            positions,
            health,
            anyio.CapacityLimiter(WORKER_THREADS),
            forwarder,
            members.view,
            tickets,
            PageCache(cfg.query_page_cache_mb * 2**20),
            checkpoints,
            receiver.in_progress if receiver is not None else dict,
            tracing_,
        )
        runner.start()
        members.start()
        watch = asyncio.create_task(end_on_failure(app, _failed(health), end_process))
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            # First: a clean leave tells the others to take over at once.
            await asyncio.to_thread(members.stop)
            await asyncio.to_thread(runner.stop, RUNNER_STOP_S)
            await forwarder.close()
            letters.close()
            partition_stores.close()
            await asyncio.to_thread(tracing_.close)

    app = FastAPI(
        title="Order items query service",
        version="1",
        summary="Each user's ordered items by price group, read from the OrderPlaced events.",
        lifespan=lifespan,
        telemetry=FRAMEWORK_TELEMETRY,
    )
    app.state.failure = None  # why the instance is ending itself, once it is
    app.include_router(router)
    app.include_router(handoff_router)
    install_error_handlers(app)
    install_access(app, cfg, verifier)
    app.add_middleware(RequestTimer, metrics=metrics)
    app.add_middleware(ServedBy, instance_id=cfg.query_instance_id)
    # The page calls the command service and the issuer's token endpoint, and nothing else.
    connect_origins = [_origin(cfg.query_command_service_url), _origin(cfg.auth_issuer)]
    app.add_middleware(SecurityHeaders, connect_origins=connect_origins)
    # Outermost: a fast answer gets what the three above would give it, from the same sources.
    app.add_middleware(
        FastReads,
        routes=hot_routes(router.routes),
        headers=[served_by(cfg.query_instance_id), *security_headers(connect_origins)],
        metrics=metrics,
    )
    if STATIC_DIR.is_dir():
        # Mounted last, so every API route above wins over a file of the same name.
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def drain(app: FastAPI) -> None:
    """SIGTERM: relayed streams end now, with a `moved` event (the streams served here end by
    themselves: sse-starlette watches for the exit too), so that the clean leave comes soon."""
    services: Services | None = getattr(app.state, "services", None)
    if services is not None:
        services.forwarder.drain()


async def _failed(health: _Health) -> str:
    """Returns once the consumer or membership thread has died: the process must not stay half
    alive (ready, answering from a frozen view)."""
    # Polled: the failures are set by other threads, which know nothing of this loop.
    while (failure := health.failure()) is None:  # noqa: ASYNC110
        await asyncio.sleep(WATCH_INTERVAL_S)
    return f"query instance stopping: {failure!r}"


def kafka_membership(
    settings: QuerySettings, own_state: Callable[[], Member], placed: Placeable
) -> ClusterMembership:
    return Membership(settings, own_state, placed.place, lambda: placed.partitions)


def member_state(settings: QuerySettings, holding: Holding, incarnation: str) -> Member:
    """This instance's heartbeat record (built on the membership thread from the published
    holding, never from the event loop's state)."""
    return Member(
        instance_id=settings.query_instance_id,
        incarnation=incarnation,
        url=settings.query_advertised_url,
        heartbeat_ms=int(time.time() * 1000),
        ready=holding.ready,
        partitions={
            p: PartitionState(state.applied, state.lag, state.ready)
            for p, state in holding.partitions.items()
        },
        kept=dict(holding.kept),
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
