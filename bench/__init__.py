"""Benchmarks behind `raviso bench ...`: each prints a table, then one JSON object as its last line.

Figures measured on the development machine are recorded in bench/README.md.
"""
