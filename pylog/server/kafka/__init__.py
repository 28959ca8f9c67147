"""The Kafka wire protocol front-end: framing, dispatch, one module per API family."""
