"""Maintenance tools (README generation)."""
