"""What operators see of a running fleet: the worker registry, health and metrics."""
