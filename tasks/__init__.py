"""Prefect tasks: one per pipeline step, each running its DVC stage (the stage graph lives in dvc.yaml only)."""
