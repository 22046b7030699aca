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



def __getattr__(name: str) -> str:
    """`__version__`, read from the installed distribution when first asked for (not at every start)."""
    if name != "__version__":
        raise AttributeError(f"module 'pfill' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pfill-kit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"
