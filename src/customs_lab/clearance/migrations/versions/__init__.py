"""Alembic revisions, oldest first: 0001 foundation, 0002 clearance schema with audit log."""
