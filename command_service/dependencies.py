"""What the routes need, built once by the composition root and handed over through the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from command_service.metrics import CommandMetrics
from command_service.publisher import Publisher
from command_service.settings import CommandSettings


@dataclass(frozen=True)
class Services:
    settings: CommandSettings
    publisher: Publisher
    metrics: CommandMetrics


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]
