"""safealign: SFT-then-PPO safety alignment, measured across languages against pure-RL and SFT-only baselines."""

__version__ = "0.1.0"
