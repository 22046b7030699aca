"""The report queries and the code that reads them.

Package data (shipped, so an installed `pfill` works from any directory):
    <name>.sql.j2   a report's SQL, templated with deploy-time Jinja ([[ ]], [% %], [# #])
    <name>.yaml     its title, description, parameters and output columns
    _dialect.j2     macros shared by the templates (what differs between the dialects)

Code:
    catalog    load_queries, Query: a template with its metadata, rendered per dialect and tenant
    template   the deploy-time Jinja environment, SQL literals and identifiers, Superset's
               query-time Jinja evaluated at its defaults
    lint       the rules `pfill lint` checks every rendered query against
    preview    running rendered SQL against the engine database (rows, row count, timing)
    cli        the `pfill lint` and `pfill preview` commands

`--queries DIR` reads a user's own folder instead; only `*.sql.j2` and `*.yaml` are read there, so
the `.py` files of a copied package folder do no harm. This package imports only the pfill
foundation (errors, config, dialects, database, secrets, yamlfile, output, options).
"""
