"""Pub/sub: the channel registry, the batching hub and the connector interface."""
