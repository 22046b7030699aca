"""Superset as code: the REST client, the local Superset stack, and (later) render/plan/apply/verify."""
