"""pylog-server: the broker process (Kafka protocol listener; DESIGN.md §5)."""
