"""What rules can do, one module per kind, each with one ``execute(params, ctx)`` coroutine.

``ACTIONS`` is the visible registry. An execute coroutine returns a small result map, or
raises ``ActionFailed`` with a reason; the dispatcher adds timeouts, retries, locks and
dead letters around it.
"""

from __future__ import annotations

from reactord.actions import exec_action, fire, log_action, run, webhook
from reactord.actions.context import Execute

ACTIONS: dict[str, Execute] = {
    "run": run.execute,
    "fire": fire.execute,
    "webhook": webhook.execute,
    "exec": exec_action.execute,
    "log": log_action.execute,
}
