"""raviso: predict isoform expression from gene expression, pretrained VAE + regressors on Ray."""

__version__ = "0.1.0"
