// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { initPresetModel } from "../../src/model/presets.ts";
import { tree } from "../../src/runtime/jax.ts";
import { enginePolicy } from "../../src/train/engine.ts";
import { SFT_DEFAULTS, type SftConfig, type SftRow, trainSft } from "../../src/train/sft.ts";
import { listCheckpoints } from "../../src/train/state.ts";
import { setupRuntime } from "./helpers.ts";
import { paramBytes } from "./toy.ts";

before(setupRuntime);
const tmp = () => mkdtempSync(join(tmpdir(), "ttrl-sft-"));

const rows: SftRow[] = [
  { line: 1, question: "2+3", solution: "<cevap>\n5\n</cevap>" },
  { line: 2, question: "4+4", solution: "<cevap>\n8\n</cevap>" },
  { line: 3, question: "1+6", solution: "<cevap>\n7\n</cevap>" },
  { line: 4, question: "ğüş", solution: "<cevap>\nçö\n</cevap>" },
];

function cfg(over: Partial<SftConfig>): SftConfig {
  return { ...SFT_DEFAULTS, batch_size: 4, learning_rate: 3e-3, warmup_ratio: 0, save_steps: 0, ...over };
}

describe("ttrl sft on the engine's tiny preset", () => {
  it("drives the loss on a tiny pattern near zero (prompt tokens masked)", async () => {
    const model = await initPresetModel("tiny", 1);
    const policy = enginePolicy(model);
    const out = tmp();
    const res = await trainSft({
      policy,
      rows,
      config: cfg({ max_steps: 60, lr_scheduler_type: "constant" }),
      outDir: out,
    });
    const losses = res.log.map((e) => e.loss as number);
    assert.ok(losses[0] > 2, `initial loss ${losses[0]}`);
    assert.ok(losses[losses.length - 1] < 0.05, `final loss ${losses[losses.length - 1]}`);
    // tokens trained per step = solution + EOS only (17 + 17 + 17 + 18 characters... counted from the data)
    const tok = policy.tokenizer;
    const want = rows.reduce(
      (a, r) => a + tok.encode(r.solution as string, { addSpecialTokens: false }).length + 1,
      0,
    );
    assert.equal(res.log[0].tokens, want);
    assert.ok(existsSync(join(out, "final", "model.safetensors")));
    assert.ok(existsSync(join(out, "final", "config.json")));
    tree.dispose(res.params);
  });

  it("kill-and-resume gives identical weights", async () => {
    const c = cfg({
      max_steps: 6,
      save_steps: 2,
      batch_size: 2,
      gradient_accumulation_steps: 2,
      lr_scheduler_type: "cosine",
      warmup_ratio: 0.2,
    });
    const a = tmp();
    const full = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 2)),
      rows,
      config: c,
      outDir: a,
    });
    const b = tmp();
    const killed = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 2)),
      rows,
      config: c,
      outDir: b,
      stopAfter: 3,
    });
    tree.dispose(killed.params);
    assert.deepEqual(listCheckpoints(b), [2]);
    const resumed = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 2)),
      rows,
      config: c,
      outDir: b,
      resume: true,
    });
    assert.deepEqual(await paramBytes(resumed.params), await paramBytes(full.params));
    const strip = (p: string) =>
      readFileSync(p, "utf8")
        .trim()
        .split("\n")
        .map((l) => {
          const o = JSON.parse(l);
          delete o.tokens_per_s;
          return o;
        });
    assert.deepEqual(strip(join(b, "train_log.jsonl")), strip(join(a, "train_log.jsonl")));
    tree.dispose(full.params);
    tree.dispose(resumed.params);
  });

  it("--warmup-steps: a constant-rate run stopped at step n equals a run of n steps with the same warmup", async () => {
    const over = { lr_scheduler_type: "constant_with_warmup" as const, batch_size: 2 };
    const long = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 4)),
      rows,
      config: cfg({ ...over, max_steps: 20, warmup_ratio: 0.1 }), // 2 warmup steps
      outDir: tmp(),
      stopAfter: 5,
    });
    const short = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 4)),
      rows,
      config: cfg({ ...over, max_steps: 5, warmup_steps: 2 }),
      outDir: tmp(),
    });
    assert.deepEqual(
      short.log.map((e) => e.lr),
      long.log.map((e) => e.lr),
    );
    assert.ok((short.log[0].lr as number) < 3e-3 && short.log[4].lr === 3e-3);
    assert.deepEqual(await paramBytes(short.params), await paramBytes(long.params));
    // A ratio alone would warm up over 0.1 × 5 → 1 step: a different schedule.
    const ratio = await trainSft({
      policy: enginePolicy(await initPresetModel("tiny", 4)),
      rows,
      config: cfg({ ...over, max_steps: 5, warmup_ratio: 0.1 }),
      outDir: tmp(),
    });
    assert.notDeepEqual(
      ratio.log.map((e) => e.lr),
      long.log.map((e) => e.lr),
    );
    for (const r of [long, short, ratio]) tree.dispose(r.params);
  });

  it("bad rows name the line", async () => {
    const policy = enginePolicy(await initPresetModel("tiny", 3));
    await assert.rejects(
      trainSft({
        policy,
        rows: [{ line: 7, question: "x" }],
        config: cfg({}),
        outDir: tmp(),
        dataFile: "s.jsonl",
      }),
      /s\.jsonl:7: expected \{"question","solution"\} or \{"text"\}/,
    );
  });
});
