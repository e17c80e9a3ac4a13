"""The command groups of the `raviso` CLI (assembled in the top-level `cli.py`). The top layer:
may import every subpackage and `bench`; stage modules are imported inside each command so that
`raviso --help` stays instant."""
