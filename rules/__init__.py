"""Breach-notification law as data: one YAML file per regime, and the engine that reads it."""
