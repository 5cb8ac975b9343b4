"""Baton's benchmarks, run as modules from the project root (see bench/README.md):

    .venv/bin/python -m bench.run [--quick]              core figures (results-core.json)
    .venv/bin/python -m bench.handoffs [--quick]         inbox, claim race, auth cost
    .venv/bin/python -m bench.engine [--quick]           agent turns
    .venv/bin/python -m bench.replicas --postgres URL    one vs two replicas on PostgreSQL
    .venv/bin/python -m bench.unauthenticated [--quick]  cost of anonymous ~4 MB requests

Shared parts: `server` (child processes and the one `baton serve` launcher), `worker` (the entry
point of child processes running bench code), `stats` (percentiles, ratios, /proc readings,
machine info, the figures table and results JSON), `clients` (channels, sessions, the closed-loop
CreateEvent load), `streams` (follow streams), `cli` (the command line of the figure benches).
"""
