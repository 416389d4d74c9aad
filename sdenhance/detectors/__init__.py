"""Detectors that find regions to work on (faces), with a registry; the geometry lives in `ops`."""
