"""PPO for discrete actions in one file, CleanRL style, on rltrain's vector env and GAE kernel.

    python examples/cleanrl_ppo.py --env-id CartPole-v1 --total-timesteps 100000 --json run.json
    python examples/cleanrl_ppo.py --backend gymnasium      # the baseline: SyncVectorEnv + a NumPy GAE loop

Read it top to bottom: the arguments, the environments, the agent, the advantage estimate, then the training
loop (collect ``num_steps`` steps from ``num_envs`` envs, estimate advantages, optimise the clipped objective).

Episodes cut by a time limit are not failures: the value of the observation the episode really ended on is the
bootstrap target there (Pardo et al. 2018, "Time Limits in Reinforcement Learning"). Both backends autoreset in
the same step and return that observation in ``info["final_obs"]``; the script evaluates it and hands the values
to GAE with ``terminated=`` and ``final_values=``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from torch import nn
from torch.distributions import Categorical

import rltrain
import rltrain.kernels


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """gymnasium id of a discrete-action env (a native id runs on rltrain's C++ batcher)"""
    backend: Literal["rltrain", "gymnasium"] = "rltrain"
    """rltrain: rltrain.make_vec + rltrain.kernels.gae; gymnasium: SyncVectorEnv + a NumPy GAE loop"""
    total_timesteps: int = 100_000
    """env steps over all envs"""
    seed: int = 1
    """seeds torch, the envs (env i gets seed + i) and the action sampling"""
    num_envs: int = 4
    """parallel envs"""
    num_steps: int = 128
    """steps per env per rollout"""
    learning_rate: float = 2.5e-4
    """Adam step size, decayed linearly to 0 when anneal_lr"""
    anneal_lr: bool = True
    """linear learning-rate decay over the run"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 is the TD(0) error, 1 the Monte-Carlo return minus V"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """passes over each rollout"""
    clip_coef: float = 0.2
    """PPO's ratio clip (and the value clip)"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """value-loss weight"""
    max_grad_norm: float = 0.5
    """gradient-norm clip"""
    torch_threads: int = 1
    """torch intra-op threads (small networks run fastest on one)"""
    json: str | None = None
    """write steps/s and the episodic returns (by global step) to this file"""


def make_envs(args: Args) -> gym.vector.VectorEnv:
    """Same-step autoreset and ``info["episode"]`` on both backends."""
    if args.backend == "rltrain":
        return rltrain.make_vec(args.env_id, args.num_envs, seed=args.seed)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(args.env_id)] * args.num_envs,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def layer(n_in: int, n_out: int, std: float = 2**0.5) -> nn.Linear:
    """Orthogonal weights, zero bias (the initialisation of the PPO implementation details)."""
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
        self.actor = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_actions, 0.01))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.get_value(x)


def compute_advantages(
    backend: str, rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, terminated: np.ndarray,
    final_values: np.ndarray, last_values: np.ndarray, gamma: float, lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE over ``[T, N]`` buffers; returns (advantages, returns). ``dones[t]``: an episode ended at step t;
    ``terminated[t]``: it ended for real (bootstrap 0), else a time limit cut it (bootstrap ``final_values[t]``,
    the value of the true final observation)."""
    if backend == "rltrain":
        return rltrain.kernels.gae(rewards, values, dones, last_values, gamma=gamma, lam=lam,
                                   terminated=terminated, final_values=final_values)
    advantages = np.zeros_like(rewards)
    last_gae = np.zeros_like(last_values)
    for t in reversed(range(len(rewards))):
        next_values = last_values if t == len(rewards) - 1 else values[t + 1]
        bootstrap = np.where(dones[t], np.where(terminated[t], 0.0, final_values[t]), next_values)
        delta = rewards[t] + gamma * bootstrap - values[t]
        last_gae = delta + gamma * lam * (1.0 - dones[t]) * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def final_observation_values(agent: Agent, infos: dict, truncated: np.ndarray) -> np.ndarray:
    """V(true final observation) where an episode was truncated this step, 0 elsewhere."""
    out = np.zeros(len(truncated), np.float32)
    where = np.flatnonzero(truncated & infos.get("_final_obs", np.zeros_like(truncated)))
    if where.size:
        final = torch.as_tensor(np.stack(infos["final_obs"][where]), dtype=torch.float32)
        with torch.no_grad():
            out[where] = agent.get_value(final).numpy()
    return out


def main(args: Args) -> dict:
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    torch.backends.cudnn.deterministic = True

    envs = make_envs(args)
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "this script is for discrete actions"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(obs_dim, int(envs.single_action_space.n))
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    T, N = args.num_steps, args.num_envs
    obs = torch.zeros((T, N, obs_dim))
    actions = torch.zeros((T, N), dtype=torch.long)
    logprobs = torch.zeros((T, N))
    rewards, values, final_values = (np.zeros((T, N), np.float32) for _ in range(3))
    dones, terminated = np.zeros((T, N), bool), np.zeros((T, N), bool)

    episodes: list[tuple[int, float]] = []
    global_step, rollout_seconds, gae_seconds = 0, 0.0, 0.0
    next_obs = torch.as_tensor(envs.reset(seed=args.seed)[0], dtype=torch.float32)
    start = time.perf_counter()
    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate

        t0 = time.perf_counter()
        for step in range(T):
            global_step += N
            obs[step] = next_obs
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value.numpy()
            o, r, term, trunc, infos = envs.step(action.numpy())
            rewards[step], dones[step], terminated[step] = r, term | trunc, term
            final_values[step] = final_observation_values(agent, infos, trunc)
            next_obs = torch.as_tensor(o, dtype=torch.float32)
            if "_episode" in infos:
                episodes += [(global_step, float(ret)) for ret in infos["episode"]["r"][infos["_episode"]]]
        rollout_seconds += time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            last_values = agent.get_value(next_obs).numpy()
        adv, ret = compute_advantages(args.backend, rewards, values, dones, terminated, final_values, last_values,
                                      args.gamma, args.gae_lambda)
        gae_seconds += time.perf_counter() - t0

        b_obs, b_actions, b_logprobs = obs.reshape(-1, obs_dim), actions.reshape(-1), logprobs.reshape(-1)
        b_adv, b_ret = torch.as_tensor(adv).reshape(-1), torch.as_tensor(ret).reshape(-1)
        b_values = torch.as_tensor(values).reshape(-1)
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch_size).split(minibatch_size):
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = (b_adv[mb] - b_adv[mb].mean()) / (b_adv[mb].std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_clipped = b_values[mb] + (newvalue - b_values[mb]).clamp(-args.clip_coef, args.clip_coef)
                v_loss = 0.5 * torch.max((newvalue - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        recent = [r for _, r in episodes[-20:]]
        print(f"step {global_step:>8}  sps {global_step / (time.perf_counter() - start):8.0f}  "
              f"return(last 20) {np.mean(recent) if recent else float('nan'):8.2f}")
    seconds = time.perf_counter() - start
    envs.close()

    result = {"args": asdict(args), "steps": global_step, "seconds": seconds, "sps": global_step / seconds,
              "rollout_sps": global_step / rollout_seconds, "gae_seconds": gae_seconds,
              "episodes": [{"step": s, "return": r} for s, r in episodes]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
