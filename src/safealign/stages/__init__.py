"""Stage entry points that dvc.yaml runs: `python -m safealign.stages.<stage>`. One stage, one module."""
