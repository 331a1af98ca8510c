"""The master's embedded storage: one SQLite database (WAL) in ``state_dir``.

The reactor reaches storage only through the small classes in this package (minions, jobs,
and later the event log and rule state), so another backend can take SQLite's place.
"""
