"""An asyncio event loop on its own thread, for the network servers (OPC UA, Modbus) that are asyncio libraries.

The inspection loop never waits for it. ``post(state)`` leaves the newest
state in a one-slot mailbox and wakes the loop (``call_soon_threadsafe``
writes one byte to a pipe): when the server thread has not yet taken the
previous state (it is stuck or slow), that older state is replaced and the
replacement counted in ``dropped``. The values are state, not events, so the
newest state is the right one to publish; nothing queues up behind a stuck
server and memory stays bounded.

Accounting: ``posted == applied + dropped + failed + (1 if a state is still
waiting else 0)``.
"""
from __future__ import annotations

import asyncio
import threading


class LoopThread:
    def __init__(self, name, start, apply=None, stop=None, start_timeout=30.0):
        """``start()``/``stop()`` are coroutine functions run on the loop; ``apply(state)`` one per taken state.
        An exception in ``start`` is raised here, in the caller (a port in use is a start-up error)."""
        self._apply, self._stop = apply, stop
        self._lock = threading.Lock()
        self._pending = None
        self._scheduled = False
        self.posted = self.applied = self.dropped = self.failed = 0
        self.last_error = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, args=(start,), name=f"edgeinspect-{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout):
            raise TimeoutError(f"{name} server did not start within {start_timeout:g} s")
        if self._start_error is not None:
            self._thread.join(5)
            raise self._start_error

    def _run(self, start):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(start())
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            self._start_error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                self.loop.close()

    @property
    def alive(self):
        return self._thread.is_alive() and not self.loop.is_closed()

    def post(self, state):
        """Hand over the newest state; never blocks."""
        with self._lock:
            self.posted += 1
            if self._pending is not None:
                self.dropped += 1  # the server thread has not taken the previous one: the newest wins
            self._pending = state
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._schedule)
        except RuntimeError:  # loop closed (stopping): the state stays pending and is counted as such
            pass

    @property
    def waiting(self):
        with self._lock:
            return 0 if self._pending is None else 1

    def _schedule(self):
        self.loop.create_task(self._drain())

    async def _drain(self):
        while True:
            with self._lock:
                state, self._pending = self._pending, None
                if state is None:
                    self._scheduled = False
                    return
            try:
                await self._apply(state)
                self.applied += 1
            except Exception as exc:  # noqa: BLE001 - counted; the next state is tried again
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    def call(self, coro_fn, timeout):
        """Run ``coro_fn()`` on the loop and wait up to ``timeout`` s for it (used at close only)."""
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)
        return fut.result(timeout)

    def flush(self, timeout=2.0):
        """Wait (bounded) until the mailbox is empty and the last state applied."""
        if not self.alive:
            return False

        async def nothing():
            return None

        try:
            for _ in range(3):  # a state posted while draining needs one more turn
                self.call(nothing, timeout)
                if not self.waiting and not self._scheduled:
                    return True
        except Exception:  # noqa: BLE001 - a stuck loop: give up, the leftover is counted as waiting
            return False
        return not self.waiting

    def close(self, timeout=5.0):
        if not self.alive:
            return
        if self._stop is not None:
            try:
                self.call(self._stop, timeout)
            except Exception:  # noqa: BLE001 - a stuck server is abandoned with its daemon thread
                pass
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        self._thread.join(timeout)
