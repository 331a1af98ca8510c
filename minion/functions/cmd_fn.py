"""``cmd.*``: run programs. Never through a shell unless ``functions.shell: true``."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from minion.errors import FunctionError
from minion.functions.context import JobContext, Outcome


def run(
    cmd: str | list[str],
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    shell: bool = False,
    *,
    ctx: JobContext,
) -> Outcome:
    """Run a program; return ``{retcode, stdout, stderr}`` (success when it exits 0).

    ``cmd`` is an argv list, or a string split like a shell would split words (``shlex``),
    with no shell features: ``a; touch /tmp/x`` runs a program named ``a;`` with the
    arguments ``touch`` and ``/tmp/x`` (which fails: there is no such program).
    ``shell=True`` is refused unless ``functions.shell`` is true in minion.yaml. The program
    runs in its own process group, killed as a whole when ``timeout`` (default
    ``functions.cmd_timeout``) or the job's deadline passes. Output is capped at
    ``functions.max_output`` bytes per stream.
    """
    if shell:
        if not ctx.settings.shell:
            raise FunctionError("shell=True is refused: set functions.shell: true in minion.yaml to allow it")
        if not isinstance(cmd, str):
            raise FunctionError("with shell=True, cmd is one string")
        argv = ["/bin/sh", "-c", cmd]
    elif isinstance(cmd, str):
        argv = shlex.split(cmd)
    elif isinstance(cmd, list) and all(isinstance(a, (str, int, float)) for a in cmd):
        argv = [str(a) for a in cmd]
    else:
        raise FunctionError("cmd is an argv list or a string")
    if not argv:
        raise FunctionError("an empty command")
    environment = dict(os.environ)
    environment.update({str(k): str(v) for k, v in (env or {}).items()})
    limit = min(t for t in (timeout, ctx.settings.cmd_timeout, ctx.remaining() or None) if t)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome({"retcode": 127, "stdout": "", "stderr": f"{argv[0]}: {exc.strerror}"}, 127)
    try:
        out, err = _communicate(proc, limit, ctx)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return Outcome(
            {"retcode": 124, "stdout": _cap(out, ctx), "stderr": _cap(err, ctx) + "\n(timed out)"}, 124
        )
    code = proc.returncode
    return Outcome({"retcode": code, "stdout": _cap(out, ctx), "stderr": _cap(err, ctx)}, code)


def _communicate(proc: subprocess.Popen[bytes], limit: float, ctx: JobContext) -> tuple[bytes, bytes]:
    """Wait for the program, waking up to notice a cancelled job (it kills the group)."""
    waited = 0.0
    while True:
        step = min(0.2, max(0.0, limit - waited))
        try:
            return proc.communicate(timeout=step)
        except subprocess.TimeoutExpired:
            waited += step
            if ctx.cancelled.is_set() or waited >= limit:
                raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _cap(data: bytes, ctx: JobContext) -> str:
    return data[-ctx.settings.max_output :].decode(errors="replace")
