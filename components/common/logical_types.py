"""Logical column types, the vocabulary of schemas, statistics, preprocessing and the model card.

A module of its own, importing nothing: the model card reads and checks them, and a task that only
moves a model (fetch_champion) would otherwise import pandas through datasets.py (0.35 s of its
second of life)."""

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
DATETIME = "datetime"
TEXT = "text"
LOGICAL_TYPES = (NUMERIC, CATEGORICAL, BOOLEAN, DATETIME, TEXT)
