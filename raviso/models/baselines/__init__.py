"""Baselines: gene-only ones and the tissue-aware ones."""
