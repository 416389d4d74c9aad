"""Image files in and out: safe loading of every mode, atomic saving, their metadata."""
