"""Prefect flows and their deployments."""
