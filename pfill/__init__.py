"""pfill-kit: PowerFill reports as Apache Superset dashboards kept in git, and the engine behind them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pfill-kit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
