"""The database schema: migrations and the SQL files they apply."""
