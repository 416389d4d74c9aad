"""The package version, on its own so every layer can read it without importing the API."""

__version__ = "0.1.0"
