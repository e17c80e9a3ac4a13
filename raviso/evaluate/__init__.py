"""Cross-validation (`cv`, Ray Tune), the statistics (`stats`), the results.json schema (`results`)
and the report (`report`). May import everything below serve."""
