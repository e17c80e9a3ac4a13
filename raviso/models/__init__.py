"""Plain-PyTorch / numpy models, testable without Ray: the VAE, the FFNN regressors, baselines, the
fold-VAE, the shared epoch loop, the saved MODEL format and the registry of variants
(`variants`). May import core and data."""
