"""Lowest layer: errors, atomic writes, Ray session start-up, numeric metrics shared by models and
evaluation, plot helpers. Imports nothing else from raviso."""
