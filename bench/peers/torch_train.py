"""PyTorch peer for bench/train.bench.ts: training tokens/s (forward + backward + AdamW) of a LLaMA model
loaded from a ttrl model folder, same batch shape, loss mask and thread count as ttrl's measurement.
Prints one JSON line. Usage: python torch_train.py MODEL_DIR B T THREADS STEPS"""
import json
import resource
import sys
import time

import torch
from transformers import LlamaForCausalLM

model_dir, B, T, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="sdpa")
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
V = model.config.vocab_size
ids = torch.randint(3, V, (B, T + 1))
mask = torch.ones(B, T)
mask[:, : T // 4] = 0  # prompt tokens masked, as in ttrl's measurement


def step():
    logits = model(input_ids=ids[:, :T]).logits
    lp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    loss = -(lp * mask).sum() / mask.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


step()  # warm-up
t0 = time.perf_counter()
for _ in range(steps):
    step()
secs = (time.perf_counter() - t0) / steps
print(json.dumps({"sec_per_step": secs, "tokens_per_s": B * T / secs,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
