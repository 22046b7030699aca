"""The revisions of the engine schema, oldest first (Alembic reads them by path; see ..)."""
