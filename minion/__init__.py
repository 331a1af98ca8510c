"""The reactord minion: the agent that watches a host and runs functions on it.

It imports nothing from ``reactord`` but ``reactord.protocol`` (a test enforces it).
"""

from reactord.protocol import __version__

__all__ = ["__version__"]
