"""Cluster mode (DESIGN.md §9): several masters share one fleet through NATS JetStream.

``engine`` is the only module that imports the NATS client (nats-py, ``pip install
reactord[cluster]``); ``subjects`` (names and partitions) and ``leases`` (partition ownership)
do not. The embedded master never imports this package.
"""
