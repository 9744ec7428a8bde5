"""TRL peer for bench/train.bench.ts: GRPO steps with TRL's GRPOTrainer on CPU, with the same model folder,
prompts and settings as ttrl's measurement (P prompts × G generations, max_completion_length L, beta 0,
num_iterations 1, loss dapo, temperature 1). Times each step and, inside it, generation + scoring
(_generate_and_score_completions); the rest of the step is the update. Prints one JSON line.
Usage: python trl_grpo.py MODEL_DIR P G L THREADS STEPS"""
import json
import resource
import sys
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

model_dir, P, G, L, threads, steps = sys.argv[1], *map(int, sys.argv[2:7])
torch.set_num_threads(threads)
tok = AutoTokenizer.from_pretrained(model_dir)
tok.padding_side = "left"
prompts = [f"Soru: {i % 9 + 1} + {(i * 7) % 9 + 1} kaç eder?\n" for i in range(P * steps)]
ds = Dataset.from_dict({"prompt": prompts})


def length_mod_7(completions, **kw):
    return [(len(c) % 7) / 7 for c in completions]


cfg = GRPOConfig(
    output_dir=tempfile.mkdtemp(),
    per_device_train_batch_size=P * G,
    num_generations=G,
    max_completion_length=L,
    max_steps=steps,
    learning_rate=1e-6,
    use_cpu=True,
    bf16=False,
    logging_steps=1,
    report_to=[],
    save_strategy="no",
    temperature=1.0,
    top_k=0,
    beta=0.0,
    loss_type="dapo",
    shuffle_dataset=False,
    dataloader_num_workers=0,
    disable_tqdm=True,
)
trainer = GRPOTrainer(model=model_dir, reward_funcs=length_mod_7, args=cfg, train_dataset=ds,
                      processing_class=tok)
gen_times = []
orig = trainer._generate_and_score_completions


def timed(*a, **k):
    t = time.perf_counter()
    out = orig(*a, **k)
    gen_times.append(time.perf_counter() - t)
    return out


trainer._generate_and_score_completions = timed
step_times = []


class Timer(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        step_times.append(time.perf_counter() - self.t)


trainer.add_callback(Timer())
trainer.train()
last = len(step_times) - 1
comp_tokens = [h.get("completions/mean_length") for h in trainer.state.log_history if "completions/mean_length" in h]
print(json.dumps({
    "step_s": step_times, "sampling_s": gen_times, "update_s": [s - g for s, g in zip(step_times, gen_times)],
    "mean_completion_length": comp_tokens,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
