"""The fleet-wide gate in front of each provider, shared through Postgres."""
