"""rltrain: reinforcement-learning training with a compiled core."""

from __future__ import annotations

from rltrain import envs, kernels, reference
from rltrain.algos.grpo import GRPOBaseTrainer, HybridAdvGRPOTrainer, PerEpAdvGRPOTrainer, PerStepAdvGRPOTrainer
from rltrain.algos.ppo import PPOTrainer
from rltrain.algos.reinforce import ReinforceTrainer
from rltrain.config import GRPOConfig, PPOConfig, ReinforceConfig
from rltrain.vec import make_vec, native_envs

__all__ = ["GRPOBaseTrainer", "GRPOConfig", "HybridAdvGRPOTrainer", "PPOConfig", "PPOTrainer", "PerEpAdvGRPOTrainer",
           "PerStepAdvGRPOTrainer", "ReinforceConfig", "ReinforceTrainer", "__version__", "envs", "kernels", "make_vec", "native_envs",
           "reference"]
__version__ = "0.1.0"
