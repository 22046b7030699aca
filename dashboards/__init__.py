"""Dashboard specs (YAML), shipped as package data."""
