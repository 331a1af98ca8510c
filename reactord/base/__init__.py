"""The bottom of the master: what storage, the reactor, the actions and the daemon all use
(errors, JSON at the edges, counters, targets, batches, times, the config), above the
protocol and below everything else."""
