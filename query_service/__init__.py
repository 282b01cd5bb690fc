"""The query service: per-user item views folded from OrderPlaced events, served over HTTP."""
