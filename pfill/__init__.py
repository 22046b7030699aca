"""pfill-kit: PowerFill reports as Apache Superset dashboards kept in git, and the engine behind them.

This package is the foundation every other one builds on (configuration, errors, output, options,
dialects, databases, secrets, YAML with line numbers, processes) and, on top of all of them, the
entry points: `cli.py` (the `pfill` command) and `demo.py`. The rest of the distribution:

    pfill.queries     (queries/)     the report SQL and the code that reads it
    pfill.dashboards  (dashboards/)  the dashboard specs and their models
    pfill.engine      (engine/)      the PowerFill engine and its solver
    pfill.deploy      (deploy/)      Superset as code

Layers: foundation <- queries <- dashboards <- deploy; foundation <- queries <- engine; deploy and
engine never import each other (tests/foundation/test_layers.py holds it).
"""


__version__ = "0.1.0"  # pyproject.toml reads it from here; a constant, so `--version` reads no metadata
