"""Prefect tasks: one per pipeline step, each running its DVC stage (the stage graph lives in dvc.yaml only; the
stage's own command runs in the task's process, see tasks/steps.py)."""
