"""The run service: the engine's network door (`pfill serve`, `pfill worker`).

    app.py        the FastAPI application under /api/powerfill: status, submit, list, get, cancel,
                  candidate preview; bearer tokens per tenant; errors as application/problem+json
    models.py     request and response models (the run document's model is built from the
                  run-history table, so the API and `pfill runs show --json` cannot drift)
    problems.py   RFC 9457 problem documents
    tokens.py     one bearer token per tenant, from pfill.yaml or generated locally
    queue.py      submission: the Pending row is the queue entry, written before 202 is answered,
                  with a bounded number of waiting runs
    executors.py  embedded (threads in the server) and Celery (`pfill worker`) executors, and the
                  sweep that fails runs whose process stopped
    tasks.py      the Celery application and its one task
    preview.py    eligible trades and prices for given loans, without a run
    cli.py        `pfill serve`, `pfill worker`, `pfill service up|down|status`

The service is a new door into the same engine, not a second one: a run is the same pipeline
(pipeline.execute_queued), BR-8 is the same database index, cancel the same flag.
"""
