"""Running the adapter in a test: an engine opened for the length of a scenario, and the
scenario run to its end in a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from reactord.base.errors import ClusterError
from reactord.cluster.engine import Engine, connect


@asynccontextmanager
async def opened(*urls: str, **options: Any) -> AsyncIterator[Engine]:
    engine = await connect(list(urls), **options)
    try:
        yield engine
    finally:
        await engine.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def one_line(caught: pytest.ExceptionInfo[ClusterError]) -> str:
    """The refusal's message, checked to be one line."""
    text = str(caught.value)
    assert text and "\n" not in text, text
    return text
