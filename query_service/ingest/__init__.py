"""The consumer thread and what it drives: Kafka adapters, the batch fold into the stores, dead
letters, and the offline rebuild. Everything here runs on the `query-runner` thread (or in the
rebuild command), never on the event loop."""
