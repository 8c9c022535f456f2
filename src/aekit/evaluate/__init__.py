"""Metrics: reconstruction, ELBO and its terms, importance-sampled log-likelihood, latent statistics,
embedding quality and image quality. ``evaluate_model`` gathers what applies to a model."""

from .report import evaluate_model, write_figures

__all__ = ["evaluate_model", "write_figures"]

from .latent import active_units, kl_per_dimension  # noqa: E402
from .likelihood import bits_per_dim, density_report, elbo_terms, log_likelihood  # noqa: E402

__all__ += ["active_units", "bits_per_dim", "density_report", "elbo_terms", "kl_per_dimension", "log_likelihood"]
