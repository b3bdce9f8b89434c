"""likeness: consent-first synthetic media. Make it, label it, verify it."""

__version__ = "0.1.0"
