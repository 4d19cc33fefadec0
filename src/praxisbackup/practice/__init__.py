"""The practice layer: configuration, application profiles (CGM M1 PRO), services, the nightly job.

It builds on the engine's API (never on its CLI) and is used by the CLI and, later, the web UI.
"""
