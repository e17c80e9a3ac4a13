"""Hyper-parameter search: the space, the Tune search, nested tuning inside CV folds."""
