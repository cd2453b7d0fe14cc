"""Processes: the worker (the seed's ``this``), the single-process runner and the master."""
