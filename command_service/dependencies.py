"""What the routes need, built once by the composition root and handed over through the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from command_service.metrics import CommandMetrics
from command_service.publisher import Publisher
from command_service.settings import CommandSettings
from command_service.throttle import OrderThrottle
from shared.tracing import Tracing


@dataclass(frozen=True)
class Services:
    settings: CommandSettings
    publisher: Publisher
    metrics: CommandMetrics
    throttle: OrderThrottle
    tracing: Tracing


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def _services_dependency(request: Request) -> Services:
    # async: FastAPI would run a plain `def` dependency in a worker thread on every request.
    return services(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]
