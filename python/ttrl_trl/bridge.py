"""The reward bridge: TRL reward functions that ask ttrl's reward service (TypeScript, over HTTP on
127.0.0.1 with a bearer token) for the rewards of whole groups.

TRL calls reward functions per process with that process's completions. When a process's generation batch
is not a multiple of num_generations a group is split across processes, so the bridge first gathers every
process's completions, checks that each group (all completions of one prompt at one step) is complete, asks
the service once (main process), and hands every process back its own slice. A majority vote therefore
always sees the whole group.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class TtrlFail(Exception):
    """An error ttrl shows as one message (no Python stack trace). `kind` names where it came from."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def post_json(url: str, token: str, body: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:500]
        try:
            detail = json.loads(detail).get("error", detail)
        except Exception:
            pass
        raise TtrlFail("reward", f"reward service answered HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise TtrlFail("reward", f"reward service unreachable at {url}: {getattr(e, 'reason', e)}") from None
    try:
        out = json.loads(raw)
    except ValueError:
        raise TtrlFail("reward", f"reward service answered something that is not JSON: {raw[:200]!r}") from None
    if not isinstance(out, dict):
        raise TtrlFail("reward", f"reward service answered {type(out).__name__}, expected an object")
    return out


def group_batch(items: list[dict[str, Any]], num_generations: int) -> list[dict[str, Any]]:
    """Groups (step, pi) of the gathered batch in order of first appearance; every group must hold exactly
    num_generations completions, else an error naming the prompt id (never a vote over part of a group)."""
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    for gi, it in enumerate(items):
        key = (int(it["step"]), int(it["pi"]))
        g = groups.get(key)
        if g is None:
            g = {"step": key[0], "pi": key[1], "prompt_id": it["prompt_id"], "completions": [], "positions": []}
            groups[key] = g
        g["completions"].append(it["completion"])
        g["positions"].append(gi)
    for g in groups.values():
        if len(g["completions"]) != num_generations:
            raise TtrlFail(
                "group",
                f"incomplete group for prompt id {g['prompt_id']!r} at step {g['step'] + 1}: "
                f"{len(g['completions'])} of {num_generations} completions arrived",
            )
    return list(groups.values())


def check_response(resp: dict[str, Any], groups: list[dict[str, Any]], names: list[str], n: int, m: int) -> None:
    got = resp.get("groups")
    if not isinstance(got, list) or len(got) != len(groups):
        raise TtrlFail(
            "reward",
            f"reward service answered {len(got) if isinstance(got, list) else 'no'} groups for {len(groups)} asked",
        )
    for g, r in zip(groups, got):
        if not isinstance(r, dict):
            raise TtrlFail("reward", f"reward service answered a non-object for prompt id {g['prompt_id']!r}")
        idx = r.get("rewarded_indices")
        total = r.get("total")
        if not (isinstance(idx, list) and isinstance(total, list) and len(idx) == m and len(total) == m):
            raise TtrlFail(
                "reward",
                f"reward service answered a malformed group for prompt id {g['prompt_id']!r} "
                f"(expected {m} rewards with their indices)",
            )
        if any(not isinstance(i, int) or i < 0 or i >= n for i in idx):
            raise TtrlFail("reward", f"reward service answered bad rewarded indices for prompt id {g['prompt_id']!r}")
        pf = r.get("per_function")
        if not isinstance(pf, dict) or any(not isinstance(pf.get(k), list) or len(pf[k]) != m for k in names):
            raise TtrlFail(
                "reward", f"reward service answered no per-function rewards for prompt id {g['prompt_id']!r}"
            )
        for v in [*total, *(x for k in names for x in pf[k])]:
            if not isinstance(v, (int, float)) or v != v:
                raise TtrlFail("reward", f"reward service answered a non-number reward for prompt id {g['prompt_id']!r}")


class RewardBridge:
    """One TRL reward function per ttrl reward function (so TRL logs rewards/<name>/mean); the first call of
    a batch asks the service, the others read the cached answer."""

    def __init__(self, url: str, token: str, names: list[str], num_generations: int, rewarded_count: int):
        self.url = url
        self.token = token
        self.names = names
        self.n = num_generations
        self.m = rewarded_count
        self.accelerator = None  # set by the trainer
        # Finish reason ("stop", "eos", "length") of each local completion, set by the trainer's generate.
        self.local_finish: list[str] | None = None
        self._key: Any = None
        self._local: dict[str, Any] | None = None
        # Main process: per ttrl step (0-based), everything the logs need.
        self.records: dict[int, dict[str, Any]] = {}
        self.seconds = 0.0
        self.calls = 0

    def functions(self):
        fns = []
        for j, name in enumerate(self.names):

            def fn(prompts, completions, completion_ids=None, _j=j, _name=name, **kw):
                local = self._score(completions, completion_ids, kw)
                return local["per_function"][_name]

            fn.__name__ = name
            fns.append(fn)
        return fns

    def local_trained(self) -> list[bool]:
        assert self._local is not None
        return self._local["trained"]

    def _score(self, completions, completion_ids, kw) -> dict[str, Any]:
        key = (id(completions), tuple(kw["step"]), tuple(kw["pi"]), len(completions))
        if key == self._key and self._local is not None:
            return self._local
        t0 = time.perf_counter()
        acc = self.accelerator
        rank = acc.process_index if acc is not None else 0
        lens = [len(c) for c in completion_ids] if completion_ids is not None else [0] * len(completions)
        local_items = [
            {
                "step": int(kw["step"][i]),
                "pi": int(kw["pi"][i]),
                "prompt_id": kw["prompt_id"][i],
                "completion": completions[i] if isinstance(completions[i], str) else str(completions[i]),
                "tokens": lens[i],
                "rank": rank,
                "finish": self.local_finish[i] if self.local_finish and i < len(self.local_finish) else None,
            }
            for i in range(len(completions))
        ]
        world = acc.num_processes if acc is not None else 1
        if world > 1:
            from accelerate.utils import broadcast_object_list, gather_object

            per_rank = gather_object([local_items])
        else:
            per_rank = [local_items]
        offsets = [0]
        for r in per_rank:
            offsets.append(offsets[-1] + len(r))
        items = [it for r in per_rank for it in r]
        answer: dict[str, Any] = {}
        if rank == 0:
            try:
                groups = group_batch(items, self.n)
                steps = {g["step"] for g in groups}
                if len(steps) != 1:
                    raise TtrlFail("group", f"a generation batch mixes steps {sorted(steps)}")
                body = {
                    "step": groups[0]["step"],
                    "groups": [{"pi": g["pi"], "prompt_id": g["prompt_id"], "completions": g["completions"]} for g in groups],
                }
                resp = post_json(self.url, self.token, body)
                check_response(resp, groups, self.names, self.n, self.m)
                answer = {"groups": groups, "resp": resp}
            except TtrlFail as e:
                answer = {"error": [e.kind, str(e)]}
        if world > 1:
            box = [answer]
            broadcast_object_list(box, from_process=0)
            answer = box[0]
        if "error" in answer:
            raise TtrlFail(*answer["error"])
        groups, resp = answer["groups"], answer["resp"]
        # Per gathered position: rewards (None when not trained: TRL then leaves it out of the group's mean
        # and std and gives it a zero advantage; the trainer drops those rows before the update).
        n_all = len(items)
        per_fn_all: dict[str, list[float | None]] = {k: [None] * n_all for k in self.names}
        trained_all = [False] * n_all
        for g, r in zip(groups, resp["groups"]):
            for j, gi in enumerate(r["rewarded_indices"]):
                pos = g["positions"][gi]
                trained_all[pos] = True
                for k in self.names:
                    per_fn_all[k][pos] = float(r["per_function"][k][j])
        lo, hi = offsets[rank], offsets[rank + 1]
        self._local = {
            "per_function": {k: v[lo:hi] for k, v in per_fn_all.items()},
            "trained": trained_all[lo:hi],
        }
        self._key = key
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        if rank == 0:
            step = groups[0]["step"]
            self.records[step] = {"groups": groups, "resp": resp, "items": items}
        return self._local
