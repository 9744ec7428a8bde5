// `ttrl experiment --preset quick` end to end with the real engine, trainer, merge and report on a tiny
// random model and a few rows: every stage runs, outputs exist, and a second run skips everything.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import YAML from "yaml";

process.env.TTRL_THREADS ??= "1";
const tmp = mkdtempSync(join(tmpdir(), "ttrl-exp-e2e-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("ttrl experiment --preset quick (real pieces, tiny model)", () => {
  it("runs every stage, writes the report and summary, then skips all on a re-run", async () => {
    const { writePresetModel } = await import("../../src/model/presets.ts");
    const model = join(tmp, "tiny");
    await writePresetModel("tiny", model, { seed: 3 });
    const rows = (n: number, off: number) =>
      Array.from({ length: n }, (_, i) =>
        JSON.stringify({
          id: `r${off + i}`,
          question: `${i + 1} elma ve ${off + i} armut, toplam kaç?`,
          answer: String(off + 2 * i + 1),
        }),
      ).join("\n");
    writeFileSync(join(tmp, "train.jsonl"), rows(8, 0));
    writeFileSync(join(tmp, "test.jsonl"), rows(4, 100));
    const cfgFile = join(tmp, "exp.yml");
    writeFileSync(
      cfgFile,
      YAML.stringify({
        model,
        train_data: join(tmp, "train.jsonl"),
        test_data: join(tmp, "test.jsonl"),
        train: { max_steps: 1, max_completion_length: 16, prompts_per_step: 2, num_generations: 2 },
        eval: { k: 2, ks: [1, 2], max_tokens: 16, limit: 4 },
      }),
    );
    const { loadExperimentConfig } = await import("../../src/experiment/config.ts");
    const { runExperiment } = await import("../../src/experiment/index.ts");
    const cfg = loadExperimentConfig(cfgFile, "quick");
    const out = join(tmp, "run");
    const logs: string[] = [];
    const r = await runExperiment({ config: cfg, out, log: (m) => logs.push(m) });
    assert.deepEqual(
      r.stages.map((s) => [s.name, s.status]),
      [
        ["eval-base", "ran"],
        ["train-accuracy", "ran"],
        ["train-majority", "ran"],
        ["merge", "ran"],
        ["eval-accuracy", "ran"],
        ["eval-majority", "ran"],
        ["eval-merged", "ran"],
        ["report", "ran"],
      ],
    );
    for (const f of [
      "eval/base/metrics.json",
      "eval/merged/generations.jsonl",
      "train/accuracy/train_log.jsonl",
      "train/majority/final/config.json",
      "models/merged/config.json",
      "models/merge.yml",
      "report/report.html",
      "summary.md",
    ])
      assert.ok(existsSync(join(out, f)), `${f} missing`);
    const merged = JSON.parse(readFileSync(join(out, "models", "merged", "config.json"), "utf8"));
    assert.equal(merged.num_hidden_layers, 3);
    assert.equal(r.summary.length, 4);
    for (const row of r.summary) {
      assert.equal(typeof row.valid_strict, "number");
      assert.equal(typeof row.pass1_flexible, "number");
    }
    const again = await runExperiment({ config: cfg, out, log: () => {} });
    assert.ok(again.stages.every((s) => s.status === "skipped"));
    assert.deepEqual(again.summary, r.summary);
  });
});
