"""The queue: statements, the worker loop, the pipeline, leases, listener, outages."""
