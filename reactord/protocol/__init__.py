"""The leaf package shared by master and minion: messages, codec, tags, keys, ids, errors.

Nothing here imports from the rest of ``reactord``; ``minion`` imports only this package.
"""

__version__ = "0.1.0"
