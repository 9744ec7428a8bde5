"""GPU check of ttrl's `trl` engine: 5 GRPO steps on a random-initialised Qwen2-0.5B-shaped model in bf16,
full fine-tuning and LoRA, through python/ttrl_trl exactly as `ttrl train --engine trl` runs it; prints the
step time and the peak GPU memory of each.

Works offline on a machine with Python + torch, transformers, accelerate and peft but without TRL, vLLM or
Node: TRL comes from scripts/gpu/wheels/ (scripts/gpu/trl-fetch-wheel.sh), `datasets` / `pandas` /
`pyarrow` fall back to the stand-ins in scripts/gpu/shims/ when missing, and ttrl's TypeScript reward service
is replaced by an equivalent Python majority-vote service speaking the same /score protocol.

  bash scripts/gpu/trl-check.sh            # GPU: bf16, Qwen2-0.5B shape, full + LoRA, 5 steps each
  bash scripts/gpu/trl-check.sh --tiny     # CPU smoke test of the same path (small shape, fp32, 2 steps)
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ANSWER = re.compile(r"<mantık>.*?</mantık>\s*<cevap>\s*(.*?)\s*</cevap>", re.S)


def setup_paths(site: str) -> None:
    """ttrl_trl, TRL (installed from the wheel into `site` when missing) and the stand-ins, in that order."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    if importlib.util.find_spec("trl") is None:
        sys.path.insert(1, site)
    for name in ("datasets", "pandas", "pyarrow"):
        if importlib.util.find_spec(name) is None:
            sys.path.append(os.path.join(HERE, "shims"))
            print(f"trl-check: {name} not installed, using the stand-in in scripts/gpu/shims", file=sys.stderr)


def install_trl(site: str) -> None:
    if importlib.util.find_spec("trl") is not None:
        return
    wheels = sorted(glob.glob(os.path.join(HERE, "wheels", "trl-*.whl")))
    if not wheels:
        sys.exit("trl-check: TRL is not installed and scripts/gpu/wheels/ has no trl wheel; run scripts/gpu/trl-fetch-wheel.sh where PyPI is reachable")
    if not os.path.isdir(os.path.join(site, "trl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheels[-1]],
            check=True,
        )


# -- the reward service (Python stand-in for ttrl's, same protocol) ------------------------------------------
def score(body: dict, n: int) -> dict:
    groups = []
    totals = []
    for g in body["groups"]:
        comps = g["completions"]
        if len(comps) != n:
            raise ValueError(f"incomplete group for prompt id {g['prompt_id']}")
        ans = []
        for c in comps:
            m = ANSWER.search(c)
            ans.append(m.group(1).strip() if m else None)
        votes = Counter(a for a in ans if a is not None)
        top = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0] if votes else (None, 0)
        r = [1.0 if a is not None and a == top[0] else 0.0 for a in ans]
        totals.append(r)
        groups.append(
            {
                "pi": g["pi"],
                "prompt_id": g["prompt_id"],
                "prompt": None,
                "label": None,
                "total": r,
                "per_function": {"majority": r},
                "rewarded_indices": list(range(n)),
                "answers": ans,
                "accuracy": None,
                "pseudo_label": top[0],
                "majority_ratio": top[1] / n,
                "label_accuracy": None,
                "reward_accuracy": None,
            }
        )
    for g, r in zip(groups, totals):
        m = sum(r) / len(r)
        sd = statistics.stdev(r) if len(r) > 1 else 0.0
        g["advantages"] = [(x - m) / (sd + 1e-4) for x in r]
        g["zero_std"] = sd < 1e-8
    return {"groups": groups}


def start_service(n: int) -> tuple[ThreadingHTTPServer, str, str]:
    token = secrets.token_hex(16)

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                out = json.dumps(score(body, n)).encode()
                code = 200
            except ValueError as e:
                out, code = json.dumps({"error": str(e)}).encode(), 400
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/score", token


# -- model and spec ----------------------------------------------------------------------------------------
def make_model(path: str, tiny: bool, bf16: bool) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok_cfg = json.load(open(os.path.join(ROOT, "models", "tr-math-base", "config.json")))
    shape = (
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
        if tiny
        else dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936)
    )
    cfg = Qwen2Config(
        **shape,
        max_position_embeddings=2048,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=tok_cfg["bos_token_id"],
        eos_token_id=tok_cfg["eos_token_id"],
        pad_token_id=tok_cfg["pad_token_id"],
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16 if bf16 else torch.float32)
    model.save_pretrained(path, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(ROOT, "models", "tr-math-base", f), os.path.join(path, f))
    n = sum(p.numel() for p in model.parameters())
    print(f"trl-check: random Qwen2 model, {n / 1e6:.0f}M parameters, {'bf16' if bf16 else 'fp32'}", flush=True)


def make_spec(model: str, out: str, url: str, steps: int, lora: bool, bf16: bool, tiny: bool) -> dict:
    P, N, gas = (2, 4, 1) if tiny else (4, 8, 2)
    rows = [json.loads(l) for l in open(os.path.join(ROOT, "data", "tr-math", "train.jsonl"), encoding="utf-8")]
    prompts = [
        {"prompt": f"Soru: {rows[s * P + i]['question']}\n", "prompt_id": rows[s * P + i]["id"], "step": s, "pi": i}
        for s in range(steps)
        for i in range(P)
    ]
    return {
        "model": model,
        "out": out,
        "resume": False,
        "steps": steps,
        "num_rows": len(rows),
        "prompts": prompts,
        "prompts_per_step": P,
        "num_generations": N,
        "rewarded_count": N,
        "num_iterations": 1,
        "beta": 0.0,
        "reward_funcs": ["majority"],
        "reward_url": url,
        "stop": ["</cevap>"],
        "mask_truncated_completions": False,
        "log_completions_steps": 0,
        "save_dtype": "BF16" if bf16 else "F32",
        "threads": 0,
        "stop_after": None,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
        if lora
        else None,
        "grpo": {
            "seed": 1,
            "num_generations": N,
            "per_device_train_batch_size": P * N // gas,
            "gradient_accumulation_steps": gas,
            "steps_per_generation": gas,
            "num_iterations": 1,
            "max_steps": steps,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": 0,
            "max_completion_length": 32 if tiny else 256,
            "scale_rewards": "group",
            "epsilon": 0.2,
            "epsilon_high": 0.2,
            "beta": 0.0,
            "loss_type": "dapo",
            "reward_weights": [1.0],
            "learning_rate": 1e-5,
            "lr_scheduler_type": "constant",
            "max_grad_norm": 1.0,
            "save_steps": 0,
            "save_total_limit": None,
            "bf16": bf16,
            "gradient_checkpointing": not tiny,
            "use_vllm": False,
        },
    }


def child(spec_path: str, site: str) -> None:
    setup_paths(site)
    from ttrl_trl.run import main as run_main

    sys.argv = ["ttrl_trl.run", spec_path]
    run_main()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny shape, fp32, 2 steps")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None, help="work folder (default: a temp folder, removed)")
    ap.add_argument("--child", nargs=2, metavar=("SPEC", "SITE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = a.out or tempfile.mkdtemp(prefix="ttrl-trl-check-")
    site = os.path.join(work, "site")
    if a.child:
        child(*a.child)
        return
    install_trl(site)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not a.tiny:
        sys.exit("trl-check: no CUDA device visible to torch (use --tiny for a CPU smoke test)")
    bf16 = cuda and not a.tiny
    steps = a.steps or (2 if a.tiny else 5)
    model = os.path.join(work, "model")
    make_model(model, a.tiny, bf16)
    srv, url, token = start_service(4 if a.tiny else 8)
    results = []
    for mode in ("full", "lora"):
        out = os.path.join(work, mode)
        os.makedirs(out, exist_ok=True)
        spec = make_spec(model, out, url, steps, mode == "lora", bf16, a.tiny)
        sp = os.path.join(out, "spec.json")
        json.dump(spec, open(sp, "w"))
        env = {**os.environ, "TTRL_REWARD_TOKEN": token, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        r = subprocess.run([sys.executable, __file__, "--out", work, "--child", sp, site], env=env, capture_output=True, text=True)
        errs = [l for l in r.stdout.splitlines() if l.startswith("TTRL_ERROR")]
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            sys.exit(f"trl-check: {mode} failed: {errs[0] if errs else f'exit {r.returncode}'}")
        log = [json.loads(l) for l in open(os.path.join(out, "train_log.jsonl"))]
        times = [e["time/step"] for e in log[1:]] or [log[0]["time/step"]]
        peak = max((e.get("trl/gpu_peak_gib", 0.0) for e in log), default=0.0)
        final_ok = os.path.exists(os.path.join(out, "final", "config.json"))
        results.append((mode, statistics.median(times), peak, sum(e["completion_length/mean"] for e in log) / len(log), final_ok))
    srv.shutdown()
    dev = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"\ntrl-check on {dev}, torch {torch.__version__}, {steps} steps, {'bf16' if bf16 else 'fp32'}")
    print("mode | median step (s, steps 2+) | peak GPU memory (GiB) | mean completion tokens | final/")
    for mode, t, peak, L, ok in results:
        print(f"{mode} | {t:.2f} | {peak:.2f} | {L:.0f} | {'ok' if ok else 'MISSING'}")
    print(json.dumps({"device": dev, "results": [dict(zip(["mode", "step_s", "peak_gib", "tokens", "final"], r)) for r in results]}))
    if not a.out:
        shutil.rmtree(work, ignore_errors=True)
    if not all(r[4] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
