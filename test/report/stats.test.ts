// Question-level statistics of the report (src/report/stats.ts): point values equal `ttrl grade`'s
// metrics.json, intervals contain their points, the paired bootstrap detects a real difference and not a
// null one, accuracy given a valid answer is Σcorrect/Σvalid, and the findings and charts carry the numbers.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { buildCharts, loadRuns } from "../../src/report/index.ts";
import { evalStats, findDiff, findings, studyRoles } from "../../src/report/stats.ts";

const FIX = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const EXP = join(FIX, "experiment");
const MODELS = ["base", "accuracy", "majority", "merged"];
const tmp = mkdtempSync(join(tmpdir(), "ttrl-report-stats-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const readJson = (f: string) => JSON.parse(readFileSync(f, "utf8"));

/** An eval folder with details.jsonl rows built from per-question answer lists ("x": invalid). */
function evalDir(name: string, questions: { label: string; answers: string[] }[]): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  const rows = questions.map((q, i) => ({
    id: `q${i}`,
    label: q.label,
    completions: q.answers.map((a) => {
      const g =
        a === "x"
          ? { valid: false, answer: null, correct: false }
          : { valid: true, answer: a, correct: a === q.label };
      return { strict: g, flexible: g };
    }),
  }));
  writeFileSync(join(d, "details.jsonl"), `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return d;
}

describe("evalStats", () => {
  it("reproduces metrics.json's (4-decimal) valid ratio, accuracy, pass@k and cons@k (details.jsonl or graded generations)", async () => {
    const s = await evalStats(
      MODELS.map((m) => ({ label: m, dir: join(EXP, "eval", m) })),
      { ks: [1, 2, 4, 8] },
    );
    assert.deepEqual(s.ks, [1, 2, 4, 8]);
    for (const [i, m] of MODELS.entries()) {
      const metrics = readJson(join(EXP, "eval", m, "metrics.json"));
      for (const mode of ["strict", "flexible"] as const) {
        const st = s.models[i].modes[mode];
        const close = (a: number, b: number, what: string) =>
          assert.ok(Math.abs(a - b) <= 5e-5 + 1e-12, `${m}/${mode} ${what}: ${a} vs ${b}`);
        close(st.valid.value, metrics[mode].valid_ratio, "valid");
        close(st.accuracy.value, metrics[mode].accuracy, "accuracy");
        for (const k of ["1", "2", "4", "8"]) {
          close(st.pass[k].value, metrics[mode]["pass@k"][k], `pass@${k}`);
          close(st.cons[k].value, metrics[mode]["cons@k"][k], `cons@${k}`);
          for (const e of [st.pass[k], st.cons[k]])
            assert.ok(e.lo <= e.value + 1e-12 && e.value <= e.hi + 1e-12);
        }
      }
    }
  });

  it("accuracy given a valid answer is Σcorrect / Σvalid, separate from the valid ratio", async () => {
    const dir = evalDir("agv", [
      { label: "3", answers: ["3", "x", "x", "4"] },
      { label: "5", answers: ["5", "5", "6", "x"] },
    ]);
    const s = await evalStats([{ label: "m", dir }], { ks: [1, 4] });
    const f = s.models[0].modes.flexible;
    assert.equal(f.valid.value, 5 / 8);
    assert.equal(f.accuracy.value, 3 / 8);
    assert.equal(f.accuracyGivenValid?.value, 3 / 5);
  });

  it("paired bootstrap: an identical model differs by exactly 0; a better one by an interval above 0", async () => {
    const qs = Array.from({ length: 60 }, (_, i) => ({
      label: String(i),
      answers: i % 3 === 0 ? [String(i), "x", "99", "98"] : ["97", "x", "99", String(i)],
    }));
    const base = evalDir("base", qs);
    const same = evalDir("same", qs);
    // one more correct sample on every question
    const better = evalDir(
      "better",
      qs.map((q) => ({ label: q.label, answers: q.answers.map((a, j) => (j === 2 ? q.label : a)) })),
    );
    const s = await evalStats(
      [
        { label: "base", dir: base },
        { label: "same", dir: same },
        { label: "better", dir: better },
      ],
      { ks: [1, 4] },
    );
    const z = findDiff(s, "same", "flexible", "pass@1");
    assert.deepEqual([z?.diff, z?.lo, z?.hi, z?.excludesZero], [0, 0, 0, false]);
    const d = findDiff(s, "better", "flexible", "pass@1");
    assert.ok(d);
    assert.ok(Math.abs(d.diff - 0.25) < 1e-12, `diff ${d.diff}`);
    // every question gains exactly 1/4: the paired interval has no spread at all
    assert.ok(Math.abs(d.lo - 0.25) < 1e-12 && Math.abs(d.hi - 0.25) < 1e-12);
    assert.equal(d.excludesZero, true);
    const v = findDiff(s, "better", "flexible", "valid");
    assert.equal(v?.diff, 0);
    assert.ok((findDiff(s, "better", "flexible", "accuracy|valid")?.diff ?? 0) > 0);
  });

  it("pairs by question id and ignores questions only one model has", async () => {
    const base = evalDir("pb", [
      { label: "1", answers: ["1", "2"] },
      { label: "2", answers: ["x", "x"] },
    ]);
    const other = evalDir("po", [{ label: "1", answers: ["2", "2"] }]);
    const s = await evalStats(
      [
        { label: "base", dir: base },
        { label: "other", dir: other },
      ],
      { ks: [1, 2] },
    );
    const d = findDiff(s, "other", "flexible", "pass@1");
    assert.equal(d?.nQuestions, 1);
    assert.equal(d?.diff, -0.5);
  });
});

describe("findings", () => {
  it("states the base's vote signal, each gain with its interval, and the share of the label-trained gain", async () => {
    const qs = (correctPerQ: number, invalid = 0) =>
      Array.from({ length: 40 }, (_, i) => ({
        label: "7",
        answers: Array.from({ length: 8 }, (_, j) =>
          j < correctPerQ ? "7" : j < correctPerQ + invalid ? "x" : String(10 + ((i + j) % 7)),
        ),
      }));
    const s = await evalStats(
      [
        { label: "base", dir: evalDir("f-base", qs(2, 2)) },
        { label: "grpo-accuracy", dir: evalDir("f-acc", qs(6)) },
        { label: "ttrl-majority", dir: evalDir("f-maj", qs(5)) },
      ],
      { ks: [1, 8] },
    );
    const text = findings(s).join("\n");
    assert.match(text, /pass@1 25\.0%/);
    assert.match(text, /cons@8 100\.0%/); // 2 votes for 7 beat the 1-vote wrong answers
    assert.match(text, /grpo-accuracy: pass@1 75\.0%, \+50\.0 pts \[95% CI \+50\.0, \+50\.0\]/);
    // majority gain 37.5 of the label-trained 50 points
    assert.match(text, /reached 75% of the label-trained gain/);
    assert.match(text, /Valid answers 75\.0% → 100\.0%/);
    assert.match(text, /accuracy given a valid answer 33\.3% → 62\.5%/);
  });

  it("says plainly when majority-vote training did not help (no negative share of the gain)", async () => {
    const qs = (correctPerQ: number) =>
      Array.from({ length: 20 }, () => ({
        label: "7",
        answers: Array.from({ length: 4 }, (_, j) => (j < correctPerQ ? "7" : "9")),
      }));
    const s = await evalStats(
      [
        { label: "base", dir: evalDir("n-base", qs(2)) },
        { label: "grpo-accuracy", dir: evalDir("n-acc", qs(3)) },
        { label: "ttrl-majority", dir: evalDir("n-maj", qs(1)) },
      ],
      { ks: [1, 4] },
    );
    const text = findings(s).join("\n");
    assert.match(text, /did not raise pass@1 \(−25\.0 points\) while label training gained \+25\.0/);
    assert.doesNotMatch(text, /reached -?\d+% of the label-trained gain/);
  });

  it("finds the label-trained and majority-trained models by name, never the merge", () => {
    assert.deepEqual(studyRoles(["base", "merged-slerp", "grpo-accuracy", "ttrl-majority"]), {
      accuracy: "grpo-accuracy",
      majority: "ttrl-majority",
    });
    assert.deepEqual(studyRoles(["base", "x"]), { accuracy: null, majority: null });
  });
});

describe("charts with statistics", () => {
  it("pass@k / cons@k bars carry bootstrap intervals and an error-bar layer; diagnostics plot the vote", async () => {
    const runs = await loadRuns([EXP]);
    const s = await evalStats(runs.evals.map((e) => ({ label: e.label, dir: e.dir })));
    const { charts } = buildCharts(runs, s);
    const k = charts.find((c) => c.id === "k_sampling_metrics_flexible");
    assert.ok(k, "no pass@k chart");
    const rows = ((k?.spec.data ?? { values: [] }) as { values: Record<string, number | string>[] }).values;
    const r = rows.find((x) => x.model === runs.evals[0].label && x.metric === "cons@k" && x.k === 8);
    const est = s.models[0].modes.flexible.cons["8"];
    assert.deepEqual([r?.lo, r?.hi], [est.lo, est.hi]);
    assert.ok(est.hi > est.lo);
    assert.match(JSON.stringify(k?.spec), /"y2":\{"field":"hi"\}/);
    const d = charts.find((c) => c.id === "ttrl_diagnostics");
    const drows = (
      (d?.spec.data ?? { values: [] }) as {
        values: { run: string; step: number; panel: string; value: number }[];
      }
    ).values;
    const panels = [...new Set(drows.map((x) => x.panel))];
    assert.equal(panels.length, 4);
    const log = readFileSync(join(EXP, "train/majority/train_log.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const at5 = drows.find(
      (x) => x.run === runs.trains[1].label && x.step === 5 && /pseudo-label/.test(x.panel),
    );
    assert.equal(at5?.value, log[4].label_accuracy);
  });

  it("without statistics the pass@k chart has no interval fields (older callers)", async () => {
    const { charts } = buildCharts(await loadRuns([EXP]));
    const k = charts.find((c) => c.id === "k_sampling_metrics_strict");
    assert.ok(k, "no pass@k chart");
    const rows = ((k?.spec.data ?? { values: [] }) as { values: Record<string, unknown>[] }).values;
    assert.ok(rows.every((x) => x.lo === undefined));
  });
});
