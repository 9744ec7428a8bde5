#!/usr/bin/env python3
"""Peer for bench/engine.bench.ts: transformers' generate (PyTorch CPU) on a random LLaMA with the same
shapes as ttrl's run. Reads a JSON job on argv[1]; prints one JSON line {"tok_s", "secs", "rss_mib"}."""
import json
import resource
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
torch.manual_seed(0)
raw = {k: v for k, v in job["config"].items() if k not in ("architectures", "torch_dtype", "transformers_version")}
model = LlamaForCausalLM(LlamaConfig(**raw)).float().eval()
B, P, N = job["batch"], job["prompt_len"], job["new_tokens"]
ids = torch.randint(4, raw["vocab_size"], (B, P))
mask = torch.ones_like(ids)
kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=N, min_new_tokens=N, use_cache=True,
          pad_token_id=0, attention_mask=mask)
with torch.inference_mode():
    model.generate(ids, **{**kw, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
    t = time.perf_counter()
    out = model.generate(ids, **kw)
    secs = time.perf_counter() - t
n = (out.shape[1] - P) * B
print(json.dumps({"tok_s": n / secs, "secs": secs, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
