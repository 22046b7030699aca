"""Superset as code, and nothing else: every module here talks to Superset or shapes what is sent.

- project.py: the deploy context (environment, tenants, validated sources; plan, apply, verify),
  which the CLI, the demo, the tests and the benchmarks share
- client.py: the REST client (one session, login and CSRF, retries on idempotent calls, timeouts)
- local_superset.py: the local Superset 6.1 (install from the pinned constraints, start, stop)
- identity.py: deterministic UUIDs and the ownership marker that prune and the UI read
- desired.py, charts.py, layout.py: what Superset should hold (database, datasets, charts, dashboards)
- live.py, plan.py: what it holds, and the field-level difference
- apply.py, bundle.py: the write (one import bundle, then deletions)
- verify.py, export.py: proof that charts match the database; specs from existing dashboards
- cli.py, stack_cli.py: the commands (plan, apply, verify, export, validate, schema; superset, env)

The report SQL and the dashboard specs it deploys live in `pfill.queries` and `pfill.dashboards`.
"""
