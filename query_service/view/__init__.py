"""The view itself, pure: the fold of events into records, the event decoder, the key layout over
any sorted key-value store, cursors, partitioning and page reads. Imports nothing else of the
service but its exceptions and ports' value types; runs on whichever thread calls it."""
