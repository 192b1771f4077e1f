"""The serving runtime: the suite's KServe model server (server.py), its command line
(``python -m mlstages.components.serving``) and infra validation (infra.py).

Importing the package loads nothing heavy; ``server`` and ``infra`` import kserve.
"""
