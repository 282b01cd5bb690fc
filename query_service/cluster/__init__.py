"""The instances as a cluster: the pure model and routing decision, placement, the membership
heartbeat thread, and forwarding a read to another instance (on the event loop)."""
