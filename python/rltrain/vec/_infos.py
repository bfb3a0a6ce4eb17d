"""The info dicts both backends return: batched per-env infos, ``final_obs`` and ``info["episode"]``.

Keys and layout are gymnasium's (``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP`` wrapped in
``RecordEpisodeStatistics``): every key ``k`` has a mask ``_k`` saying which envs set it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["add_episode_statistics", "add_final_obs", "merge_info"]


def merge_info(infos: dict[str, Any], info: dict[str, Any], pos: int, size: int) -> dict[str, Any]:
    """Put one env's info dict at position `pos` of batched infos, with gymnasium's `_key` masks.

    Same result as ``gymnasium.vector.VectorEnv._add_info`` (so infos compare equal to SyncVectorEnv's), but
    sized by `size` so that a subset of envs (``recv`` after ``send(..., env_ids=...)``) batches too.
    """
    for key, value in info.items():
        if key == "final_obs":
            array = infos[key] if key in infos else np.full(size, None, dtype=object)
            array[pos] = value
        elif isinstance(value, dict):
            array = merge_info(infos.get(key, {}), value, pos, size)
        else:
            if key in infos:
                array = infos[key]
            elif type(value) in (int, float, bool) or issubclass(type(value), np.number):
                array = np.zeros(size, dtype=type(value))
            elif isinstance(value, np.ndarray):
                array = np.zeros((size, *value.shape), dtype=value.dtype)
            else:
                array = np.full(size, None, dtype=object)
            array[pos] = value
        mask = infos.get(f"_{key}")
        if mask is None:
            mask = np.zeros(size, dtype=np.bool_)
        mask[pos] = True
        infos[key], infos[f"_{key}"] = array, mask
    return infos


def add_final_obs(infos: dict[str, Any], done: np.ndarray, final_obs: np.ndarray) -> None:
    """``final_obs`` (an object array holding a copy of ``final_obs[i]`` where ``done[i]``, else None) and an
    empty ``final_info``, with their masks; the env's own final infos are merged into ``infos["final_info"]``."""
    fo = np.full(len(done), None, dtype=object)
    for i in np.flatnonzero(done):
        fo[i] = final_obs[i].copy()
    infos["final_obs"], infos["_final_obs"] = fo, done.copy()
    infos["final_info"], infos["_final_info"] = {}, done.copy()


def add_episode_statistics(
    infos: dict[str, Any], done: np.ndarray, returns: np.ndarray, lengths: np.ndarray, times: np.ndarray
) -> None:
    """``info["episode"] = {"r", "l", "t", "_r", "_l", "_t"}`` and ``info["_episode"]`` for the envs whose episode
    ended (``done``), zero elsewhere, as gymnasium's ``RecordEpisodeStatistics``; times rounded to microseconds."""
    if "episode" in infos or "_episode" in infos:
        raise ValueError(
            "an env already returns info['episode'] (RecordEpisodeStatistics inside the env?); "
            "pass episode_statistics=False or remove that wrapper"
        )
    infos["episode"] = {
        "r": np.where(done, returns, 0.0),
        "l": np.where(done, lengths, 0),
        "t": np.where(done, np.round(times, 6), 0.0),
        "_r": done.copy(),
        "_l": done.copy(),
        "_t": done.copy(),
    }
    infos["_episode"] = done.copy()
