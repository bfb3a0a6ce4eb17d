"""Throughput of ``rltrain.llm.LMGRPOTrainer`` on tiny in-process GPT-2 models: generated tokens per second of
generation and trained tokens per second of update (median over timed steps after warm-up steps).

``python bench/lm_grpo_throughput.py [--device cpu|cuda] [--bf16] [--steps N] [--json PATH]``; sizes: the test
model (2 layers, width 32) and two larger ones. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from rltrain.llm import LMGRPOConfig, LMGRPOTrainer, char_tokenizer, tiny_causal_lm

SIZES = {  # name -> (n_layer, n_embd, n_head, prompts_per_step, num_generations, max_new_tokens)
    "test-2x32": (2, 32, 4, 4, 8, 16),
    "small-4x128": (4, 128, 4, 8, 8, 32),
    "medium-6x256": (6, 256, 8, 16, 16, 64),
}


def run(name: str, device: str, bf16: bool, steps: int, warmup: int) -> dict[str, object]:
    n_layer, n_embd, n_head, pps, k, new = SIZES[name]
    tok = char_tokenizer("abcdefghij")
    model = tiny_causal_lm(tok, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=128)
    cfg = LMGRPOConfig(num_generations=k, prompts_per_step=pps, max_new_tokens=new, device=device, bf16=bf16,
                       progress=False, lr=1e-4)
    prompts = ["abc", "hgfe", "jj", "dcba", "ihg", "abcdef"]
    # Rewards 'a' characters: long completions pay, so the work per step stays near max_new_tokens.
    tr = LMGRPOTrainer(model, tok, cfg, prompts, reward_fn=lambda p, c: [float(s.count("a")) for s in c])
    t0 = time.perf_counter()
    hist = tr.train(warmup + steps)[warmup:]
    wall = time.perf_counter() - t0
    return {"size": name, "device": str(tr.device), "bf16": bf16, "batch": pps * k, "max_new_tokens": new,
            "gen_tokens_per_s": statistics.median(h["gen_tokens_per_s"] for h in hist),
            "update_tokens_per_s": statistics.median(h["update_tokens_per_s"] for h in hist),
            "completion_len": statistics.mean(h["completion_len"] for h in hist),
            "seconds_per_step": wall / (warmup + steps)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--sizes", nargs="*", default=list(SIZES))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    gpu = torch.cuda.get_device_name() if a.device.startswith("cuda") else None
    rows = []
    for name in a.sizes:
        row = run(name, a.device, a.bf16, a.steps, a.warmup)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.json:
        meta = {"machine": platform.processor() or platform.machine(), "gpu": gpu, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
