"""The engine schema's Alembic migrations: env.py (run by pfill.engine.db, never by an alembic.ini) and
versions/ (one revision per schema change; r0001_baseline is the schema from before versioning).

A schema change is engine/schema.py plus a revision here: `command.revision(alembic_config(), "what
changed", rev_id="0002")` (pfill.engine.db.alembic_config) writes the file from script.py.mako; fill in
upgrade() and downgrade() with alembic.op. tests/engine/test_migrations.py checks that the revisions
build exactly engine/schema.py on SQLite and PostgreSQL.
"""
