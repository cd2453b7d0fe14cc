"""Carrying pub/sub between worker processes: the brokers and their links."""
