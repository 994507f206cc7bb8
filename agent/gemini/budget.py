"""Reconnect budget: jittered exponential backoff from the first retry, capped per window.

Framework gap: the plugin retries a failed first connection not at all, and resets its
retry counter on any server message, so a server that accepts and then dies is dialled
forever. kaiwa allows `max_attempts` connections per `window_s`, waiting between them
(before the first success too, so a transient error at call start is not burnt through in
milliseconds).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable


class BudgetExhausted(RuntimeError):
    """Gemini kept failing; kaiwa stopped reconnecting."""


class ReconnectBudget:
    def __init__(
        self,
        *,
        max_attempts: int,
        window_s: float,
        base_s: float,
        cap_s: float,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.window_s = window_s
        self.base_s = base_s
        self.cap_s = cap_s
        self._jitter = jitter or (lambda: random.uniform(0.5, 1.5))
        self.attempts: deque[float] = deque()

    def recent(self, now: float) -> int:
        while self.attempts and now - self.attempts[0] > self.window_s:
            self.attempts.popleft()
        return len(self.attempts)

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next attempt; raises BudgetExhausted past the budget.

        The first attempt goes at once; every later one backs off, successful or not.
        """
        n = self.recent(now)
        if n >= self.max_attempts:
            raise BudgetExhausted(
                f"Gemini Live connection failed {n} times within {self.window_s:.0f}s"
            )
        if n == 0:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** (n - 1)) * self._jitter()

    def attempted(self, now: float) -> None:
        self.attempts.append(now)
