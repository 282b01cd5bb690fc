"""The composition root: builds the store, positions, runner and reader, and owns their lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from query_service import statedir
from query_service.api import RequestTimer, install_error_handlers, router
from query_service.dead_letters import KafkaDeadLetters
from query_service.ingest import Applied, Ingest
from query_service.metrics import QueryMetrics
from query_service.positions import Positions
from query_service.reads import Reader
from query_service.runner import Runner, settle_heap
from query_service.settings import QuerySettings
from query_service.store import RocksViewStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "web"


def create_app(settings: QuerySettings | None = None) -> FastAPI:
    settings = settings if settings is not None else QuerySettings()
    metrics = QueryMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        db_path = statedir.current_version(settings.query_state_dir)
        store = RocksViewStore(db_path, settings.orders_topic)
        log.info("serving the view in %s at offsets %s", db_path, store.applied_offsets())
        positions = Positions(store.applied_offsets(), settings.query_sse_queue_size)
        dead_letters = KafkaDeadLetters(settings)

        def on_applied(applied: Applied) -> None:
            # Runs on the consumer thread, after the batch is durable.
            loop.call_soon_threadsafe(positions.advance, applied.offsets, applied.views)

        runner = Runner(settings, Ingest(store, dead_letters, metrics), metrics, on_applied)
        metrics.sse_subscribers.set_function(lambda: positions.subscriber_count)
        metrics.ryw_waiters.set_function(lambda: positions.waiter_count)
        app.state.positions = positions
        app.state.runner = runner
        app.state.reader = Reader(
            store, positions, lambda: runner.partitions or settings.orders_topic_partitions
        )
        settle_heap()
        runner.start()
        try:
            yield
        finally:
            await asyncio.to_thread(runner.stop)
            dead_letters.close()
            store.close()

    app = FastAPI(title="Order items query service", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestTimer, metrics=metrics)
    if STATIC_DIR.is_dir():
        # Mounted last, so every API route above wins over a file of the same name.
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app
