"""The checkpoint route, on the API listener (the one instances reach each other on) but not in
its OpenAPI: only other instances of the cluster call it, with the cluster credential."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Path
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from query_service.cluster import credential
from query_service.cluster.credential import CLUSTER_AUTH_HEADER, STATE_BYTES_HEADER
from query_service.exceptions import CheckpointUnavailable
from query_service.http.dependencies import ServicesDep
from query_service.settings import QuerySettings
from shared.exceptions import Forbidden, NotAuthenticated

router = APIRouter(include_in_schema=False)


def authorize(
    settings: QuerySettings, partition: int, cluster_auth: str | None, *, bearer: bool
) -> None:
    """Only an instance holding QUERY_CLUSTER_SECRET may fetch a copy of every user's data in a
    partition: a user's token, whatever its scopes, never."""
    secret = settings.query_cluster_secret
    if secret is None:
        raise CheckpointUnavailable(partition)
    if cluster_auth is None:
        if bearer:
            raise Forbidden(
                "a user's token cannot fetch a checkpoint: only the cluster's instances may, "
                f"with {CLUSTER_AUTH_HEADER}"
            )
        raise NotAuthenticated(f"{CLUSTER_AUTH_HEADER} is required")
    key = secret.get_secret_value().encode()
    if not credential.verify(key, cluster_auth, settings.orders_topic, partition, time.time()):
        raise Forbidden(
            f"{CLUSTER_AUTH_HEADER} does not verify (another QUERY_CLUSTER_SECRET, another "
            "partition, or a clock more than a minute off)"
        )


@router.get("/internal/partitions/{partition}/checkpoint")
async def partition_checkpoint(
    partition: Annotated[int, Path(ge=0, le=100_000)],
    services: ServicesDep,
    cluster_auth: Annotated[str | None, Header(alias=CLUSTER_AUTH_HEADER)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    authorize(services.settings, partition, cluster_auth, bearer=authorization is not None)
    server = services.checkpoints
    if server is None:  # an in-memory store (a test's): nothing to hand over
        raise CheckpointUnavailable(partition)
    served = await anyio.to_thread.run_sync(server.open, partition)
    return StreamingResponse(
        served.chunks(),
        media_type="application/x-tar",
        headers={STATE_BYTES_HEADER: str(served.state_bytes)},
        background=BackgroundTask(served.close),
    )
