import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { venvPython } from "../../../src/engines/trl/python.ts";
import { SafetensorsFile } from "../../../src/io/safetensors.ts";
import { GRPO_KEYS, type GrpoConfig } from "../../../src/train/config.ts";
import { advantages } from "../../../src/train/loss.ts";
import { scoreGroups, scoreSettings } from "../../../src/train/score.ts";

/** The interpreter the trl tests use (TTRL_PYTHON or the repo's .venv), or null: the tests then skip. */
export function testPython(): string | null {
  if (process.env.TTRL_PYTHON) return process.env.TTRL_PYTHON;
  return existsSync(venvPython()) ? venvPython() : null;
}

export const SKIP_MESSAGE =
  "SKIPPED: engine trl tests need the Python venv (no .venv/bin/python and no TTRL_PYTHON); run `npm run setup:python`";

export function ttrl(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1", ...env },
    maxBuffer: 64 * 2 ** 20,
  });
}

export function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** The GrpoConfig a run saved in config.json (engine keys dropped). */
export function savedConfig(run: string): GrpoConfig {
  const v = JSON.parse(readFileSync(join(run, "config.json"), "utf8")) as Record<string, unknown>;
  const c: Record<string, unknown> = {};
  for (const k of Object.keys(GRPO_KEYS)) c[k] = v[k];
  return c as unknown as GrpoConfig;
}

/**
 * Recompute every logged reward of a run from its logged completions with ttrl's own scoring (whole groups
 * in the step's order); returns the mismatches (empty when all agree) and how many completions were checked.
 */
export function recomputeRewards(run: string): { mismatches: string[]; checked: number; steps: number } {
  const c = savedConfig(run);
  const rowsById = new Map<string, { answer?: string | number | null }>();
  for (const r of readJsonl(c.data)) rowsById.set(String(r.id), r as { answer?: string | number | null });
  const gens = readJsonl(join(run, "generations.jsonl"));
  const log = readJsonl(join(run, "train_log.jsonl"));
  const mismatches: string[] = [];
  let checked = 0;
  const near = (a: unknown, b: number) => typeof a === "number" && Math.abs(a - b) < 1e-6;
  for (const entry of log) {
    const step = entry.step as number;
    const ids = entry.prompt_ids as string[];
    const lines = gens.filter((g) => g.step === step);
    const groups = ids.map((id) => {
      const ls = lines.filter((g) => g.prompt_id === id);
      return {
        lines: ls,
        completions: ls.map((g) => String(g.completion)),
        label: rowsById.get(id)?.answer ?? null,
      };
    });
    const scored = scoreGroups(
      groups.map((g) => ({ completions: g.completions, label: g.label })),
      scoreSettings(c),
      step - 1,
    );
    const adv = advantages(scored, c.scale_rewards);
    const kept: number[] = [];
    scored.forEach((sg, pi) => {
      const g = groups[pi];
      if (g.lines.length !== c.num_generations)
        mismatches.push(
          `step ${step} ${ids[pi]}: ${g.lines.length} logged completions, expected ${c.num_generations}`,
        );
      g.lines.forEach((line, gi) => {
        const j = sg.kept.indexOf(gi);
        checked++;
        if (line.pseudo_label !== sg.vote.pseudoLabel)
          mismatches.push(
            `step ${step} ${ids[pi]}: pseudo_label ${line.pseudo_label} vs ${sg.vote.pseudoLabel}`,
          );
        if (j < 0) {
          if (line.reward !== null)
            mismatches.push(`step ${step} ${ids[pi]}#${gi}: untrained completion has a reward`);
          return;
        }
        kept.push(sg.rewards[gi]);
        if (!near(line.reward, sg.rewards[gi]))
          mismatches.push(
            `step ${step} ${ids[pi]}#${gi}: reward ${line.reward} vs recomputed ${sg.rewards[gi]}`,
          );
        for (const [k, v] of Object.entries(sg.perFunction))
          if (!near((line.rewards as Record<string, number>)[k], v[gi]))
            mismatches.push(
              `step ${step} ${ids[pi]}#${gi}: ${k} ${JSON.stringify(line.rewards)} vs ${v[gi]}`,
            );
        if (!near(line.advantage, adv.advantages[pi][j]))
          mismatches.push(
            `step ${step} ${ids[pi]}#${gi}: advantage ${line.advantage} vs ${adv.advantages[pi][j]}`,
          );
      });
    });
    const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
    if (!near(entry.reward, mean))
      mismatches.push(`step ${step}: logged reward ${entry.reward} vs recomputed ${mean}`);
  }
  return { mismatches, checked, steps: log.length };
}

export async function readWeights(dir: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(join(dir, "model.safetensors"));
  try {
    const out = new Map<string, Float32Array>();
    for (const name of f.tensors.keys()) out.set(name, await f.readF32(name));
    return out;
  } finally {
    await f.close();
  }
}

export function maxAbsDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y || y.length !== x.length) return Number.POSITIVE_INFINITY;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

/** Load a folder in transformers: parameter names, missing/unexpected keys, and token log-probs of `text`. */
export function transformersLoad(python: string, dir: string, text: string) {
  const code = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
m, info = AutoModelForCausalLM.from_pretrained(sys.argv[1], output_loading_info=True)
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok(sys.argv[2], return_tensors="pt")["input_ids"]
with torch.no_grad():
    lp = torch.log_softmax(m(ids).logits.float(), -1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
print(json.dumps({"missing": list(info["missing_keys"]), "unexpected": list(info["unexpected_keys"]),
  "ids": ids[0].tolist(), "logprobs": lp.tolist()}))
`;
  const r = spawnSync(python, ["-c", code, dir, text], {
    encoding: "utf8",
    env: { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_VERBOSITY: "error" },
  });
  if (r.status !== 0) throw new Error(`transformers could not load ${dir}: ${r.stderr.slice(-800)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as {
    missing: string[];
    unexpected: string[];
    ids: number[];
    logprobs: number[];
  };
}
