"""Peer for bench/trl.bench.ts: plain TRL GRPOTrainer with an equivalent Python majority reward, on the same
spec (model, GRPOConfig settings, prompt order) that ttrl's trl engine ran. Prints one JSON line with the
per-step wall times. Usage: python bench/peers/trl_plain.py SPEC.json OUT_DIR
(installed by `npm run setup:python`; run with .venv/bin/python)."""

import json
import re
import sys
import time
from collections import Counter

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import GRPOConfig, GRPOTrainer

spec = json.load(open(sys.argv[1]))
out = sys.argv[2]
if spec.get("threads", 0) > 0:
    torch.set_num_threads(int(spec["threads"]))
N = int(spec["num_generations"])
ANSWER = re.compile(r"<mantık>.*?</mantık>\s*<cevap>\s*(.*?)\s*</cevap>", re.S)


def majority(prompts, completions, **kw):
    """1 when the completion's answer equals its group's most common valid answer (groups of N in order)."""
    answers = []
    for c in completions:
        m = ANSWER.search(c)
        answers.append(m.group(1).strip() if m else None)
    rewards = []
    for g in range(0, len(answers), N):
        grp = answers[g : g + N]
        votes = Counter(a for a in grp if a is not None)
        top = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if votes else None
        rewards += [1.0 if a is not None and a == top else 0.0 for a in grp]
    return rewards


class Times(TrainerCallback):
    def __init__(self):
        self.t = time.perf_counter()
        self.steps = []

    def on_step_begin(self, args, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.steps.append(time.perf_counter() - self.t)


set_seed(int(spec["grpo"]["seed"]))
tok = AutoTokenizer.from_pretrained(spec["model"])
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
grpo = dict(spec["grpo"])
grpo["save_steps"] = 0
args = GRPOConfig(
    output_dir=out,
    logging_steps=1,
    report_to="none",
    disable_tqdm=True,
    log_completions=False,
    shuffle_dataset=False,
    save_strategy="no",
    use_cpu=not torch.cuda.is_available(),
    generation_kwargs={"stop_strings": spec["stop"]} if spec["stop"] else None,
    **{k: v for k, v in grpo.items() if k not in ("save_steps", "reward_weights")},
)
ds = Dataset.from_list([{"prompt": p["prompt"]} for p in spec["prompts"]])
trainer = GRPOTrainer(model=model, reward_funcs=[majority], args=args, train_dataset=ds, processing_class=tok)
if spec["stop"]:
    m = trainer.accelerator.unwrap_model(trainer.model)
    orig = m.generate
    m.generate = lambda *a, **kw: orig(*a, tokenizer=tok, **{k: v for k, v in kw.items() if k != "tokenizer"})
times = Times()
trainer.add_callback(times)
trainer.train()
print(json.dumps({"step_seconds": times.steps}))
