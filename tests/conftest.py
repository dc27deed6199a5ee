"""Shared fixtures: a real Postgres (see pgqueue_enricher.database) and the fake providers."""

pytest_plugins = ["tests.fakes.pytest_plugin"]
