"""The `pgqueue-enricher` command."""
