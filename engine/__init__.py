"""The PowerFill engine: data model, demo data, the six pipeline steps and the run lifecycle."""
