"""The eight report queries (Jinja-templated SQL), shipped as package data."""
