"""Breachflow's state: SQLAlchemy models, schemas, settings and the unit of work.

This package is the bottom of the dependency graph: it imports nothing else of ours.
"""
