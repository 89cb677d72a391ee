"""One package per domain: its problem, the formats only it speaks and what only it knows how to score.

`metacot_core.registry` finds every package here; each package's `__init__.py` names its Domain class
(`DOMAIN`) and its own formats (`FORMATS`) as import paths. See docs/adding-a-domain.md.
"""
