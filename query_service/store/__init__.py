"""The view's state on disk: one RocksDB per partition held, the versioned state directory, and
the upgrade of an older format. Called from the consumer thread (writes) and the event loop
(reads through snapshots)."""
