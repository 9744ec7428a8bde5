"""Entry point of ttrl's `trl` engine: `python -m ttrl_trl.run SPEC.json` (or under accelerate / torchrun).

The spec (written by ttrl) holds the model folder, the GRPOConfig settings, the ordered prompt list ttrl
decided (one row per prompt per step, in ttrl's seeded order; TRL takes them in that order, no shuffle), the
reward service's URL (its bearer token comes in TTRL_REWARD_TOKEN) and the run folder. Errors end as one line
`TTRL_ERROR {"kind": ..., "message": ...}` on stdout and exit status 3, so ttrl can show them without a
Python stack trace (the trace goes to stderr, which ttrl keeps for --verbose).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import traceback
from typing import Any

from .bridge import RewardBridge, TtrlFail

TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
]


def emit(kind: str, obj: dict[str, Any]) -> None:
    print(f"TTRL_{kind} " + json.dumps(obj), flush=True)


def latest_checkpoint(ckdir: str) -> str | None:
    best, best_n = None, -1
    for d in glob.glob(os.path.join(ckdir, "checkpoint-*")):
        m = re.search(r"checkpoint-(\d+)$", d)
        if m and os.path.exists(os.path.join(d, "trainer_state.json")) and int(m.group(1)) > best_n:
            best, best_n = d, int(m.group(1))
    return best


def truncate_log(path: str, step: int) -> None:
    """Keep the lines of steps ≤ step (a resumed run rewrites the rest)."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    if int(json.loads(line).get("step", 0)) <= step:
                        keep.append(line if line.endswith("\n") else line + "\n")
                except ValueError:
                    pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(keep)
    os.replace(tmp, path)


def load_model(path: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise TtrlFail("model", f"{path}: transformers cannot load the tokenizer ({type(e).__name__}: {e})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TtrlFail("model", f"{path}: transformers cannot load the model ({type(e).__name__}: {msg})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok, model


def save_final(trainer, spec: dict[str, Any]) -> str:
    """final/ in HF layout, merged full weights (LoRA merged), base config and tokenizer files; written to a
    temp folder and renamed, so a killed run never leaves a final/ that looks complete."""
    import torch

    out = spec["out"]
    final = os.path.join(out, "final")
    raw = os.path.join(out, ".final-raw")
    tmp = os.path.join(out, ".final-tmp")
    acc = trainer.accelerator
    if acc.is_main_process:
        for d in (raw, tmp):
            shutil.rmtree(d, ignore_errors=True)
    acc.wait_for_everyone()
    trainer.save_model(raw)  # every process: gathers sharded (DeepSpeed / FSDP) weights
    acc.wait_for_everyone()
    if acc.is_main_process:
        dtype = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}[spec["save_dtype"]]
        from transformers import AutoModelForCausalLM

        if spec.get("lora"):
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
            merged = PeftModel.from_pretrained(base, raw).merge_and_unload()
        else:
            merged = AutoModelForCausalLM.from_pretrained(raw, dtype=torch.float32)
        merged = merged.to(dtype)
        merged.save_pretrained(tmp, safe_serialization=True)
        # The base model's config (architecture unchanged), so every reader of the base reads final/ too.
        with open(os.path.join(spec["model"], "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["torch_dtype"] = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[spec["save_dtype"]]
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
        for name in TOKENIZER_FILES:
            src = os.path.join(spec["model"], name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(tmp, name))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        shutil.rmtree(raw, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def run(spec: dict[str, Any]) -> None:
    import torch

    if spec.get("threads", 0) > 0:
        torch.set_num_threads(int(spec["threads"]))
    from datasets import Dataset
    from transformers import set_seed
    from trl import GRPOConfig

    from .trainer import TtrlGRPOTrainer, TtrlLogCallback

    out = spec["out"]
    os.makedirs(out, exist_ok=True)
    grpo = dict(spec["grpo"])
    bf16 = bool(grpo.get("bf16", False))
    use_cpu = not torch.cuda.is_available()
    if bf16 and use_cpu:
        raise TtrlFail("config", "bf16: true needs a GPU (no CUDA device is visible to torch)")
    set_seed(int(grpo["seed"]))
    tok, model = load_model(spec["model"], torch.bfloat16 if bf16 else torch.float32)

    names = list(spec["reward_funcs"])
    bridge = RewardBridge(
        spec["reward_url"],
        os.environ.get("TTRL_REWARD_TOKEN", ""),
        names,
        int(spec["num_generations"]),
        int(spec["rewarded_count"]),
    )
    dataset = Dataset.from_list(
        [{"prompt": p["prompt"], "prompt_id": p["prompt_id"], "step": p["step"], "pi": p["pi"]} for p in spec["prompts"]]
    )
    stop = list(spec.get("stop") or [])
    gen_kwargs = dict(grpo.pop("generation_kwargs", None) or {})
    if stop and grpo.get("use_vllm"):
        gen_kwargs.setdefault("stop", stop)
        gen_kwargs.setdefault("include_stop_str_in_output", True)
    elif stop:
        gen_kwargs.setdefault("stop_strings", stop)
    args = GRPOConfig(
        output_dir=os.path.join(out, "checkpoints"),
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        log_completions=False,
        shuffle_dataset=False,
        remove_unused_columns=False,
        save_strategy="steps" if grpo.get("save_steps", 0) > 0 else "no",
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        generation_kwargs=gen_kwargs or None,
        mask_truncated_completions=False,  # done by the subclass (stop strings are not EOS to TRL)
        **grpo,
    )
    peft_config = None
    if spec.get("lora"):
        from peft import LoraConfig

        lo = spec["lora"]
        peft_config = LoraConfig(
            r=int(lo["r"]),
            lora_alpha=float(lo["alpha"]),
            lora_dropout=float(lo["dropout"]),
            target_modules=lo["target_modules"],
            task_type="CAUSAL_LM",
        )
    trainer = TtrlGRPOTrainer(
        model=model,
        reward_funcs=bridge.functions(),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=peft_config,
        ttrl_bridge=bridge,
        ttrl_stop=stop,
        ttrl_mask_truncated=bool(spec.get("mask_truncated_completions", False)),
    )
    if stop and not grpo.get("use_vllm"):
        # transformers' generate needs the tokenizer for stop_strings; TRL does not pass it.
        gen_model = trainer.accelerator.unwrap_model(trainer.model)
        orig = gen_model.generate

        def generate(*a, **kw):
            kw.setdefault("tokenizer", tok)
            return orig(*a, **kw)

        gen_model.generate = generate
    trainer.add_callback(TtrlLogCallback(trainer, spec))

    resume_from = None
    iters = int(spec["num_iterations"])
    main = trainer.accelerator.is_main_process
    if spec.get("resume"):
        resume_from = latest_checkpoint(os.path.join(out, "checkpoints"))
    done_step = 0
    if resume_from:
        with open(os.path.join(resume_from, "trainer_state.json"), encoding="utf-8") as f:
            done_step = int(json.load(f)["global_step"]) // iters
    if main:
        for name in ("train_log.jsonl", "generations.jsonl"):
            p = os.path.join(out, name)
            if resume_from:
                truncate_log(p, done_step)
            elif os.path.exists(p):
                os.remove(p)
        emit("START", {"resume_step": done_step, "total": spec["steps"], "processes": trainer.accelerator.num_processes})
    trainer.accelerator.wait_for_everyone()
    trainer.train(resume_from_checkpoint=resume_from)
    final = save_final(trainer, spec)
    if main:
        emit("DONE", {"final": final, "steps": spec["steps"], "reward_seconds": bridge.seconds, "reward_calls": bridge.calls})


def watch_parent() -> None:
    """Exit when ttrl (TTRL_PARENT_PID) is gone, so a killed ttrl never leaves training running."""
    pid = int(os.environ.get("TTRL_PARENT_PID", "0") or 0)
    if pid <= 0:
        return
    import threading
    import time

    def loop() -> None:
        while True:
            time.sleep(2)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(143)
            except PermissionError:
                pass

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    watch_parent()
    if len(sys.argv) != 2:
        print("usage: python -m ttrl_trl.run SPEC.json", file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    try:
        run(spec)
    except TtrlFail as e:
        emit("ERROR", {"kind": e.kind, "message": str(e)})
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        traceback.print_exc()
        # A reward-bridge failure raised inside TRL keeps its own message.
        cur: BaseException | None = e
        while cur is not None and not isinstance(cur, TtrlFail):
            cur = cur.__cause__ or cur.__context__
        if isinstance(cur, TtrlFail):
            emit("ERROR", {"kind": cur.kind, "message": str(cur)})
        else:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            emit("ERROR", {"kind": "python", "message": f"{type(e).__name__}: {first}"})
        sys.exit(3)


if __name__ == "__main__":
    main()
