"""The workstation command ``kneeoa``: train, convert (and later evaluate, bench, bundle, app).

TensorFlow is imported only inside the subcommands that need it.
"""
