"""Errors of the query service, under one base class; each carries what its caller needs."""

from __future__ import annotations


class QueryServiceError(Exception):
    """Base class of every error raised by `query_service`."""


class NotYetConsistent(QueryServiceError):
    """The view has not applied the offset a consistency token asks for within the wait."""

    def __init__(self, partition: int, requested_offset: int, applied_offset: int) -> None:
        super().__init__(
            f"the view has applied offset {applied_offset} of partition {partition}, "
            f"not yet {requested_offset}"
        )
        self.partition = partition
        self.requested_offset = requested_offset
        self.applied_offset = applied_offset


class UnknownPartition(QueryServiceError):
    """A consistency token names a partition the orders topic does not have."""

    def __init__(self, partition: int, partitions: int) -> None:
        super().__init__(
            f"the consistency token names partition {partition}, "
            f"but the orders topic has {partitions} partitions"
        )
        self.partition = partition
        self.partitions = partitions


class OrderNotFound(QueryServiceError):
    def __init__(self, user_id: str, order_id: str) -> None:
        super().__init__(f"user {user_id!r} has no applied order {order_id!r}")
        self.user_id = user_id
        self.order_id = order_id


class StateDirError(QueryServiceError):
    """The state directory does not hold what the service expects (wrong topic, bad layout)."""


class DeadLetterFailed(QueryServiceError):
    """Bad records could not be written to the dead-letter topic; their batch is not applied."""

    def __init__(self, failed: int, reason: str) -> None:
        super().__init__(f"{failed} dead-letter records not delivered: {reason}")
        self.failed = failed
        self.reason = reason


class MalformedCursor(QueryServiceError):
    """A page cursor that does not parse, or belongs to another user or listing."""

    def __init__(self, cursor: str, reason: str) -> None:
        super().__init__(f"bad cursor {cursor[:80]!r}: {reason}")
        self.cursor = cursor
        self.reason = reason


class NoCopyAvailable(QueryServiceError):
    """No instance's copy of the partition could answer within the wait (a move, a restart).

    `reason` is routing's last word on why; it is logged, not sent: the answer's text stays
    what clients have always seen."""

    def __init__(self, partition: int, reason: str) -> None:
        super().__init__(f"no caught-up copy of partition {partition} could answer in time")
        self.partition = partition
        self.reason = reason


class PartitionNotHeld(QueryServiceError):
    """A read reached a copy this instance does not hold (it moved meanwhile)."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"this instance does not hold partition {partition}")
        self.partition = partition


class ForeignToken(QueryServiceError):
    """A consistency token of another partition than the user's: it says nothing of this view."""

    def __init__(self, partition: int, users_partition: int) -> None:
        super().__init__(
            f"the consistency token is of partition {partition}, but this user's orders are in "
            f"partition {users_partition}: pass the token of this user's own order"
        )
        self.partition = partition
        self.users_partition = users_partition


class InstanceIdClash(QueryServiceError):
    """Two live query processes use the same QUERY_INSTANCE_ID."""

    def __init__(self, instance_id: str, other_url: str, own_url: str) -> None:
        super().__init__(
            f"another process ({other_url}) is heartbeating as query instance {instance_id!r}, "
            f"like this one ({own_url}): give each instance its own QUERY_INSTANCE_ID"
        )
        self.instance_id = instance_id


class TooBusy(QueryServiceError):
    """A cap on waiters or streams is reached: refused at once (503), never queued."""

    def __init__(self, what: str, cap: int) -> None:
        super().__init__(f"too many {what} (at most {cap}); retry shortly")
        self.what = what
        self.cap = cap


class TooManyStreams(QueryServiceError):
    """The user already holds QUERY_MAX_STREAMS_PER_USER open streams (429)."""

    def __init__(self, user_id: str, cap: int) -> None:
        super().__init__(f"{user_id!r} already has {cap} open streams; close one first")
        self.user_id = user_id
        self.cap = cap


class ConsumerFailed(QueryServiceError):
    """The view's consumer cannot go on (a fatal client error, an offset the log no longer has)."""


class CheckpointRefused(QueryServiceError):
    """A handed-over checkpoint this instance will not open (it builds the partition from the
    log instead); `reason` says which check it failed."""

    def __init__(self, partition: int, reason: str) -> None:
        super().__init__(f"checkpoint of partition {partition} refused: {reason}")
        self.partition = partition
        self.reason = reason


class HandoffBusy(QueryServiceError):
    """This instance already serves QUERY_HANDOFF_MAX_SERVES checkpoints (503, retry later)."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"already serving {cap} checkpoints; retry shortly")
        self.cap = cap


class CheckpointUnavailable(QueryServiceError):
    """This instance holds no state of the partition to hand over (404)."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"this instance holds no state of partition {partition}")
        self.partition = partition
