"""streamrec tooling: everything that drives or measures a deployment from outside.

The demo, bench, eval and replay commands, the local stack (embedded broker + worker
processes), plain-client produce/consume helpers, dataset readers, the offline
evaluation math and the simulation study. Imports go one way, tooling -> ``streams``
-> ``workers``: the runtime never imports this package (``streams/cli.py`` only
lazily, inside a command), and the worker images do not ship it.
"""
