"""Metrics: reconstruction, ELBO and its terms, importance-sampled log-likelihood, latent statistics,
embedding quality and image quality. ``evaluate_model`` gathers what applies to a model."""

from .report import evaluate_model, write_figures

__all__ = ["evaluate_model", "write_figures"]
