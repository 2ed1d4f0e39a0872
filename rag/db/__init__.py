"""Database: SQLAlchemy models (the source of truth), engine/session factory, migrations."""
