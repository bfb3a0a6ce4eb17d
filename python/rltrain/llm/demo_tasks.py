"""The language-model demo's synthetic tasks, their exact reward and the hidden preference rule (pure Python).

Each task maps a prompt such as ``"reverse:....abcd="`` to one exact answer (``"dcba"``). The programmatic reward is the
*true score*: 1.0 for the exact answer, otherwise partial credit per character (positions that match over the longer
of answer and completion), 0 for an empty completion. The "human" of the reward-model variant never reveals that
score: it prefers, of two completions, the one with more correctly placed characters, ties broken by the shorter one,
and flips a small fraction of its labels (noise); a Bradley-Terry reward model learns from those labels alone.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable, Sequence

ALPHABET = string.ascii_lowercase + string.digits + ":=+."
"""Every character a prompt or an answer of any task uses: one tokenizer serves all tasks."""


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic task with exact answers."""

    name: str
    """Also the prompt's prefix: ``"<name>:<input>="``."""
    sample_input: Callable[[random.Random], str]
    """Draws the input part of a prompt."""
    solve_input: Callable[[str], str]
    """The exact answer to an input."""
    max_answer_len: int
    """The longest answer, in characters (the demo generates one token more, for EOS)."""
    width: int = 0
    """Inputs shorter than this are right-aligned with ``.`` fill (``"reverse:....abcd="``), so that the same input
    slot sits at the same position in every prompt (see :data:`TASKS`)."""

    def prompt(self, rng: random.Random) -> str:
        """A random prompt of this task."""
        return f"{self.name}:{self.sample_input(rng).rjust(self.width, '.')}="

    def solve(self, prompt: str) -> str:
        """The exact answer to a prompt of this task (``ValueError`` for a prompt of another form)."""
        head = f"{self.name}:"
        if not (prompt.startswith(head) and prompt.endswith("=")):
            raise ValueError(f"prompt: expected '{head}...=', got {prompt!r}")
        return self.solve_input(prompt[len(head):-1].lstrip("."))


def _letters(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 8)))


def _digits(rng: random.Random) -> str:
    return "".join(rng.choice(string.digits) for _ in range(rng.randint(4, 8)))


def _two_numbers(rng: random.Random) -> str:
    return f"{rng.randint(100, 999)}+{rng.randint(100, 999)}"


def _add(s: str) -> str:
    a, b = s.split("+")
    return str(int(a) + int(b))


TASKS: dict[str, Task] = {
    "reverse": Task("reverse", _letters, lambda s: s[::-1], 8, width=8),
    "sort": Task("sort", _digits, lambda s: "".join(sorted(s)), 8, width=8),
    "add": Task("add", _two_numbers, _add, 4),
}
"""reverse 4-8 lowercase letters; sort 4-8 digits; add two 3-digit numbers.

reverse and sort right-align their input in 8 slots (``"reverse:....abcd="``): GPT-2's learned absolute positions
count from the first token, so with ``"reverse:abcd="`` every input length needs a circuit of its own, and a model
warmed up only to mediocre has none yet for the longest inputs; GRPO, which can only reinforce what it samples,
then never finds them (measured: 32% -> a 62% plateau in 10 minutes, 7- and 8-letter inputs all wrong)."""


def split_prompts(task: Task, n_train: int, n_eval: int, seed: int) -> tuple[list[str], list[str]]:
    """``n_train`` training and ``n_eval`` held-out prompts, all distinct: no held-out prompt is ever trained on."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[list[str]] = [[], []]
    for part, n in ((1, n_eval), (0, n_train)):  # the held-out set first, so its size never depends on n_train
        tries = 0
        while len(out[part]) < n:
            p = task.prompt(rng)
            tries += 1
            if tries > 100 * (n + 100):
                raise ValueError(f"{task.name}: cannot draw {n_train + n_eval} distinct prompts")
            if p not in seen:
                seen.add(p)
                out[part].append(p)
    return out[0], out[1]


def correct_positions(answer: str, completion: str) -> int:
    """Characters of ``completion`` that equal the answer's character at the same position."""
    return sum(a == c for a, c in zip(answer, completion))


def true_score(answer: str, completion: str) -> float:
    """1.0 for the exact answer; else correctly placed characters over the longer length; 0.0 when empty."""
    if completion == answer:
        return 1.0
    if not completion:
        return 0.0
    return correct_positions(answer, completion) / max(len(answer), len(completion))


def exact_reward(task: Task) -> Callable[[list[str], list[str]], list[float]]:
    """The programmatic reward ``(prompts, completions) -> scores`` of a task (the true score)."""

    def reward_fn(prompts: list[str], completions: list[str]) -> list[float]:
        return [true_score(task.solve(p), c) for p, c in zip(prompts, completions, strict=True)]

    return reward_fn


def hidden_preference_key(answer: str, completion: str) -> tuple[int, int]:
    """What the simulated human compares: more correctly placed characters first, then the shorter completion."""
    return correct_positions(answer, completion), -len(completion)


def preference_pairs(task: Task, prompts: Sequence[str], samples: Sequence[Sequence[str]], rng: random.Random, *,
                     noise: float = 0.05, max_pairs_per_prompt: int = 6) -> list[tuple[str, str, str]]:
    """``(prompt, chosen, rejected)`` triples labelled by the hidden rule.

    For every prompt, pairs of its sampled completions that the rule can tell apart (ties are dropped), at most
    ``max_pairs_per_prompt`` of them, drawn at random; each label is flipped with probability ``noise``.
    """
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise: expected a probability in [0, 0.5), got {noise!r}")
    if len(prompts) != len(samples):
        raise ValueError(f"samples: expected one list per prompt ({len(prompts)}), got {len(samples)}")
    out: list[tuple[str, str, str]] = []
    for prompt, comps in zip(prompts, samples):
        answer = task.solve(prompt)
        distinct = list(dict.fromkeys(comps))
        pairs = [(a, b) for i, a in enumerate(distinct) for b in distinct[i + 1:]
                 if hidden_preference_key(answer, a) != hidden_preference_key(answer, b)]
        rng.shuffle(pairs)
        for a, b in pairs[:max_pairs_per_prompt]:
            chosen, rejected = (a, b) if hidden_preference_key(answer, a) > hidden_preference_key(answer, b) else (b, a)
            if rng.random() < noise:
                chosen, rejected = rejected, chosen
            out.append((prompt, chosen, rejected))
    return out
