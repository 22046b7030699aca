"""The deploy context: one environment, the tenants chosen in it and the validated specs, with plan,
apply and verify as methods. The CLI, the demo, the tests and the benchmarks all go through it
(after sqlmesh's `Context` and datasette's `Datasette`), so there is one way to deploy.

    with Project.load(settings, "prod") as project:      # validates the sources, logs in
        for plan in project.plan(prune=True):
            project.apply(plan, progress=print)
        failed = [check for _, check in project.verify() if not check.ok]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfill.config import Environment, Settings
from pfill.dashboards.specs import LoadedSpec, load_specs, validate_specs
from pfill.errors import ConfigError, PfillError, UsageError
from pfill.queries.catalog import Query, load_queries

from .access import SecurityState, role_change, stale_roles
from .apply import ApplyResult, apply_plan
from .client import SupersetClient, SupersetError
from .desired import DesiredState, StateBuilder
from .live import LiveState, read_live_all
from .live_cache import DetailCache
from .plan import Plan, make_plan

if TYPE_CHECKING:
    from .verify import Check

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass
class Sources:
    """The queries and the dashboard specs, validated against each other."""

    queries: dict[str, Query]
    specs: list[LoadedSpec]

    @classmethod
    def load(cls, queries_dir: Path | None = None, dashboards_dir: Path | None = None) -> Sources:
        """Load both folders (default: the packaged ones) and fail before anything talks to Superset."""
        queries = load_queries(queries_dir)
        specs = load_specs(dashboards_dir)
        problems = validate_specs(specs, queries)
        if problems:
            raise ConfigError(f"{len(problems)} problem(s) in the dashboard specs:\n  " + "\n  ".join(problems))
        return cls(queries, specs)


@contextmanager
def connect(env: Environment) -> Iterator[SupersetClient]:
    """A logged-in client for the environment's Superset, closed on exit.

    The one place that names the environment: every SupersetError raised while logging in or in the
    body, and every error caused by one (apply's), is re-raised (the same exception) starting with
    `environment <name>: `; for the built-in local environment a Superset that does not listen gets
    the hint to start it."""
    try:
        with SupersetClient(env.superset_url, env.username, env.superset_password(),
                            timeout=env.read_timeout, connect_timeout=env.open_timeout) as client:
            client.login()
            yield client
    except PfillError as exc:
        cause = exc if isinstance(exc, SupersetError) else exc.__cause__
        if not isinstance(cause, SupersetError):
            raise  # not about the Superset session (a spec, a database)
        prefix = f"environment {env.name}: "
        if not str(exc).startswith(prefix):
            exc.args = (prefix + str(exc), *exc.args[1:])
        if env.is_local and cause.kind == "refused":
            exc.hint = "start it with `pfill superset up`"
        raise


@dataclass
class Project:
    env: Environment
    sources: Sources
    states: list[DesiredState]  # one per chosen tenant, in the environment's order
    cache: DetailCache = field(default_factory=lambda: DetailCache(None), repr=False)
    _client: SupersetClient | None = field(default=None, repr=False)
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    @classmethod
    def load(cls, settings: Settings, env_name: str | None = None, tenants: tuple[str, ...] | list[str] = (),
             queries_dir: Path | None = None, dashboards_dir: Path | None = None) -> Project:
        """The environment (default: the settings' one) and its tenants (default: all of them)."""
        env = settings.environment(env_name)
        sources = Sources.load(queries_dir, dashboards_dir)
        unknown = [t for t in tenants if t not in env.tenants]
        if unknown:
            raise UsageError(f"environment {env.name} has no tenant {', '.join(unknown)}; it has: "
                             f"{', '.join(env.tenants) or 'none'}")
        chosen = [env.tenants[t] for t in (tenants or tuple(env.tenants))]
        if not chosen:
            raise ConfigError(f"environment {env.name} has no tenants to deploy")
        states = [StateBuilder(env, tenant, sources.queries, sources.specs).build() for tenant in chosen]
        return cls(env, sources, states, DetailCache.for_superset(settings.home, env.superset_url, env.username))

    # -- the Superset session -----------------------------------------------------------------------
    def __enter__(self) -> Project:
        self._client = self._stack.enter_context(connect(self.env))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._client = None
        self._stack.__exit__(*exc_info)  # the session sees the body's error (connect() names the environment)

    def using(self, client: SupersetClient) -> Project:
        """Work through a client the caller made and owns (another session, an injected fault)."""
        self._client = client
        return self

    @property
    def client(self) -> SupersetClient:
        if self._client is None:
            raise PfillError("not connected: use the project as a context manager (`with project:`)")
        return self._client

    # -- what the commands do -----------------------------------------------------------------------
    def live(self) -> list[LiveState]:
        """What Superset holds for every chosen tenant, read once for all of them."""
        return read_live_all(self.client, self.states, self.cache)

    def plan(self, prune: bool = False) -> list[Plan]:
        """One plan per tenant: the field-level difference between the specs and Superset, and the
        tenant's viewer role; roles of tenants that left the config go with the first plan."""
        viewers = {v for state in self.states for v in state.tenant.viewers}
        lives, security = self.client.together(self.live, lambda: SecurityState.read(self.client, viewers))
        plans = [make_plan(state, live, prune=prune) for state, live in zip(self.states, lives, strict=True)]
        for plan in plans:
            if change := role_change(plan.state, plan.live, security):
                plan.changes.append(change)
            plan.missing_viewers = sorted(set(plan.state.tenant.viewers) - set(security.users))
        if plans:
            plans[0].changes += stale_roles(self.env.name, list(self.env.tenants), security)
        return plans

    def apply(self, plan: Plan, progress: Progress = _quiet) -> ApplyResult:
        """Write exactly what the plan shows (one import bundle, then deletions)."""
        return apply_plan(self.client, plan, progress)

    def verify(self, progress: Progress = _quiet) -> list[tuple[DesiredState, Check]]:
        """Every chart through Superset's chart-data API against the database; every dashboard's charts."""
        from .verify import verify as run_checks  # sqlglot, which only verify needs of the deploy commands

        return [(state, check) for state, live in zip(self.states, self.live(), strict=True)
                for check in run_checks(self.client, state, live.ids, progress)]
