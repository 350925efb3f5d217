"""Versioned SQL migration files, applied in order by hub.storage.migrations."""
