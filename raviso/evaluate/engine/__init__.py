"""The CV engine's parts: a trial's inputs, scoring, resuming, capacity and repeats."""
