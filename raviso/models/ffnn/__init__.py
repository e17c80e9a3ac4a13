"""FFNN regressors: the model, how it is fitted, optimiser and training state."""
