"""What the routes need, built once by the composition root and handed over through the app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Request

from query_service.cluster.forwarding import Forwarder
from query_service.cluster.model import ClusterView
from query_service.http.page_cache import PageCache
from query_service.http.positions import Positions
from query_service.http.tickets import StreamTickets
from query_service.metrics import QueryMetrics
from query_service.ports import HandoffProgress, Readiness
from query_service.settings import QuerySettings
from query_service.store.serving import CheckpointServer
from query_service.view.reads import Reader
from shared.tracing import Tracing


@dataclass(frozen=True)
class Services:
    settings: QuerySettings
    metrics: QueryMetrics
    reader: Reader
    positions: Positions
    health: Readiness
    # Bounds the worker threads that reads too large for the event loop may use at once.
    worker_limiter: anyio.CapacityLimiter
    forwarder: Forwarder
    cluster: Callable[[], ClusterView]
    tickets: StreamTickets
    # Event loop only.
    pages: PageCache
    # Hand-off: checkpoints served (None without QUERY_CLUSTER_SECRET), and those being received.
    checkpoints: CheckpointServer | None = None
    handoffs: Callable[[], Mapping[int, HandoffProgress]] = dict
    tracing: Tracing = field(default_factory=Tracing.off)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def _services_dependency(request: Request) -> Services:
    # async: FastAPI would run a plain `def` dependency in a worker thread on every request.
    return services(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]
