"""The composition root: builds the real adapters (or takes the ones a test hands in), wires the
core to them and owns their lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from query_service import statedir
from query_service.api import router
from query_service.dead_letters import KafkaDeadLetters
from query_service.dependencies import Services
from query_service.errors import install_error_handlers
from query_service.ingest import Applied, Ingest
from query_service.metrics import QueryMetrics
from query_service.ports import ConsumerFactory, DeadLetters, TopicProvisioner, ViewStore
from query_service.positions import Caps, Positions
from query_service.reads import Reader
from query_service.runner import Runner, kafka_consumer, kafka_topics, settle_heap
from query_service.settings import QuerySettings
from query_service.store import RocksViewStore
from query_service.tickets import StreamTickets
from query_service.timing import RequestTimer
from shared.access import install_access
from shared.auth import TokenVerifier
from shared.headers import SecurityHeaders

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "web"
WORKER_THREADS = 4


def open_store(settings: QuerySettings) -> ViewStore:
    """The current version of the view; one of an older format is replaced by a new, empty
    version that the runner builds from the log (not ready until it has caught up).
    """
    db_path = statedir.current_version(settings.query_state_dir)
    store = RocksViewStore(db_path, settings.orders_topic)
    if store.legacy:
        store.close()
        version = statedir.new_version(settings.query_state_dir)
        statedir.swap(settings.query_state_dir, version)
        log.warning(
            "%s holds the view in an older format: rebuilding it from the log into %s "
            "(the old version stays on disk for the operator to remove)",
            db_path,
            version,
        )
        store = RocksViewStore(version, settings.orders_topic)
    log.info("serving the view in %s at offsets %s", store.path, store.applied_offsets())
    return store


def create_app(
    settings: QuerySettings | None = None,
    *,
    store: ViewStore | None = None,
    dead_letters: DeadLetters | None = None,
    consumer_factory: ConsumerFactory | None = None,
    provision_topics: TopicProvisioner | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """The query service. Adapters not handed in are the real ones, built from `settings`; the
    store is opened when the app starts (not here), so building an app touches no disk.
    `verifier` checks bearer tokens (default: PyJWT against AUTH_JWKS_URL).
    """
    settings = settings if settings is not None else QuerySettings()
    cfg = settings
    metrics = QueryMetrics()
    secret = cfg.query_stream_ticket_secret
    tickets = StreamTickets(
        secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32),
        cfg.query_stream_ticket_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        view_store = store if store is not None else open_store(cfg)
        letters = dead_letters if dead_letters is not None else KafkaDeadLetters(cfg)
        caps = Caps(cfg.query_max_waiters, cfg.query_max_streams, cfg.query_max_streams_per_user)
        positions = Positions(view_store.applied_offsets(), cfg.query_sse_queue_size, caps)

        def on_applied(applied: Applied) -> None:
            # Runs on the consumer thread, after the batch is durable.
            loop.call_soon_threadsafe(positions.advance, applied.offsets, applied.changes)

        runner = Runner(
            cfg,
            Ingest(view_store, letters, metrics),
            metrics,
            on_applied,
            consumer_factory=consumer_factory or (lambda: kafka_consumer(cfg)),
            provision_topics=provision_topics or kafka_topics(cfg),
        )
        metrics.sse_subscribers.set_function(lambda: positions.subscriber_count)
        metrics.ryw_waiters.set_function(lambda: positions.waiter_count)
        reader = Reader(
            view_store, positions, lambda: runner.partitions or cfg.orders_topic_partitions
        )
        app.state.services = Services(
            cfg,
            metrics,
            reader,
            positions,
            runner,
            anyio.CapacityLimiter(WORKER_THREADS),
            tickets,
        )
        settle_heap()
        runner.start()
        try:
            yield
        finally:
            await asyncio.to_thread(runner.stop)
            letters.close()
            view_store.close()

    app = FastAPI(
        title="Order items query service",
        version="1",
        summary="Each user's ordered items by price group, read from the OrderPlaced events.",
        lifespan=lifespan,
    )
    app.include_router(router)
    install_error_handlers(app)
    install_access(app, cfg, verifier)
    app.add_middleware(RequestTimer, metrics=metrics)
    # The page calls the command service and the issuer's token endpoint, and nothing else.
    app.add_middleware(
        SecurityHeaders,
        connect_origins=[_origin(cfg.query_command_service_url), _origin(cfg.auth_issuer)],
    )
    if STATIC_DIR.is_dir():
        # Mounted last, so every API route above wins over a file of the same name.
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
