"""``rltrain llm-demo``: a ``--quick`` run through the CLI writes the JSON report (every field) and the PNG; the
tasks' answers, the true score's exactness and partial credit, the held-out split, the hidden preference rule and
the Bradley-Terry fit behave as documented."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rltrain.cli import main
from rltrain.llm.demo_tasks import (
    TASKS,
    correct_positions,
    exact_reward,
    hidden_preference_key,
    preference_pairs,
    split_prompts,
    true_score,
)

REPORT_FIELDS = {"task", "reward_model", "seed", "accuracy_before", "accuracy_after", "true_score_before",
                 "true_score_after", "steps", "seconds", "cpu_seconds", "tokens_per_s", "update_tokens_per_s",
                 "reached_target", "supervised", "curve", "examples", "total_seconds", "total_cpu_seconds", "machine",
                 "config"}
CURVE_FIELDS = {"step", "seconds", "reward", "train_reward", "kl", "accuracy", "true_score"}
"""The first point (before GRPO) has no ``beta``; every later one has."""


@pytest.mark.parametrize(("task", "reward_model"), [("reverse", False), ("add", False), ("sort", True)])
def test_quick_run_writes_json_and_png(tmp_path, capsys, task: str, reward_model: bool) -> None:
    js, png = tmp_path / "out" / "report.json", tmp_path / "out" / "report.png"
    argv = ["llm-demo", "--task", task, "--quick", "--seed", "1", "--json", str(js), "--png", str(png)]
    assert main(argv + (["--reward-model"] if reward_model else [])) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    report = json.loads(js.read_text())
    assert set(report) >= REPORT_FIELDS
    assert report["task"] == task and report["reward_model"] is reward_model and report["seed"] == 1
    assert report["steps"] == 4 and report["seconds"] > 0 and report["tokens_per_s"] > 0
    for key in ("accuracy_before", "accuracy_after", "true_score_before", "true_score_after"):
        assert 0.0 <= report[key] <= 1.0
    curve = report["curve"]
    assert [c["step"] for c in curve] == [0, 2, 4]
    assert all(set(c) >= CURVE_FIELDS for c in curve)
    assert curve[0]["accuracy"] == report["accuracy_before"] and curve[-1]["accuracy"] == report["accuracy_after"]
    if reward_model:
        assert {"reward_model_fit", "learned_score_before", "learned_score_after"} <= set(report)
        assert all("learned_score" in c for c in curve)
        assert curve[-1]["reward"] == report["learned_score_after"]
    else:
        assert curve[-1]["reward"] == report["true_score_after"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments(capsys) -> None:
    assert main(["llm-demo", "--task", "multiply", "--quick"]) == 2
    assert main(["llm-demo", "--seed", "-1", "--quick"]) == 2
    assert "--seed" in capsys.readouterr().err
    assert main(["llm-demo", "--beta-kl", "-0.1", "--quick"]) == 2
    assert "--beta-kl" in capsys.readouterr().err
    assert main(["llm-demo", "--target-kl", "0", "--quick"]) == 2
    assert "--target-kl" in capsys.readouterr().err
    assert main(["llm-demo", "--beta-kl", "nan", "--quick"]) == 2


def test_kl_flags_reach_the_trainer(tmp_path) -> None:
    js = tmp_path / "r.json"
    argv = ["llm-demo", "--task", "reverse", "--reward-model", "--quick", "--beta-kl", "0.25", "--target-kl", "0.5",
            "--json", str(js)]
    assert main(argv) == 0
    report = json.loads(js.read_text())
    assert report["config"]["beta_kl"] == 0.25 and report["config"]["target_kl"] == 0.5
    # the adaptive rule moves beta every step (x1.5 above the target, /1.5 below; the KL is never exactly 0.5)
    assert all(c["beta"] != 0.25 for c in report["curve"][1:])


@pytest.mark.parametrize(("prompt", "answer"), [("reverse:abcd=", "dcba"), ("reverse:...hello=", "olleh"),
                                                ("sort:....3141=", "1134"), ("sort:90817263=", "01236789"),
                                                ("add:123+456=", "579"), ("add:999+999=", "1998")])
def test_answers(prompt: str, answer: str) -> None:
    assert TASKS[prompt.split(":")[0]].solve(prompt) == answer


def test_prompt_forms() -> None:
    rng = random.Random(0)
    forms = {"reverse": r"reverse:\.{0,4}[a-z]{4,8}=", "sort": r"sort:\.{0,4}[0-9]{4,8}=",
             "add": r"add:[1-9][0-9]{2}\+[1-9][0-9]{2}="}
    for name, form in forms.items():
        prompts = [TASKS[name].prompt(rng) for _ in range(300)]
        assert all(re.fullmatch(form, p) for p in prompts)
        assert len({len(p) for p in prompts}) == 1  # fixed width: one prompt length per task
        assert max(len(TASKS[name].solve(p)) for p in prompts) <= TASKS[name].max_answer_len
    with pytest.raises(ValueError, match="prompt"):
        TASKS["reverse"].solve("sort:123=")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_held_out_prompts_are_disjoint_and_fixed(task: str) -> None:
    train, held_out = split_prompts(TASKS[task], 3000, 200, seed=3)
    assert len(train) == 3000 and len(held_out) == 200
    assert len(set(train)) == 3000 and len(set(held_out)) == 200 and not set(train) & set(held_out)
    assert split_prompts(TASKS[task], 3000, 200, seed=3) == (train, held_out)
    assert split_prompts(TASKS[task], 10, 200, seed=3)[1] == held_out  # the held-out set does not depend on n_train


def test_true_score_is_exact_with_partial_credit() -> None:
    assert true_score("dcba", "dcba") == 1.0
    assert true_score("dcba", "") == 0.0
    assert true_score("dcba", "dcbx") == 0.75
    assert true_score("dcba", "dcb") == 0.75  # too short: 3 of the 4 positions
    assert true_score("dcba", "dcbaa") == 0.8  # too long: the longer length counts
    assert true_score("dcba", "abcd") == 0.0
    assert all(true_score("1998", c) < 1.0 for c in ("199", "19988", "1999", "998"))
    reward = exact_reward(TASKS["add"])
    assert reward(["add:123+456=", "add:123+456=", "add:500+500="], ["579", "578", ""]) == [1.0, 2 / 3, 0.0]


def test_preference_pairs_follow_the_hidden_rule() -> None:
    task = TASKS["reverse"]
    rng = random.Random(0)
    prompts = [task.prompt(rng) for _ in range(200)]
    samples = []
    for p in prompts:
        answer = task.solve(p)
        samples.append([answer, answer[:-1], answer + "x", "".join(rng.sample(answer, len(answer))),
                        answer[::-1], answer])
    pairs = preference_pairs(task, prompts, samples, random.Random(1), noise=0.0, max_pairs_per_prompt=4)
    assert len(pairs) == 4 * len(prompts)
    for p, chosen, rejected in pairs:
        answer = task.solve(p)
        assert chosen != rejected
        assert hidden_preference_key(answer, chosen) > hidden_preference_key(answer, rejected)
    # Same correctly placed characters: the shorter completion wins.
    assert hidden_preference_key("dcba", "dcba") > hidden_preference_key("dcba", "dcbax")
    assert correct_positions("dcba", "dcbax") == 4
    # Label noise flips about that fraction of the labels.
    noisy = preference_pairs(task, prompts, samples, random.Random(1), noise=0.2, max_pairs_per_prompt=4)
    flipped = sum(hidden_preference_key(task.solve(p), c) < hidden_preference_key(task.solve(p), r)
                  for p, c, r in noisy)
    assert 0.12 < flipped / len(noisy) < 0.28
    # Completions the rule cannot tell apart give no pair.
    assert preference_pairs(task, ["reverse:abcd="], [["dcba", "dcba"]], random.Random(0)) == []
    with pytest.raises(ValueError, match="noise"):
        preference_pairs(task, prompts, samples, rng, noise=0.5)


def test_bradley_terry_loss_decreases() -> None:
    import torch

    from rltrain.llm import char_tokenizer, tiny_reward_model
    from rltrain.llm.demo import _fit_reward_model, bradley_terry_loss, demo_config
    from rltrain.llm.demo_tasks import ALPHABET

    assert math.isclose(float(bradley_terry_loss(torch.zeros(3), torch.zeros(3))), math.log(2.0), rel_tol=1e-6)
    assert float(bradley_terry_loss(torch.tensor([5.0]), torch.tensor([-5.0]))) < 1e-4
    task = TASKS["reverse"]
    rng = random.Random(0)
    prompts = [task.prompt(rng) for _ in range(64)]
    samples = [[task.solve(p), "".join(rng.choice("abcdefgh") for _ in range(len(task.solve(p))))] for p in prompts]
    pairs = preference_pairs(task, prompts, samples, rng, noise=0.0)
    tok = char_tokenizer(ALPHABET)
    torch.manual_seed(0)
    rm = tiny_reward_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=32)
    cfg = demo_config("reverse", quick=True)
    cfg.rm_steps, cfg.rm_batch, cfg.rm_lr = 40, 16, 3e-3
    fit = _fit_reward_model(rm, tok, pairs, pairs[:32], cfg, lambda s: None)
    assert fit["loss_last"] < fit["loss_first"] - 0.1
    assert fit["held_out_agreement"] > 0.6


def test_readme_snippet_runs(tmp_path) -> None:
    """The README's "Language-model GRPO" example runs as written (in a fresh interpreter, in a scratch folder)."""
    import os
    import pathlib
    import subprocess
    import sys

    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("## Language-model GRPO")
    section = text[start:text.index("\n## ", start + 1)]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "lm_grpo.pt").is_file()
