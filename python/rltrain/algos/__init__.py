"""Trainers: PPO (actor-critic) and the GRPO family (actor only), sharing one base for the loop around them."""

from __future__ import annotations
