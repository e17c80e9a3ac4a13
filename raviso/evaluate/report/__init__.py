"""report.md: its sections, tables, plots and the verdict."""
