"""What rules can do, and the running of it.

- ``kinds/``: one module per action kind (its frozen parameters, their validation, its
  execution), registered by one line in ``kinds.KINDS``; ``kind.py``: what a kind is
- ``context.py``: what an action may use (narrow interfaces to the master's parts)
- ``dispatcher.py``: the action dispatcher, made of ``outbox.py`` (action rows and their
  idempotency keys), ``queue.py`` (bounded concurrency, back-pressure), ``locks.py``
  (per-key locks), ``tries.py`` (timeouts, retries, what a try records) and
  ``deadletters.py`` (actions that failed for good, and their retry)
"""
