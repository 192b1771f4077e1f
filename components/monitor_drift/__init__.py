"""Drift monitoring stage: current data against the training reference, and a retrain decision."""
