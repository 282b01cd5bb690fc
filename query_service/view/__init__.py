"""The view itself, pure: the fold of events into records, the event decoder, the key layout over
any sorted key-value store, cursors, partitioning and page reads. Imports nothing else of the
service but its exceptions (checked in `make lint`); runs on whichever thread calls it."""
