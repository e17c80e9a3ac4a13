"""Final models for users: `fit` (train on all labelled samples, save MODEL) and `predict` (apply
MODEL to new gene expression). May import every layer below."""
