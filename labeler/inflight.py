"""Jobs in flight on a runner (labeler.work's process pool, labeler.distributed's Ray tasks, or this
process): the :class:`Runner` interface, and the two windows over it: :class:`Ordered` (results in
submission order, for the sequential run) and :class:`Unordered` (results as they finish, for a
partitioned run, labeler.fanout)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Protocol


class Runner(Protocol):
    """Runs the functions above somewhere; results come back through ``result`` in any order the
    caller asks for (the pipeline asks in submission order)."""

    workers: int

    def submit(self, fn: Callable, job: Any) -> Any: ...

    def result(self, handle: Any) -> Any: ...

    def first_done(self, handles: list) -> list[int]: ...  # the indices of the handles done (one at least)

    def close(self) -> None: ...


class InlineRunner:
    """Runs each job in this process as it is submitted, through ``call(fn, job)`` (one local worker
    with the caller's own detector and model)."""

    workers = 1

    def __init__(self, call: Callable[[Callable, Any], Any]):
        self.call = call

    def submit(self, fn: Callable, job: Any) -> Any:
        return self.call(fn, job)

    def result(self, handle: Any) -> Any:
        return handle

    def first_done(self, handles: list) -> list[int]:
        return [0]

    def close(self) -> None:
        pass


class Unordered:
    """Jobs submitted to a runner, at most ``window`` in flight, their results taken back as they
    finish (in any order: a slow job holds up nobody)."""

    def __init__(self, runner: Runner, fn: Callable, window: int):
        self.runner, self.fn, self.window = runner, fn, max(1, window)
        self.inflight: list = []

    def put(self, job: Any) -> list[Any]:
        """Submit ``job``; return the results that had to be taken back to make room."""
        self.inflight.append(self.runner.submit(self.fn, job))
        out = []
        while len(self.inflight) >= self.window:
            out += self._take()
        return out

    def _take(self) -> list[Any]:
        done = set(self.runner.first_done(self.inflight))
        out = [self.runner.result(h) for i, h in enumerate(self.inflight) if i in done]
        self.inflight = [h for i, h in enumerate(self.inflight) if i not in done]
        return out

    def drain(self) -> list[Any]:
        out = []
        while self.inflight:
            out += self._take()
        return out


class Ordered:
    """Jobs submitted to a runner, their results taken back in submission order, with at most
    ``window`` jobs (and about ``max_bytes`` of images) in flight, so memory stays flat."""

    def __init__(self, runner: Runner, fn: Callable, window: int, max_bytes: int = 256 << 20):
        self.runner, self.fn, self.window, self.max_bytes = runner, fn, max(1, window), max_bytes
        self.inflight: deque = deque()
        self.bytes = 0

    def put(self, job: Any, nbytes: int = 0) -> list[Any]:
        """Submit ``job``; return the results that had to be taken back to make room (in order)."""
        self.inflight.append((self.runner.submit(self.fn, job), nbytes))
        self.bytes += nbytes
        out = []
        while self.inflight and (len(self.inflight) > self.window or self.bytes > self.max_bytes):
            out.append(self._take())
        return out

    def _take(self) -> Any:
        handle, nbytes = self.inflight.popleft()
        self.bytes -= nbytes
        return self.runner.result(handle)

    def drain(self) -> list[Any]:
        return [self._take() for _ in range(len(self.inflight))]
