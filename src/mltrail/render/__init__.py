"""Rendering for people: report pages, plots and lifecycle drawings, shared by the node's
dashboard and the standalone HTML reports so that they cannot drift apart.

Modules: :mod:`values` (every value as a cell), :mod:`charts` (matplotlib plots as inline
SVG), :mod:`graph` (lifecycles laid out by Graphviz), :mod:`reports` (the report bodies
and the standalone page). Nothing here reads the ledger or decides a verdict.
"""
