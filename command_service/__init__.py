"""The command service: accepts orders over HTTP and records each as an OrderPlaced event."""
