"""reactord: event-driven infrastructure automation (the master daemon, its CLI and the core).

Importing this package stays cheap: submodules load what they need.
"""

from reactord.protocol import __version__

__all__ = ["__version__"]
