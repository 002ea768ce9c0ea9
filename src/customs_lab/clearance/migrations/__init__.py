"""Alembic migrations of the clearance database (see clearance/database.py: migrate)."""
