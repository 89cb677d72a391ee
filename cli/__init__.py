"""The `metacot` command line (cli/main.py) and the server and process helpers its commands use.

Kept apart from flows/, which holds Prefect flows only: a command parses arguments, fails fast on bad
input, starts what it needs (a temporary Prefect API, a local server) and stops it on the way out.
"""
