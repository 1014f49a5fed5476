"""bayes_intl: a Bayesian re-analysis toolkit for a published logit of SME internationalization on CAPINNO."""

__version__ = "0.1.0"
