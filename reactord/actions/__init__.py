"""What rules can do, and the running of it.

``kinds/``: one module per action kind (its frozen parameters, their validation, its
execution), registered by one line in ``kinds.KINDS``; ``kind.py``: what a kind is;
``context.py``: what an action may use (narrow interfaces to the master's parts);
``dispatcher.py``: the action outbox, run with bounded concurrency, per-key locks, timeouts,
retries and dead letters.
"""
