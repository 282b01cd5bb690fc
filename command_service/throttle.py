"""Orders per minute per user, in a moving window (the `limits` package, in memory).

The window lives in this process: with N instances behind a load balancer a user may place up
to N times the limit.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from command_service.exceptions import TooManyOrders


class OrderThrottle:
    def __init__(self, per_minute: int) -> None:
        self._limit = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def take(self, user_id: str) -> None:
        """Count one order for `user_id`; TooManyOrders (with when to retry) past the limit."""
        if self._limiter.hit(self._limit, "orders", user_id):
            return
        stats = self._limiter.get_window_stats(self._limit, "orders", user_id)
        raise TooManyOrders(user_id, max(1, math.ceil(stats.reset_time - time.time())))
