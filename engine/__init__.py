"""The PowerFill engine: fills the pfill_* tables that the dashboards read, one run at a time.

- data in and out: schema.py (the tables), db.py (open the database, create or upgrade the schema),
  migrations/ (the Alembic revisions that version it: `pfill db init | upgrade | current`),
  inputs.py (a tenant's inputs as numpy arrays), bulk.py (fast bulk writes)
- market rules: market.py (instruments, limits, cash window), pairs.py (eligible pairs), reasons.py
- one run: context.py (RunContext), state.py (the typed step outputs), pipeline.py (execute_run),
  runs.py (lifecycle: BR-8, heartbeat, cancel, reconcile, BR-9 cleanup, retention), beside.py (a step
  that needs only the inputs, in a process of its own beside the rest of a large run)
- steps/: the six pipeline steps (cash_grid, settle_price, candidates, allocation, pool_guide, synthetic)
- solver/: the allocation algorithm (problem, greedy, optimal and its LP, rounding and repair)
- demo_data.py: deterministic demo inputs; cli.py: `pfill db`, `demo-data`, `run`, `runs`
"""
