"""What both services share: the OrderPlaced event, money and price groups, consistency tokens,
key partitioning, the settings base and the Kafka client configuration."""
