"""The VAE: model, config, its epoch loop, and the per-fold VAE + FFNN variant."""
