"""WriteGuard: lets whoever started a write stop it before it is saved.

The agent makes one guard per tool call, passes it to the Desk write, and calls
``guard.cancel()`` when the model cancels the call (toolCallCancellation) or the caller
hangs up; a deadline bounds how long the write may take. The store checks the guard
before each attempt, while it waits for a lock, and once more right before COMMIT: a
stopped write is rolled back and raises ``DeskCancelled`` ("nothing was changed").

Thread-safe: ``cancel()`` is meant to be called from another thread (or the event loop)
while the write runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from desk.errors import DeskCancelled


class WriteGuard:
    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        deadline: float | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        """``timeout_s`` from now, or an absolute ``deadline`` on ``time.monotonic()``'s
        clock (the earlier wins if both are given). ``before_commit`` is called in the
        writing thread after the write's body ran, just before the final check and
        COMMIT: a test hook (pause there, cancel from another thread)."""
        limits = [d for d in (deadline,) if d is not None]
        if timeout_s is not None:
            limits.append(time.monotonic() + max(0.0, timeout_s))
        self.deadline: float | None = min(limits) if limits else None
        self.before_commit = before_commit
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._committing = False
        self._saved = False
        self._hooks: list[Callable[[], None]] = []

    # ------------------------------------------------------------ for callers

    def cancel(self) -> bool:
        """Stop the write (and any later write under this guard).

        True: nothing under this guard has been saved, and nothing will be. False: a
        write under it had already passed its final check (it committed, or is
        committing right now); ``saved`` tells which once the write returned."""
        with self._lock:
            too_late = self._committing or self._saved
            self._stop.set()
            # Past the final check the COMMIT must run undisturbed: no hooks then.
            hooks = [] if too_late else list(self._hooks)
        for hook in hooks:  # e.g. cancel a PostgreSQL statement waiting on a lock
            with contextlib.suppress(Exception):
                hook()
        return not too_late

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def saved(self) -> bool:
        """A write under this guard committed."""
        return self._saved

    def remaining(self) -> float | None:
        """Seconds to the deadline (0 when past it), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise DeskCancelled if cancelled or past the deadline."""
        if self._stop.is_set():
            raise DeskCancelled("cancelled")
        if self.expired:
            raise DeskCancelled("deadline")

    # ------------------------------------------------------------- for stores

    def sleep(self, seconds: float) -> None:
        """Back off between retries, waking at once on cancel (and not past the deadline)."""
        remaining = self.remaining()
        self._stop.wait(seconds if remaining is None else min(seconds, remaining))

    @contextlib.contextmanager
    def watching(self, hook: Callable[[], None]) -> Iterator[None]:
        """Call ``hook`` (from the cancelling thread) if cancelled while inside the block."""
        with self._lock:
            self._hooks.append(hook)
        try:
            self.check()  # cancelled before the hook was in place
            yield
        finally:
            with self._lock:
                self._hooks.remove(hook)

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Wrap the COMMIT: the last check, then the point of no return."""
        if self.before_commit is not None:
            self.before_commit()
        with self._lock:
            self.check()
            self._committing = True
        try:
            yield
        except BaseException:
            with self._lock:
                self._committing = False
            raise
        with self._lock:
            self._committing = False
            self._saved = True
