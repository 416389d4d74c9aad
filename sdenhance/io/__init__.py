"""Image files in and out: safe loading of every mode, atomic saving, and the metadata they carry."""
