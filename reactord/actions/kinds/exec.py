"""``exec``: a local program on the master, argv only (never a shell), with the event on stdin.

Keys: ``exec`` (a list: the program and its arguments, templates inside), ``env`` (a mapping
of text values added to a minimal environment, templates inside) and ``cwd``. Default
timeout 60s; a program past it is killed with its process group. The program also gets
``REACTORD_EVENT_ID``, ``REACTORD_RULE`` and ``REACTORD_IDEMPOTENCY_KEY``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactord.actions.context import ActionContext, ActionFailed
from reactord.actions.kind import ActionKind
from reactord.base import jsonable
from reactord.reactor.actionspec import ActionParams
from reactord.reactor.templates import compile_value

MAX_OUTPUT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExecParams(ActionParams):
    argv: Any  # a list of text, templates inside
    env: Any  # a mapping of text values, templates inside
    cwd: str | None


class Exec(ActionKind[ExecParams]):
    name = "exec"
    keys = ("exec", "env", "cwd")
    default_timeout = 60.0
    params_type = ExecParams

    def parse(self, spec: Mapping[str, Any]) -> ExecParams:
        argv = spec["exec"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError("exec: expected a list of program and arguments (argv; no shell)")
        env = spec.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env: expected a mapping of text values")
        cwd = spec.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ValueError("cwd: expected a path")
        return ExecParams(compile_value(argv), compile_value(env), cwd)

    async def execute(self, params: ExecParams, ctx: ActionContext) -> dict[str, Any]:
        argv = _argv(params.argv)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8")}
        env.update({str(k): str(v) for k, v in params.env.items()})
        env["REACTORD_EVENT_ID"] = ctx.event.id
        env["REACTORD_RULE"] = ctx.rule
        env["REACTORD_IDEMPOTENCY_KEY"] = ctx.idempotency_key
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=params.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionFailed(f"cannot run {argv[0]}: {exc.strerror}") from None
        stdin = jsonable.to_json(ctx.event.public()).encode()
        try:
            async with asyncio.timeout(ctx.timeout):
                output, _ = await proc.communicate(stdin)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise ActionFailed(f"{argv[0]} timed out after {ctx.timeout:g}s") from None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        text = output[-MAX_OUTPUT:].decode(errors="replace").strip()
        if proc.returncode != 0:
            raise ActionFailed(f"{argv[0]} exited {proc.returncode}: {text[-300:]}")
        return {"exit": 0, "output": text[-2000:]}


KIND = Exec()


def _argv(values: Any) -> list[str]:
    out = []
    for value in values:
        if isinstance(value, (dict, list)) or value is None:
            raise ActionFailed(f"an argument rendered to {value!r}, not a single value", retry=False)
        out.append(value if isinstance(value, str) else json.dumps(value))
    return out


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
