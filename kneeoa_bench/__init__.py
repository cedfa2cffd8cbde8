"""Latency, size, memory and accuracy across formats (``kneeoa bench``); runs with the runtime-only install."""
