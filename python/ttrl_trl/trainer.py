"""GRPOTrainer as ttrl's `trl` engine: stop strings, TTRL's N votes / M trained, and ttrl's logs.

- `TtrlGRPOTrainer` (a small GRPOTrainer subclass): cuts each completion after its first stop string
  (transformers' generate pads a finished row instead of ending it), records each completion's finish
  reason, and after TRL has scored the batch drops the completions ttrl's reward service did not pick for
  the update (their rewards are None, so TRL already left them out of the group mean and std), masks
  truncated completions when asked, and recounts the loss normaliser over what is left.
- `TtrlLogCallback` writes `train_log.jsonl` with the jax engine's keys (TRL-only fields under `trl/`) and
  `generations.jsonl`, and prints one `TTRL_STEP {...}` line per step for ttrl's progress bar.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from .bridge import RewardBridge


class TtrlGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, ttrl_bridge: RewardBridge, ttrl_stop: list[str], ttrl_mask_truncated: bool, **kw):
        super().__init__(*args, **kw)
        self.ttrl_bridge = ttrl_bridge
        ttrl_bridge.accelerator = self.accelerator
        self.ttrl_stop = [s for s in ttrl_stop if s]
        self.ttrl_mask_truncated = ttrl_mask_truncated
        self.ttrl_times = {"sampling": 0.0, "score": 0.0, "reward": 0.0}

    # -- sampling ------------------------------------------------------------------------------------------
    def _stop_cut(self, ids: list[int]) -> int | None:
        """Tokens to keep so the completion ends with its first stop string (None: no stop string)."""
        if not self.ttrl_stop or not ids:
            return None
        dec = lambda k: self.processing_class.decode(ids[:k], skip_special_tokens=True)  # noqa: E731
        has = lambda t: any(s in t for s in self.ttrl_stop)  # noqa: E731
        if not has(dec(len(ids))):
            return None
        lo, hi = 1, len(ids)  # smallest k with a stop string in decode(ids[:k]); has() is monotone in k
        while lo < hi:
            mid = (lo + hi) // 2
            if has(dec(mid)):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        t0 = time.perf_counter()
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        eos = set(self.eos_token_ids if isinstance(self.eos_token_ids, list) else [self.eos_token_ids])
        limit = self.max_completion_length
        out_ids, out_lp, finish = [], [] if logprobs is not None else None, []
        for k, ids in enumerate(completion_ids):
            ids = list(ids)
            cut = self._stop_cut(ids)
            if cut is not None:
                ids = ids[:cut]
                finish.append("stop")
            elif ids and ids[-1] in eos:
                finish.append("eos")
            else:
                finish.append("length" if len(ids) >= limit else "stop")
            out_ids.append(ids)
            if out_lp is not None:
                out_lp.append(list(logprobs[k])[: len(ids)])
        self.ttrl_bridge.local_finish = finish
        self.ttrl_times["sampling"] += time.perf_counter() - t0
        return out_ids, out_lp

    # -- scoring and the N votes / M trained subset --------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        t0 = time.perf_counter()
        r0 = self.ttrl_bridge.seconds
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out
        trained = self.ttrl_bridge.local_trained()
        finish = self.ttrl_bridge.local_finish or []
        rows = len(trained)
        mask = out["completion_mask"]
        if self.ttrl_mask_truncated:
            cut = torch.tensor([f == "length" for f in finish], device=mask.device)
            mask = mask * (~cut).unsqueeze(1).to(mask.dtype)
            out["completion_mask"] = mask
        if not all(trained):
            keep = torch.tensor([i for i, t in enumerate(trained) if t], dtype=torch.long, device=mask.device)
            for k, v in list(out.items()):
                if isinstance(v, torch.Tensor) and v.ndim > 0 and v.size(0) == rows:
                    out[k] = v.index_select(0, keep.to(v.device))
                elif isinstance(v, list) and len(v) == rows:
                    out[k] = [v[i] for i in keep.tolist()]
            mask = out["completion_mask"]
        loss_mask = mask if out.get("tool_mask") is None else mask * out["tool_mask"]
        out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        self.ttrl_times["score"] += time.perf_counter() - t0
        self.ttrl_times["reward"] += self.ttrl_bridge.seconds - r0
        return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _std0(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class TtrlLogCallback(TrainerCallback):
    """ttrl's train_log.jsonl / generations.jsonl, one line per ttrl step (= num_iterations TRL steps)."""

    def __init__(self, trainer: TtrlGRPOTrainer, spec: dict[str, Any]):
        self.trainer = trainer
        self.spec = spec
        self.out = spec["out"]
        self.iters = int(spec["num_iterations"])
        self.names = list(spec["reward_funcs"])
        self.beta = float(spec["beta"])
        self.t_step = time.perf_counter()
        self.stop_after = spec.get("stop_after")
        self.ran = 0

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step % self.iters == 0:
            self.t_step = time.perf_counter()
            for k in self.trainer.ttrl_times:
                self.trainer.ttrl_times[k] = 0.0

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or logs is None or "loss" not in logs:
            return
        gs = state.global_step
        if gs % self.iters != 0:
            return
        step = gs // self.iters
        rec = self.trainer.ttrl_bridge.records.pop(step - 1, None)
        if rec is None:
            return
        wall = time.perf_counter() - self.t_step
        entry = self._entry(step, logs, rec, wall)
        with open(os.path.join(self.out, "train_log.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        lcs = int(self.spec["log_completions_steps"])
        if lcs > 0 and step % lcs == 0:
            self._generations(step, rec)
        prog = {
            "step": step,
            "total": self.spec["steps"],
            "reward": entry["reward"],
            "acc": entry.get("accuracy_reward"),
            "kl": entry["kl"],
            "loss": entry["loss"],
            "time": wall,
        }
        print("TTRL_STEP " + json.dumps(prog), flush=True)
        # keep the records of later steps only (a resumed or repeated step must not pile up)
        for k in [k for k in self.trainer.ttrl_bridge.records if k < step - 1]:
            del self.trainer.ttrl_bridge.records[k]

    def on_save(self, args, state, control, **kw):
        step = state.global_step // self.iters
        if state.is_world_process_zero:
            print("TTRL_CHECKPOINT " + json.dumps({"step": step, "global_step": state.global_step}), flush=True)
        self.ran += 1
        if self.stop_after is not None and step >= int(self.stop_after):
            # Test hook: die like a killed process right after this checkpoint (no final/).
            os._exit(137)

    def _entry(self, step: int, logs: dict[str, Any], rec: dict[str, Any], wall: float) -> dict[str, Any]:
        spec = self.spec
        groups = sorted(zip(rec["groups"], rec["resp"]["groups"]), key=lambda gr: gr[0]["pi"])
        totals = [float(x) for _, r in groups for x in r["total"]]
        e: dict[str, Any] = {
            "step": step,
            "epoch": step * spec["prompts_per_step"] / spec["num_rows"],
            "lr": _num(logs.get("learning_rate")) or 0.0,
            "loss": _num(logs.get("loss")) or 0.0,
            "grad_norm": _num(logs.get("grad_norm")) or 0.0,
            "reward": _mean(totals),
            "reward_std": _std0(totals),
        }
        for k in self.names:
            v = [float(x) for _, r in groups for x in r["per_function"][k]]
            e[f"rewards/{k}/mean"] = _mean(v)
            e[f"rewards/{k}/std"] = _std0(v)
        acc = [float(x) for _, r in groups if isinstance(r.get("accuracy"), list) for x in r["accuracy"]]
        if acc:
            e["accuracy_reward"] = _mean(acc)
        for key in ("majority_ratio", "label_accuracy", "reward_accuracy"):
            v = [float(r[key]) for _, r in groups if _num(r.get(key)) is not None]
            if v:
                e[key] = _mean(v)
        e["kl"] = (_num(logs.get("kl")) or 0.0) if self.beta != 0 else 0.0
        e["clip_ratio/low"] = _num(logs.get("clip_ratio/low_mean")) or 0.0
        e["clip_ratio/high"] = _num(logs.get("clip_ratio/high_mean")) or 0.0
        e["entropy"] = _num(logs.get("entropy")) or 0.0
        items = rec["items"]
        lens = [int(it["tokens"]) for it in items]
        e["completion_length/mean"] = _mean([float(x) for x in lens])
        e["completion_length/min"] = min(lens) if lens else 0
        e["completion_length/max"] = max(lens) if lens else 0
        e["truncated_ratio"] = _mean([1.0 if it["finish"] == "length" else 0.0 for it in items])
        e["frac_reward_zero_std"] = _mean([1.0 if r.get("zero_std") else 0.0 for _, r in groups])
        e["tokens_per_s"] = sum(lens) / max(1e-9, wall)
        t = self.trainer.ttrl_times
        e["time/sampling"] = t["sampling"]
        e["time/reference"] = max(0.0, t["score"] - t["sampling"] - t["reward"])
        e["time/update"] = max(0.0, wall - t["score"])
        e["time/step"] = wall
        e["prompt_ids"] = [g["prompt_id"] for g, _ in groups]
        # TRL-only fields
        e["trl/global_step"] = self.trainer.state.global_step
        e["trl/time/reward"] = t["reward"]
        if torch.cuda.is_available():
            e["trl/gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        for k, v in logs.items():
            if k in ("learning_rate", "loss", "grad_norm", "epoch"):
                continue
            if _num(v) is not None:
                e[f"trl/{k}"] = v
        return e

    def _generations(self, step: int, rec: dict[str, Any]) -> None:
        items = rec["items"]
        lines = []
        for g, r in sorted(zip(rec["groups"], rec["resp"]["groups"]), key=lambda gr: gr[0]["pi"]):
            idx = list(r["rewarded_indices"])
            for gi, pos in enumerate(g["positions"]):
                j = idx.index(gi) if gi in idx else -1
                line = {
                    "step": step,
                    "prompt_id": g["prompt_id"],
                    "prompt": r.get("prompt"),
                    "completion": items[pos]["completion"],
                    "answer": r["answers"][gi] if isinstance(r.get("answers"), list) else None,
                    "label": r.get("label"),
                    "pseudo_label": r.get("pseudo_label"),
                    "rewards": {k: r["per_function"][k][j] for k in self.names} if j >= 0 else None,
                    "reward": r["total"][j] if j >= 0 else None,
                    "advantage": r["advantages"][j] if j >= 0 and isinstance(r.get("advantages"), list) else None,
                    "finish_reason": items[pos]["finish"],
                }
                if self.trainer.accelerator.num_processes > 1:
                    line["rank"] = items[pos]["rank"]  # which process sampled it
                lines.append(json.dumps(line, ensure_ascii=False))
        with open(os.path.join(self.out, "generations.jsonl"), "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
