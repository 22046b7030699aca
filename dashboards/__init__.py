"""The dashboard specs, their format, and the code that reads them.

Package data (shipped, so an installed `pfill` works from any directory):
    <slug>.yaml   one spec per dashboard: the hub and the seven detail dashboards
    schema.json   the specs' JSON Schema, for editors (`pfill schema --out dashboards/schema.json`)

Code, in `specs`: the pydantic models of a spec, the loader (`load_specs`: every error names file
and line), the validator against the queries' declared columns (`validate_specs`), and the JSON
Schema generator (`json_schema`).

`--dashboards DIR` reads a user's own folder instead; only `*.yaml` files not starting with `_` are
read there, so the `.py` files of a copied package folder do no harm. This package imports the pfill
foundation and `pfill.queries`, nothing above them.
"""
