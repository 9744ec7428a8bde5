import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { buildReport, type ReportResult } from "../../src/report/index.ts";
import { discoverRuns, loadRuns, parseMetrics, uniqueLabels } from "../../src/report/load.ts";
import { measureText, svgToPng, toSvg, toVega } from "../../src/report/render.ts";
import { binLog, buildCharts, type ChartSpec } from "../../src/report/specs.ts";
import { InputError, UsageError } from "../../src/util/errors.ts";
import { colourStats, decodePng, pngSize } from "./png.ts";

const FIX = resolve("test/report/fixtures");
const EXP = join(FIX, "experiment");
const MODELS = ["tr-math-base", "tr-math-GRPO", "tr-math-Majority-Vote-GRPO", "tr-math-GRPO-merged"];
const readJson = (p: string) => JSON.parse(readFileSync(p, "utf8"));
const rowsOf = (c: ChartSpec | undefined) => {
  assert.ok(c, "chart missing");
  return (c.spec as { data: { values: Record<string, unknown>[] } }).data.values;
};
const tmpDirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "ttrl-report-"));
  tmpDirs.push(d);
  return d;
};
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe("finding runs", () => {
  it("finds the eval and train folders of an experiment, base model first", () => {
    const r = discoverRuns([EXP]);
    assert.deepEqual(
      r.evals.map((d) => d.slice(EXP.length + 1)),
      ["eval/base", "eval/accuracy", "eval/majority", "eval/merged"],
    );
    assert.deepEqual(
      r.trains.map((d) => d.slice(EXP.length + 1)),
      ["train/accuracy", "train/majority"],
    );
  });
  it("takes single folders in the order given, without duplicates", () => {
    const r = discoverRuns([join(EXP, "eval/merged"), join(EXP, "eval/base"), join(EXP, "eval/merged")]);
    assert.deepEqual(r.evals, [join(EXP, "eval/merged"), join(EXP, "eval/base")]);
    assert.deepEqual(r.trains, []);
  });
  it("rejects a missing folder (usage) and a folder without runs (input error naming it)", () => {
    assert.throws(() => discoverRuns([join(FIX, "nope")]), UsageError);
    const empty = tmp();
    mkdirSync(join(empty, "sub"));
    assert.throws(
      () => discoverRuns([empty]),
      (e: Error) => e instanceof InputError && e.message.startsWith(empty) && /metrics\.json/.test(e.message),
    );
  });
  it("labels runs by model/run name, else folder name, and makes repeated labels unique", async () => {
    const d = tmp();
    cpSync(join(EXP, "eval/base"), join(d, "a/my-eval"), { recursive: true });
    rmSync(join(d, "a/my-eval/eval_config.json"));
    cpSync(join(EXP, "eval/base"), join(d, "b/x"), { recursive: true });
    cpSync(join(EXP, "eval/base"), join(d, "c/x"), { recursive: true });
    const runs = await loadRuns([d]);
    assert.deepEqual(
      runs.evals.map((e) => e.label),
      ["my-eval", "tr-math-base (b)", "tr-math-base (c)"],
    );
    assert.deepEqual(uniqueLabels(["/p/q/r", "/p/q/s"], ["m", "m"]), ["m (q)", "m (q) #2"]);
  });
});

describe("loading", () => {
  it("reads metrics, examples with parsed answers (details.jsonl or the grading core) and train logs", async () => {
    const runs = await loadRuns([EXP]);
    assert.deepEqual(
      runs.evals.map((e) => e.label),
      MODELS,
    );
    const base = runs.evals[0];
    assert.deepEqual(base.metrics, readJson(join(EXP, "eval/base/metrics.json")));
    assert.equal(base.examples.length, 6);
    const firstDetails = JSON.parse(
      readFileSync(join(EXP, "eval/base/details.jsonl"), "utf8").split("\n")[0],
    );
    assert.deepEqual(base.examples[0].completions[0].strict, firstDetails.completions[0].strict);
    // eval/majority has no details.jsonl: the grading core parses its completions, and agrees with the simulator
    const maj = runs.evals[2];
    const c0 = maj.examples[0].completions[0];
    assert.ok(c0.strict && c0.flexible, "completion not graded");
    const m = /<cevap>\s*(-?\d+)\s*<\/cevap>/.exec(c0.text);
    assert.equal(c0.flexible.answer, m ? m[1] : null);
    assert.equal(c0.flexible.correct, m ? m[1] === maj.examples[0].label : false);

    const acc = runs.trains[0];
    assert.equal(acc.label, "tr-math-GRPO");
    assert.equal(acc.reward, "accuracy");
    assert.equal(acc.log.length, 60);
    assert.equal(acc.log[0].kl, null);
    assert.equal(acc.examples.length, 4);
    assert.ok(acc.examples.every((x) => x.step === 60 && "accuracy" in x.rewards && x.advantage !== null));
  });
  it("skips a cut-off train-log line and counts it", async () => {
    const d = tmp();
    cpSync(join(EXP, "train/majority"), d, { recursive: true });
    writeFileSync(
      join(d, "train_log.jsonl"),
      `${readFileSync(join(d, "train_log.jsonl"), "utf8")}{"step": 61, "rew`,
    );
    const runs = await loadRuns([d]);
    assert.equal(runs.trains[0].log.length, 60);
    assert.equal(runs.trains[0].skippedLogLines, 1);
  });
  it("rejects a metrics.json that is not ttrl grade output, naming the file", () => {
    const f = "/x/metrics.json";
    assert.throws(() => parseMetrics({ strict: {} }, f), /\/x\/metrics\.json: .*"flexible"/);
    const good = readJson(join(EXP, "eval/base/metrics.json"));
    assert.throws(
      () => parseMetrics({ ...good, strict: { ...good.strict, valid_ratio: 1.5 } }, f),
      /strict\.valid_ratio/,
    );
    assert.throws(
      () => parseMetrics({ ...good, strict: { ...good.strict, "pass@k": { one: 0.5 } } }, f),
      /not a k/,
    );
    const d = tmp();
    writeFileSync(join(d, "metrics.json"), "{ nope");
    return assert.rejects(
      loadRuns([d]),
      (e: Error) => e instanceof InputError && e.message.includes("malformed JSON"),
    );
  });
});

describe("chart specs", () => {
  let charts: ChartSpec[];
  let notes: string[];
  before(async () => {
    ({ charts, notes } = buildCharts(await loadRuns([EXP, join(FIX, "unlabeled")])));
  });

  it("makes the seed's charts", () => {
    assert.deepEqual(
      charts.map((c) => c.id),
      [
        "valid_generation_ratios",
        "correct_generation_ratios",
        "k_sampling_metrics_strict",
        "k_sampling_metrics_flexible",
        "ttrl_diagnostics",
        "training_logs",
      ],
    );
    assert.deepEqual(notes, ["No labels (correctness absent, not zero) for: tr-math-base (no labels)."]);
  });
  it("valid ratios: every model (labelled or not), both modes, values from metrics.json", () => {
    const rows = rowsOf(charts.find((c) => c.id === "valid_generation_ratios"));
    assert.equal(rows.length, 10);
    for (const [i, dir] of ["base", "accuracy", "majority", "merged"].entries()) {
      const m = readJson(join(EXP, "eval", dir, "metrics.json"));
      for (const mode of ["strict", "flexible"])
        assert.equal(rows.find((r) => r.model === MODELS[i] && r.mode === mode)?.value, m[mode].valid_ratio);
    }
    const unl = readJson(join(FIX, "unlabeled/metrics.json"));
    assert.equal(
      rows.find((r) => r.model === "tr-math-base (no labels)" && r.mode === "flexible")?.value,
      unl.flexible.valid_ratio,
    );
  });
  it("correct ratios: unlabelled model left out (absent, not zero), CIs carried", () => {
    const c = charts.find((x) => x.id === "correct_generation_ratios");
    const rows = rowsOf(c);
    assert.equal(rows.length, 8);
    assert.ok(!rows.some((r) => String(r.model).includes("no labels")));
    const m = readJson(join(EXP, "eval/majority/metrics.json"));
    const r = rows.find((x) => x.model === MODELS[2] && x.mode === "strict");
    assert.deepEqual([r?.value, r?.lo, r?.hi], [m.strict.accuracy, ...m.strict.ci95.accuracy]);
    assert.match(JSON.stringify(c?.spec), /left out: tr-math-base \(no labels\)/);
  });
  it("pass@k / cons@k: 4 models × 2 metrics × k in {1,2,4,8}, per mode", () => {
    for (const mode of ["strict", "flexible"]) {
      const rows = rowsOf(charts.find((c) => c.id === `k_sampling_metrics_${mode}`));
      assert.equal(rows.length, 32);
      assert.deepEqual([...new Set(rows.map((r) => r.k))], [1, 2, 4, 8]);
      const m = readJson(join(EXP, "eval/merged/metrics.json"))[mode];
      for (const k of ["1", "2", "4", "8"])
        for (const metric of ["pass@k", "cons@k"]) {
          const r = rows.find((x) => x.model === MODELS[3] && x.metric === metric && x.k === Number(k));
          assert.equal(r?.value, m[metric][k]);
          assert.equal(r?.first, m[`${metric}_first`][k]);
        }
    }
  });
  it("training logs: both runs side by side, each reward its own panel, nulls and missing keys dropped", () => {
    const rows = rowsOf(charts.find((c) => c.id === "training_logs")) as {
      run: string;
      step: number;
      panel: string;
      value: number;
    }[];
    const panels = [...new Set(rows.map((r) => r.panel))];
    for (const p of [
      "total reward",
      "reward: accuracy",
      "reward: majority",
      "reward: format",
      "accuracy vs labels",
      "majority ratio",
      "label accuracy (pseudo-label = label)",
      "KL to reference",
      "completion length (tokens)",
    ])
      assert.ok(panels.includes(p), `panel ${p} missing`);
    const count = (run: string, panel: string) =>
      rows.filter((r) => r.run === run && r.panel === panel).length;
    assert.equal(count(MODELS[1], "total reward"), 60);
    assert.equal(count(MODELS[1], "reward: majority"), 0);
    assert.equal(count(MODELS[2], "reward: majority"), 60);
    assert.equal(count(MODELS[1], "KL to reference"), 59); // kl is null at step 1
    assert.equal(count(MODELS[1], "entropy"), 57); // missing on steps 17, 34, 51
    assert.equal(count(MODELS[1], "reward accuracy"), 0); // null for the accuracy run
    const log = readFileSync(join(EXP, "train/majority/train_log.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(
      rows.find((r) => r.run === MODELS[2] && r.panel === "majority ratio" && r.step === 30)?.value,
      log[29].majority_ratio,
    );
  });
  it("leaves out correctness charts when no eval has labels, and eval charts for train-only reports", async () => {
    const u = buildCharts(await loadRuns([join(FIX, "unlabeled")]));
    assert.deepEqual(
      u.charts.map((c) => c.id),
      ["valid_generation_ratios"],
    );
    assert.match(u.notes.join(" "), /correctness metrics are absent/);
    const t = buildCharts(await loadRuns([join(EXP, "train")]));
    assert.deepEqual(
      t.charts.map((c) => c.id),
      ["ttrl_diagnostics", "training_logs"],
    );
    assert.match(t.notes.join(" "), /No eval folders/);
  });
});

describe("long train logs", () => {
  it("are averaged over consecutive steps down to the point limit (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.double({ min: -5, max: 5, noNaN: true }), { nil: null }), {
          minLength: 1,
          maxLength: 400,
        }),
        fc.integer({ min: 1, max: 120 }),
        (values, max) => {
          const log = values.map((v, i) => ({ step: i + 1, x: v }));
          const out = binLog(log, max);
          assert.ok(
            out.length <= max && out.length >= Math.min(max, log.length) / 2,
            `${log.length} rows, max ${max}: ${out.length} bins`,
          );
          assert.equal(out[out.length - 1].step, log.length);
          for (let i = 1; i < out.length; i++)
            assert.ok((out[i].step as number) > (out[i - 1].step as number), "steps must increase");
          if (log.length <= max) assert.equal(out, log);
          // bucket means stay within the range of the values they average
          const xs = values.filter((v): v is number => v !== null);
          for (const r of out)
            if (r.x !== undefined && r.x !== null)
              assert.ok(
                r.x >= Math.min(...xs) - 1e-9 && r.x <= Math.max(...xs) + 1e-9,
                `bin mean ${r.x} out of range`,
              );
        },
      ),
    );
  });
  it("keep the chart small: 5,000 steps become 1,000 points per run and panel", () => {
    const log = Array.from({ length: 5000 }, (_, i) => ({
      step: i + 1,
      reward: (i % 10) / 10,
      kl: i < 2 ? null : 0.01,
    }));
    const run = {
      kind: "train" as const,
      dir: "/r",
      label: "r",
      reward: "majority",
      config: null,
      log,
      skippedLogLines: 0,
      examples: [],
    };
    const { charts } = buildCharts({ evals: [], trains: [run] });
    const rows = rowsOf(charts[0]);
    assert.equal(rows.filter((r) => r.panel === "total reward").length, 1000);
    // bins of 5 consecutive steps of (step % 10) / 10 average to 0.2 and 0.7 in turn
    const means = rows.filter((r) => r.panel === "total reward").map((r) => r.value as number);
    assert.ok(
      means.every((v, i) => Math.abs(v - (i % 2 === 0 ? 0.2 : 0.7)) < 1e-9),
      `bin means ${means.slice(0, 4).join(", ")}…`,
    );
    assert.match(charts[0].description, /averaged over consecutive steps/);
  });
});

describe("headless rendering", () => {
  it("measures text with the shipped font's advance widths", () => {
    assert.ok(Math.abs(measureText("W", 10, false) - 9.888) < 0.01); // DejaVu Sans W: 2025/2048 em
    assert.ok(measureText("iii", 12, false) < measureText("WWW", 12, false));
    assert.ok(measureText("Abc", 12, true) > measureText("Abc", 12, false));
  });
  it("renders text in PNGs with the shipped font only (no system fonts)", () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="5" y="30" font-family="DejaVu Sans" font-size="24">Ağaç 12,5</text></svg>`;
    const img = decodePng(svgToPng(svg, 1).png);
    assert.deepEqual([img.width, img.height], [200, 40]);
    const s = colourStats(img);
    assert.ok(s.nonBackground > 0.05 && s.distinct > 5, `text did not render: ${JSON.stringify(s)}`);
  });
  it("renders every chart to a non-trivial PNG", async () => {
    const { charts } = buildCharts(await loadRuns([EXP]));
    for (const c of charts) {
      const svg = await toSvg(c.id, toVega(c.id, c.spec));
      assert.match(svg, /^<svg/);
      const { png, width, height } = svgToPng(svg);
      assert.deepEqual(pngSize(png), { width, height });
      assert.ok(width > 600 && height > 400, `${c.id}: ${width}x${height}`);
      const s = colourStats(decodePng(png));
      assert.ok(s.distinct > 20 && s.nonBackground > 0.03, `${c.id}: ${JSON.stringify(s)}`);
    }
  });
});

describe("ttrl report", () => {
  let out: string;
  let r: ReportResult;
  before(async () => {
    out = tmp();
    const evil = join(out, "in/evil");
    cpSync(join(EXP, "eval/base"), evil, { recursive: true });
    const cfg = readJson(join(evil, "eval_config.json"));
    writeFileSync(
      join(evil, "eval_config.json"),
      JSON.stringify({ ...cfg, model_name: "</script><b>x</b>" }),
    );
    writeFileSync(
      join(evil, "generations.jsonl"),
      `${JSON.stringify({ id: "q<1>", label: "5", completions: ["</script><script>alert(1)</script>"] })}\n`,
    );
    rmSync(join(evil, "details.jsonl"));
    r = await buildReport({ runs: [EXP, join(out, "in")], out: join(out, "report"), title: "T & <T>" });
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it("writes report.html and one PNG per chart, atomically (no temp files left)", () => {
    assert.equal(r.pngs.length, r.charts.length);
    for (const p of r.pngs)
      assert.deepEqual(pngSize(readFileSync(p.path)), { width: p.width, height: p.height });
    assert.deepEqual(readdirSync(join(out, "report")).sort(), ["png", "report.html"]);
    assert.deepEqual(readdirSync(join(out, "report/png")).sort(), r.charts.map((c) => `${c.id}.png`).sort());
  });
  it("is self-contained and escapes what it shows", () => {
    const html = readFileSync(r.html, "utf8");
    assert.ok(
      !/<script[^>]+src=/i.test(html) && !/<link[^>]+href=/i.test(html),
      "no external scripts or styles",
    );
    assert.match(html, /@font-face\{font-family:"DejaVu Sans"/);
    assert.ok(html.includes("<title>T &amp; &lt;T&gt;</title>"));
    assert.ok(!html.includes("<b>x</b>") && html.includes("&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;"));
    assert.ok(!html.includes("<script>alert(1)"));
    const scripts = html.match(/<script[\s>]/g) ?? [];
    assert.equal(scripts.length, 3); // vega, the data, the boot code
    const data = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
    assert.ok(data, "no report-data script");
    const parsed = JSON.parse(data[1]);
    assert.deepEqual(
      parsed.charts.map((c: { id: string }) => c.id),
      r.charts.map((c) => c.id),
    );
  });
  it("shows the votes of all samples per example question", () => {
    const html = readFileSync(r.html, "utf8");
    const det = JSON.parse(readFileSync(join(EXP, "eval/accuracy/details.jsonl"), "utf8").split("\n")[0]);
    const counts = new Map<string, number>();
    for (const c of det.completions)
      if (c.flexible.valid) counts.set(c.flexible.answer, (counts.get(c.flexible.answer) ?? 0) + 1);
    const [top, n] = [...counts].sort((a, b) => b[1] - a[1])[0];
    const cls = top === det.label ? "vote ok" : "vote";
    assert.ok(
      html.includes(`<span class="${cls}"><code>${top}</code>&nbsp;×${n}</span>`),
      `no vote ${top} ×${n}`,
    );
  });
  it("CLI: runs, and exits 2 on usage errors and 1 on bad input", () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ["bin/ttrl.mjs", "report", ...args], {
        encoding: "utf8",
        env: { ...process.env, TTRL_QUIET: "1" },
      });
    const o = join(out, "cli");
    mkdirSync(join(o, "png"), { recursive: true });
    writeFileSync(join(o, "png/training_logs.png"), "stale");
    writeFileSync(join(o, "png/mine.png"), "not ours");
    const ok = cli("--runs", join(EXP, "eval/base"), join(EXP, "eval/accuracy"), "--out", o, "--no-png");
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /2 eval folder\(s\), 0 train run\(s\), 4 chart\(s\)/);
    assert.ok(existsSync(join(o, "report.html")), "no report.html");
    assert.deepEqual(readdirSync(join(o, "png")), ["mine.png"]); // stale chart PNGs removed, others kept
    assert.equal(cli("--help").status, 0);
    assert.equal(cli("--runs", EXP).status, 2);
    assert.equal(cli("--runs", join(FIX, "missing"), "--out", o).status, 2);
    const empty = join(out, "empty");
    mkdirSync(empty);
    const bad = cli("--runs", empty, "--out", o);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no eval folder \(metrics\.json\) or train run folder/);
  });
});
