"""Two-node Ray check (bench/README "Scale-out"): run after `ray start --head` and `ray start --address` put two
nodes of one CPU each into a cluster. Trains PPO with 2 rollout workers through `ray_address="auto"`, prints the
node each worker runs on, and compares the parameters bitwise with a local run of the same G and seed.

    RAY_AUTH_MODE=token python bench/scripts/multinode_check.py
"""

from __future__ import annotations

import json
import sys

import ray
import torch

from rltrain import PPOConfig, PPOTrainer


def main() -> int:
    kw = {"env": "LunarLander-v3", "G": 4, "T": 128, "minibatches": 4, "epochs": 2, "seed": 5, "verbose": 0,
          "loggers": (), "log_dir": "/tmp/multinode_check"}
    dist = PPOTrainer(None, PPOConfig(rollout_backend="ray", ray_address="auto", num_rollout_workers=2, **kw))
    dist.train(3)
    assert dist._ray is not None
    nodes = [ray.get(w.__ray_call__.remote(lambda _self: ray.get_runtime_context().get_node_id()))
             for w in dist._ray.workers]
    cluster = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    dist.close()
    local = PPOTrainer(None, PPOConfig(**kw))
    local.train(3)
    local.close()
    same = all(torch.equal(a, b) for a, b in zip(local.policy.state_dict().values(),
                                                   dist.policy.state_dict().values()))
    report = {"alive_nodes": len(cluster), "worker_nodes": nodes, "workers_on_distinct_nodes": len(set(nodes)) == 2,
              "bitwise_equal_to_local": same, "steps": dist.num_timesteps}
    print(json.dumps(report, indent=1))
    return 0 if same and len(set(nodes)) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
