// `ttrl experiment --preset quick` on the shipped model and data: the demo must show real numbers (the
// preset once cut completions before the answer tag closed, so every metric was 0) and every chart of the
// report, PNGs included, plus the findings and the paired differences.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

process.env.TTRL_THREADS ??= "1";
const tmp = mkdtempSync(join(tmpdir(), "ttrl-quick-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe("ttrl experiment --preset quick (shipped model and data)", () => {
  it("prints non-zero metrics and writes every chart as a PNG", { timeout: 900_000 }, async () => {
    const { loadExperimentConfig } = await import("../../src/experiment/config.ts");
    const { runExperiment, formatSummary } = await import("../../src/experiment/index.ts");
    const { CHART_IDS } = await import("../../src/report/specs.ts");
    const cfg = loadExperimentConfig(undefined, "quick");
    assert.equal(cfg.report.png, true);
    assert.ok(cfg.eval.max_tokens >= 60, "completions must be long enough to close <cevap>");
    const out = join(tmp, "run");
    const r = await runExperiment({ config: cfg, out, log: () => {} });
    assert.equal(r.summary.length, 4);
    for (const row of r.summary) {
      assert.ok((row.valid_flexible ?? 0) > 0.3, `${row.model}: flexible validity ${row.valid_flexible}`);
      assert.ok((row.valid_strict ?? 0) > 0.3, `${row.model}: strict validity ${row.valid_strict}`);
      assert.equal(typeof row.acc_valid_flexible, "number", `${row.model}: accuracy given valid`);
    }
    // some model answers some question right (all four at 0 is the old all-zero demo)
    assert.ok(
      r.summary.some((row) => (row.pass1_flexible ?? 0) > 0),
      `all pass@1 zero: ${JSON.stringify(r.summary)}`,
    );
    assert.equal(r.summary[0].delta_pass1_flexible, null);
    for (const row of r.summary.slice(1))
      assert.ok(row.delta_pass1_flexible, `${row.model}: no paired difference`);
    const table = formatSummary(r.summary, r.k);
    assert.match(table, /acc\|valid \(flex\)/);
    assert.ok((r.findings ?? []).length >= 2);
    for (const id of CHART_IDS) {
      const png = join(out, "report", "png", `${id}.png`);
      assert.ok(existsSync(png), `${id}.png missing`);
      assert.ok(statSync(png).size > 10_000, `${id}.png is only ${statSync(png).size} bytes`);
      assert.deepEqual(readFileSync(png).subarray(0, 8), PNG_MAGIC);
    }
    const html = readFileSync(join(out, "report", "report.html"), "utf8");
    for (const s of ["Findings", "Differences from the base model", "accuracy | valid", "ttrl_diagnostics"])
      assert.ok(html.includes(s), `report.html lacks ${s}`);
    assert.match(readFileSync(join(out, "summary.md"), "utf8"), /The base model/);
  });
});
