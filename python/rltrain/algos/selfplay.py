"""Self-play for two-player board games: PPO against a league of frozen past versions of the learner.

The learner is an ordinary PPO agent on a :class:`rltrain.games.GameVectorEnv` whose opponent is a :class:`League`,
a batched player: at the start of each game, env by env, it draws who plays the other side (the latest frozen
version with ``latest_prob``, the built-in random or search opponent with their probabilities (the search's may
differ in the games the learner plays second: ``search_opponent_prob_second``; the search plays a random legal move
with probability ``search_epsilon``), otherwise an older version uniformly) and then answers every step with one
masked forward pass per frozen version in use. A frozen copy of the learner joins every ``snapshot_interval``
iterations; past ``league_size`` the oldest (but the first, the untrained start) leaves. The learner's side is drawn
per game (``agent_player="random"``), so it learns to play first and second; its policy is masked by
``info["action_mask"]``, so it never plays an illegal move. With ``keep_best`` (on by default for TicTacToe, which
has an exact scorer) the trainer scores its greedy policy exactly every ``keep_best_interval`` iterations and ends
the schedule on the best snapshot scored (model selection, as Stable-Baselines3's ``EvalCallback`` keeps a best
model). Checkpoints hold the league (weights, assignments, RNG), the best snapshot so far and the games' state: load
+ train continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rltrain import _core
from rltrain.algos.ppo import PPOTrainer
from rltrain.config import SelfPlayConfig
from rltrain.games.env import GameVectorEnv
from rltrain.vec.games import game_info, native_opponent

__all__ = ["League", "SelfPlayTrainer"]

_RANDOM, _SEARCH = -1, -2  # assignment codes besides league indices (search opponent j of the list: -2 - j)


class League:
    """The opponent pool (see the module docstring); a batched player for :class:`GameVectorEnv`."""

    def __init__(self, template: torch.nn.Module, env_id: str, num_envs: int, cfg: SelfPlayConfig,
                 seed: int) -> None:
        self.template = template
        self.env_id = env_id
        self.cfg = cfg
        search = cfg.search_opponent or ("minimax" if game_info(env_id).search == "minimax" else "alphabeta:2")
        self.search_depths = []  # one per search opponent of the list; a game draws one of them
        for name in search.split(","):
            nat = native_opponent(env_id, name.strip())
            assert nat is not None  # SelfPlayConfig.validate checked the names
            self.search_depths.append(nat[1])
        eps = cfg.search_epsilon
        self.search_epsilon = (0.2 if game_info(env_id).search == "minimax" else 0.0) if eps is None else float(eps)
        self.members: list[torch.nn.Module] = []
        self.member_iters: list[int] = []
        self.assigned = np.full(num_envs, _RANDOM, np.int64)
        # The learner's side per env (+1 X, -1 O) for a game about to start; the trainer points it at its games.
        # Without it every game uses search_opponent_prob.
        self.sides: Callable[[np.ndarray], np.ndarray] | None = None
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1F]))

    # ---------------------------------------------------------------------------------------------- pool

    def add(self, policy: torch.nn.Module, iteration: int) -> None:
        """Freezes a copy of ``policy`` into the league."""
        frozen = copy.deepcopy(policy).cpu().requires_grad_(False)
        frozen.eval()
        self.members.append(frozen)
        self.member_iters.append(int(iteration))
        if len(self.members) > self.cfg.league_size:
            # The first version stays (a weak, diverse opponent); the oldest of the rest leaves. Envs assigned to a
            # leaving version keep playing the version that moves into its slot until their game ends.
            del self.members[1], self.member_iters[1]
            self.assigned[self.assigned >= len(self.members)] = len(self.members) - 1

    # -------------------------------------------------------------------------------------- the player

    def reset(self, env_ids: np.ndarray) -> None:
        c = self.cfg
        n_members = len(self.members)
        second = (np.asarray(self.sides(env_ids)) == -1 if self.sides is not None
                  else np.zeros(len(env_ids), bool))
        for k, i in enumerate(env_ids):
            u = self.rng.random()
            p_search = c.search_opponent_prob
            if second[k] and c.search_opponent_prob_second is not None:
                p_search = c.search_opponent_prob_second
            if u < c.random_opponent_prob or n_members == 0:
                self.assigned[i] = _RANDOM
            elif u < c.random_opponent_prob + p_search:
                self.assigned[i] = _SEARCH - int(self.rng.integers(0, len(self.search_depths)))
            elif n_members == 1 or self.rng.random() < c.latest_prob:
                self.assigned[i] = n_members - 1
            else:
                self.assigned[i] = int(self.rng.integers(0, n_members - 1))

    @torch.no_grad()
    def moves(self, boards: np.ndarray, masks: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(env_ids), np.int64)
        who = self.assigned[env_ids]
        for code in np.unique(who):
            rows = np.flatnonzero(who == code)
            if code == _RANDOM:
                for k in rows:
                    legal = np.flatnonzero(masks[k])
                    out[k] = legal[self.rng.integers(0, len(legal))]
            elif code <= _SEARCH:
                depth = self.search_depths[_SEARCH - int(code)]
                eps = self.search_epsilon
                for k in rows:
                    if eps > 0 and self.rng.random() < eps:
                        legal = np.flatnonzero(masks[k])
                        out[k] = legal[self.rng.integers(0, len(legal))]
                        continue
                    own = boards[k].astype(np.int8)  # the searcher's view: +1 its own stones; search as X
                    if game_info(self.env_id).search == "minimax":
                        best = _core.envs.tictactoe_best_moves(own, 1)
                    else:
                        best = _core.envs.connect_four_best_moves(own, 1, depth)
                    out[k] = best[self.rng.integers(0, len(best))]
            else:
                pol = self.members[int(code)]
                a = pol.act(torch.from_numpy(np.ascontiguousarray(boards[rows])),  # type: ignore[operator]
                            deterministic=self.cfg.opponent_greedy,
                            action_mask=torch.from_numpy(np.ascontiguousarray(masks[rows])))[0]
                out[rows] = a.numpy()
        return out

    # ------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        rng = self.rng.bit_generator.state
        return {
            "members": [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in self.members],
            "member_iters": list(self.member_iters),
            "assigned": torch.from_numpy(self.assigned.copy()),
            # PCG64's 128-bit words as strings: plain data for weights_only loading on every torch version.
            "rng": {"state": str(rng["state"]["state"]), "inc": str(rng["state"]["inc"]),
                    "has_uint32": int(rng["has_uint32"]), "uinteger": int(rng["uinteger"])},
        }

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.members = []
        for weights in st["members"]:
            m = copy.deepcopy(self.template).cpu().requires_grad_(False)
            m.load_state_dict(weights)
            m.eval()
            self.members.append(m)
        self.member_iters = [int(x) for x in st["member_iters"]]
        self.assigned = st["assigned"].numpy().astype(np.int64).copy()
        r = st["rng"]
        self.rng.bit_generator.state = {"bit_generator": "PCG64",
                                        "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                                        "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}


class SelfPlayTrainer(PPOTrainer):
    """``SelfPlayTrainer(None, SelfPlayConfig(env="rltrain/TicTacToe-v0", seed=0)).train(150)``: PPO against a
    league of its own frozen versions (see the module docstring). The trained policy plays any opponent through
    :func:`rltrain.games.evaluate_vs` and ``rltrain play``. With ``keep_best``, ``selected_snapshot`` holds the
    iteration and exact scores of the snapshot the last schedule ended on (``best_snapshot``: the best so far in
    the current schedule)."""

    algo = "selfplay"
    config_class = SelfPlayConfig
    cfg: SelfPlayConfig

    def __init__(self, policy: torch.nn.Module | None, cfg: SelfPlayConfig,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(cfg, SelfPlayConfig):
            raise TypeError(f"cfg: expected a SelfPlayConfig, got {type(cfg).__name__}")
        self.league: League | None = None
        # keep_best: the best snapshot of the current schedule ({"iteration", "key", "scores", "weights"}) and the
        # one the last schedule ended on (without weights).
        self.best_snapshot: dict[str, Any] | None = None
        self.selected_snapshot: dict[str, Any] | None = None
        super().__init__(policy, cfg, device)
        self.league = League(self.policy, str(cfg.env), cfg.G, cfg, self.seed)  # validate(): a game id
        self.league.add(self.policy, 0)
        self.league.sides = self._learner_sides
        if self.env is not None:
            self.env.opponent = self.league  # type: ignore[attr-defined]
            self.env._player = self.league  # type: ignore[attr-defined]

    def _learner_sides(self, env_ids: np.ndarray) -> np.ndarray:
        """The learner's side in games ``env_ids`` (+1 X, -1 O): the games draw it before asking the league."""
        assert isinstance(self.env, GameVectorEnv)
        sides: np.ndarray = self.env.agent[env_ids]
        return sides

    def _make_env(self) -> Any:
        if self.env is None:
            # The opponent is the league; BaseTrainer builds the env (for the policy's spaces) before the league
            # exists, and __init__ hands it the league right after.
            env = GameVectorEnv(str(self.cfg.env), self.cfg.G, opponent=_Unset(), agent_player=self.cfg.agent_player,
                                seed=self.seed)
            if self.league is not None:
                env.opponent = env._player = self.league
            self.env = env
            self.action_space = env.single_action_space
            self.observation_space = env.single_observation_space
        return self.env

    def _iteration(self, progress: float) -> dict[str, float]:
        assert self.league is not None
        out = super()._iteration(progress)
        if (self.iteration + 1) % self.cfg.snapshot_interval == 0:
            self.league.add(self.policy, self.iteration + 1)
        recent = [r for r, _ in self.ep_info]  # the last 100 games against the league
        if recent:
            out["selfplay/win"] = float(np.mean([r > 0 for r in recent]))
            out["selfplay/draw"] = float(np.mean([r == 0 for r in recent]))
            out["selfplay/loss"] = float(np.mean([r < 0 for r in recent]))
        out["selfplay/league_size"] = float(len(self.league.members))
        if self._keep_best():
            done = self.iteration + 1
            sched = self.cfg.schedule_iters
            end = done == sched if sched is not None else progress >= 1.0
            if done % self.cfg.keep_best_interval == 0 or end:
                self._score_snapshot(done, out)
            if end:
                self._restore_best(out)
        return out

    def _keep_best(self) -> bool:
        kb = self.cfg.keep_best
        return game_info(str(self.cfg.env)).search == "minimax" if kb is None else kb

    def _score_snapshot(self, done: int, out: dict[str, float]) -> None:
        """Scores the current greedy policy exactly; it becomes the best snapshot when it ranks at least as high
        (see ``SelfPlayConfig.keep_best``)."""
        from rltrain.games import exact_tictactoe_scores

        on_cpu = next(self.policy.parameters()).device.type == "cpu"
        pol = self.policy if on_cpu else copy.deepcopy(self.policy).cpu()
        scores = exact_tictactoe_scores(pol, obs_rms=self.obs_rms)
        rX, rO, mX, mO = (scores[k] for k in ("random/X", "random/O", "minimax/X", "minimax/O"))
        key = (-(mX["loss"] + mO["loss"]), rX["win"] - rX["loss"] + rO["win"] - rO["loss"])
        for k, v in scores.items():
            out[f"selfplay/exact_{k.replace('/', '_')}_win"] = v["win"]
            out[f"selfplay/exact_{k.replace('/', '_')}_loss"] = v["loss"]
        best = self.best_snapshot
        if best is None or key >= tuple(best["key"]):
            self.best_snapshot = {"iteration": done, "key": key, "scores": scores,
                                  "weights": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()}}

    def _restore_best(self, out: dict[str, float]) -> None:
        """Ends the schedule on the best snapshot scored in it."""
        best = self.best_snapshot
        if best is None:
            return
        self.policy.load_state_dict(best["weights"])
        self._sync_rollout_policy()
        self.selected_snapshot = {k: v for k, v in best.items() if k != "weights"}
        self.best_snapshot = None
        out["selfplay/selected_iteration"] = float(best["iteration"])

    def _extra_state(self) -> dict[str, Any]:
        assert self.league is not None
        return {**super()._extra_state(), "league": self.league.state_dict(),
                "best_snapshot": _plain_snapshot(self.best_snapshot),
                "selected_snapshot": _plain_snapshot(self.selected_snapshot)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        assert self.league is not None
        self.league.load_state_dict(state["league"])
        self.best_snapshot = _snapshot_from_plain(state.get("best_snapshot"))
        self.selected_snapshot = _snapshot_from_plain(state.get("selected_snapshot"))
        # The first reset of the rebuilt games draws new assignments; the saved ones are put back after it.
        self._pending_league: dict[str, Any] | None = state["league"]

    def _ensure_env(self) -> None:
        pending = getattr(self, "_pending_league", None) if self._obs is None else None
        # The first reset of rebuilt games asks the league for opening moves (league RNG, torch RNG); a restored
        # run puts both back afterwards, as they were saved.
        torch_rng = torch.get_rng_state() if pending is not None else None
        super()._ensure_env()
        if pending is not None and self.league is not None:
            self.league.load_state_dict(pending)
        if torch_rng is not None:
            torch.set_rng_state(torch_rng)
        self._pending_league = None


class _Unset:
    """The opponent of the env built before the league exists; never asked for a move."""

    def moves(self, boards: np.ndarray, masks: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        raise RuntimeError("SelfPlayTrainer: the league is not attached yet")


def _plain_snapshot(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    """A keep_best snapshot as plain data for a checkpoint (lists, floats, tensors)."""
    if snap is None:
        return None
    return {**snap, "key": [float(x) for x in snap["key"]]}


def _snapshot_from_plain(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    return {**snap, "iteration": int(snap["iteration"]), "key": tuple(float(x) for x in snap["key"])}
