"""Running functions as jobs: allowed names only, bounded concurrency, a deadline per job.

Functions run in a bounded thread pool so the agent's event loop never blocks. At the
deadline the job is reported as timed out and its context is cancelled: cooperative
functions stop at once, and those that run programs kill the program's process group.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePath
from typing import Any

from minion.beacons.runner import BeaconManager
from minion.errors import FunctionError
from minion.functions.context import JobContext, Outcome, Settings
from reactord.protocol import codec
from reactord.protocol.errors import EncodeError
from reactord.protocol.events import MAX_DATA_DEPTH, data_depth_ok
from reactord.protocol.messages import CommandBody, Return

log = logging.getLogger("minion.jobs")


class Executor:
    def __init__(
        self,
        minion_id: str,
        functions: Mapping[str, Callable[..., Any]],
        grains: Mapping[str, Any],
        workers: int,
        *,
        max_return_bytes: int = 512 * 1024,
        known: Mapping[str, Callable[..., Any]] | None = None,
        settings: Settings | None = None,
        emit: Callable[[list[tuple[str, dict[str, Any]]], str | None], list[int]] | None = None,
        beacons: BeaconManager | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.minion_id = minion_id
        self.clock = clock  # a return's started and finished (a job's deadline is monotonic time)
        self.max_return_bytes = max_return_bytes
        self.functions = functions
        self.known = known if known is not None else functions
        self.grains = grains
        self.settings = settings or Settings()
        self.emit = emit
        self.beacons = beacons
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self.running: dict[str, JobContext] = {}
        self.counts: Counter[str] = Counter()  # jobs by outcome: ok, failed, timed_out, refused

    async def run(self, body: CommandBody) -> Return:
        started = self.clock()
        self.loop = asyncio.get_running_loop()
        ctx = JobContext(
            jid=body.jid,
            minion_id=self.minion_id,
            deadline=time.monotonic() + body.timeout,
            grains=self.grains,
            functions=self.functions,
            settings=self.settings,
            emit=self.emit,
            beacons=self.beacons,
            loop=self.loop,
        )
        try:
            call = self._prepare(body, ctx)
        except FunctionError as exc:
            return self._return(body, started, False, 1, None, str(exc))
        self.running[body.jid] = ctx
        future = asyncio.get_running_loop().run_in_executor(self.pool, call)
        try:
            async with asyncio.timeout(body.timeout):
                value = await asyncio.shield(future)
        except TimeoutError:
            ctx.cancelled.set()
            log.warning(
                "job %s (%s) timed out after %gs", body.jid, body.fun, body.timeout, extra={"jid": body.jid}
            )
            return self._return(body, started, False, 124, None, f"timed out after {body.timeout:g}s")
        except FunctionError as exc:
            return self._return(body, started, False, 1, None, str(exc))
        except Exception as exc:  # the function's own failure is the job's result, not ours
            return self._return(body, started, False, 1, None, f"{type(exc).__name__}: {exc}")
        finally:
            self.running.pop(body.jid, None)
        ok, retcode = True, 0
        if isinstance(value, Outcome):
            ok, retcode, value = value.retcode == 0, value.retcode, value.value
        if not data_depth_ok([value], MAX_DATA_DEPTH - 1):  # the master reads no deeper than events
            error = f"the return nests deeper than {MAX_DATA_DEPTH - 1} levels: not sent"
            return self._return(body, started, False, retcode or 1, None, error)
        return self._return(body, started, ok, retcode, wire_safe(value), None)

    def _prepare(self, body: CommandBody, ctx: JobContext) -> Callable[[], Any]:
        fn = self.functions.get(body.fun)
        if fn is None:
            if body.fun in self.known:
                self.counts["refused"] += 1
                log.warning(
                    "refused %s (job %s): not in functions.allow", body.fun, body.jid, extra={"jid": body.jid}
                )
                raise FunctionError(
                    f"{body.fun} is not allowed on this minion (functions.allow in minion.yaml)"
                )
            raise FunctionError(f"no function {body.fun} on this minion")
        kwargs = dict(body.kwargs)
        signature = inspect.signature(fn)
        if "ctx" in signature.parameters:
            kwargs["ctx"] = ctx
        try:
            signature.bind(*body.args, **kwargs)
        except TypeError as exc:
            raise FunctionError(f"bad arguments for {body.fun}: {exc}") from exc
        return lambda: fn(*body.args, **kwargs)

    def _count(self, ret: Return) -> Return:
        outcome = "ok" if ret.success else "timed_out" if ret.retcode == 124 else "failed"
        self.counts[outcome] += 1
        return ret

    def _return(
        self, body: CommandBody, started: float, success: bool, retcode: int, value: Any, error: str | None
    ) -> Return:
        ret = Return(
            jid=body.jid,
            id=self.minion_id,
            success=success,
            retcode=retcode,
            ret=value,
            error=error,
            started=started,
            finished=self.clock(),
        )
        size = len(ret.to_wire())
        if size > self.max_return_bytes:
            # A return the master could never accept would block this minion's channel: say so instead.
            log.warning(
                "job %s returned %d bytes, more than %d: not sent", body.jid, size, self.max_return_bytes
            )
            ret = Return(
                jid=body.jid,
                id=self.minion_id,
                success=False,
                retcode=retcode or 1,
                ret=None,
                error=(
                    f"the return was {size} bytes, more than one message carries ({self.max_return_bytes}); "
                    "ask for less, or raise max_message_size on master and minion"
                ),
                started=started,
                finished=self.clock(),
            )
        return self._count(ret)

    def cancel_all(self) -> None:
        for ctx in self.running.values():
            ctx.cancelled.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def wire_safe(value: Any) -> Any:
    """``value`` made packable: tuples and sets become lists, other objects their text."""
    try:
        codec.pack(value)
        return value
    except EncodeError:
        pass
    if isinstance(value, Mapping):
        return {str(k): wire_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [wire_safe(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, int):
        return str(value)  # beyond 64 bits
    return repr(value) if not isinstance(value, (str, bytes, float, bool)) else value
