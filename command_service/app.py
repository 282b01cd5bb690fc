"""The composition root: builds the real adapters, owns their lifetime and wires the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

from confluent_kafka import KafkaException
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from command_service.api import MAX_BODY_BYTES, TOKEN_HEADER, router
from command_service.body_limit import BodySizeLimit
from command_service.dependencies import Services
from command_service.errors import install_error_handlers
from command_service.metrics import CommandMetrics
from command_service.publisher import Fallible, KafkaPublisher, Publisher
from command_service.settings import CommandSettings
from command_service.throttle import OrderThrottle
from shared.access import install_access
from shared.auth import TokenVerifier
from shared.exceptions import SchemaRejected
from shared.headers import SecurityHeaders
from shared.http import FRAMEWORK_TELEMETRY
from shared.kafka import ensure_topics, orders_topic
from shared.lifecycle import Terminate, end_on_failure, terminator
from shared.registry import ConfluentSchemaRegistry, SchemaRegistry, register_written
from shared.tracing import Tracing

log = logging.getLogger(__name__)

TopicProvisioner = Callable[[], None]

# Short enough that a shutdown never waits long on an attempt still running in its thread.
TOPIC_ATTEMPT_TIMEOUT_S = 5.0
TOPIC_RETRY_MAX_DELAY_S = 5.0
# How long a graceful shutdown after a fatal failure may take before the process is ended hard.
TERMINATE_GRACE_S = 15.0


async def _publisher_failed(publisher: Fallible) -> str:
    return f"the service cannot publish any more ({await publisher.wait_failed()})"


async def _provision_until_done(provision: TopicProvisioner) -> None:
    """Kafka may be down at start-up: the service comes up anyway (not ready) and keeps trying."""
    delay = 0.5
    while True:
        try:
            await asyncio.to_thread(provision)
        except (KafkaException, TimeoutError) as exc:
            log.warning("could not ensure the orders topic (%s); retrying in %.1fs", exc, delay)
        else:
            log.info("the orders topic is in place")
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, TOPIC_RETRY_MAX_DELAY_S)


async def _register_schema(registry: SchemaRegistry, settings: CommandSettings) -> None:
    """No event is written under a schema the registry refused: the start-up ends here."""
    version = settings.command_event_version
    try:
        await asyncio.to_thread(register_written, registry, settings.orders_topic, version)
    except SchemaRejected as exc:
        log.error("not starting: OrderPlaced v%d cannot be written: %s", version, exc)
        raise


def create_app(
    settings: CommandSettings | None = None,
    publisher: Publisher | None = None,
    *,
    provision_topic: TopicProvisioner | None = None,
    terminate: Terminate | None = None,
    verifier: TokenVerifier | None = None,
    tracing: Tracing | None = None,
    schema_registry: SchemaRegistry | None = None,
) -> FastAPI:
    """The command service. `verifier` checks bearer tokens (default: PyJWT against the
    issuer's JWKS in AUTH_JWKS_URL); with AUTH_DISABLED there is none. `tracing`: off unless
    given. `schema_registry`: where the topic's schema is registered before the first write
    (default: SCHEMA_REGISTRY_URL's, if set); a refusal ends the start-up."""
    tracing = tracing if tracing is not None else Tracing.off()
    settings = settings if settings is not None else CommandSettings()
    publisher = publisher if publisher is not None else KafkaPublisher(settings)
    if provision_topic is None:
        provision_topic = partial(
            ensure_topics, settings, [orders_topic(settings)], TOPIC_ATTEMPT_TIMEOUT_S
        )
    provision = provision_topic
    registry = schema_registry
    if registry is None and settings.schema_registry_url is not None:
        registry = ConfluentSchemaRegistry(settings.schema_registry_url)
    end_process = terminate if terminate is not None else terminator(TERMINATE_GRACE_S)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if registry is not None:
            await _register_schema(registry, settings)
        provisioning = asyncio.create_task(_provision_until_done(provision))
        await publisher.start()
        watching = (
            asyncio.create_task(end_on_failure(app, _publisher_failed(publisher), end_process))
            if isinstance(publisher, Fallible)
            else None
        )
        try:
            yield
        finally:
            for task in (provisioning, watching):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await publisher.close()
            await asyncio.to_thread(tracing.close)

    app = FastAPI(
        title="Orders command service",
        version="1",
        summary="Accepts orders and records each as an OrderPlaced event on Kafka.",
        lifespan=lifespan,
        telemetry=FRAMEWORK_TELEMETRY,
    )
    app.state.services = Services(
        settings,
        publisher,
        CommandMetrics(),
        OrderThrottle(settings.orders_per_minute),
        tracing,
    )
    app.state.failure = None  # why the service is ending itself, once it is
    app.include_router(router)
    install_error_handlers(app)
    install_access(app, settings, verifier)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_allow_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Idempotency-Key", "Authorization"],
        expose_headers=[TOKEN_HEADER, "Retry-After"],
    )
    app.add_middleware(SecurityHeaders)
    return app
