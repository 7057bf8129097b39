"""Enums, contracts that cross Temporal, SQLModel tables, API schemas, settings and the DB engine."""
