/**
 * Grading throughput: 1,000,000 completions (a realistic mix of Turkish `<mantık>…</mantık><cevap>…</cevap>`
 * completions: well-formed, text around the tags, wrong answers, en-US numbers, units, unclosed tags,
 * dotted-i tags) graded in both modes against labels, on one core; plus the full metrics pipeline; and the
 * same 10,000 completions through math-verify's parse/verify (peer) in the same run.
 *
 * `npm run bench -- grading` (env GRADING_N to change the count).
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGrader } from "../src/answers/index.ts";
import { runGrade } from "../src/cli/commands/grade.ts";
import { MetricsAccumulator } from "../src/metrics/index.ts";
import { Rng } from "../src/util/rng.ts";
import { median, peakRssMiB, peerPython, writeSection } from "./lib.ts";

const N = Number(process.env.GRADING_N ?? 1_000_000);
const POOL = 10_000;
const GROUP = 8;
const PEER_PYTHON = process.env.GRADING_PEER_PYTHON ?? peerPython();

const rng = new Rng("grading-bench");
const trFmt = new Intl.NumberFormat("tr-TR", { maximumFractionDigits: 2 });
const enFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const sentences = [
  "Ali'nin 3 elması vardı, annesi 4 elma daha verdi.",
  "Bir defter 15 TL olduğuna göre 3 defter 3 × 15 = 45 TL eder.",
  "Otobüs günde 250 km yol alıyor, 5 günde 1.250 km yol alır.",
  "Önce toplam fiyatı bulalım, sonra indirimi çıkaralım.",
  "Kalan miktarı bulmak için harcananı toplamdan çıkarırız.",
  "Sınıfta 16 kız ve 12 erkek öğrenci var, toplam 28 öğrenci.",
  "Bahçenin alanı uzunluk ile genişliğin çarpımıdır.",
  "Yüzde 25 indirim, fiyatın 0,25 katı kadar azalma demektir.",
];

function reasoning(): string {
  const k = 1 + rng.int(8);
  const parts: string[] = [];
  for (let i = 0; i < k; i++) parts.push(sentences[rng.int(sentences.length)]);
  return parts.join("\n");
}

function labelValue(): number {
  const r = rng.next();
  if (r < 0.6) return rng.int(200);
  if (r < 0.85) return 1000 + rng.int(100_000);
  return Math.round(rng.next() * 10_000) / 100;
}

interface Item {
  completion: string;
  label: string;
}

/** 10,000 completions in groups of 8 sharing a label. */
function makePool(): Item[] {
  const items: Item[] = [];
  while (items.length < POOL) {
    const value = labelValue();
    const label = String(value);
    for (let j = 0; j < GROUP && items.length < POOL; j++) {
      const r = rng.next();
      const ans = r < 0.7 ? value : value + 1 + rng.int(5);
      const body = `<mantık>\n${reasoning()}\n</mantık>\n<cevap>\n`;
      const kind = rng.next();
      let c: string;
      if (kind < 0.6) c = `${body}${trFmt.format(ans)}\n</cevap>`;
      else if (kind < 0.72) c = `Çözüm:\n${body}${trFmt.format(ans)}\n</cevap>\nUmarım yardımcı olmuştur.`;
      else if (kind < 0.8) c = `${body}${enFmt.format(ans)}\n</cevap>`;
      else if (kind < 0.86) c = `${body}${trFmt.format(ans)} TL\n</cevap>`;
      else if (kind < 0.91) c = `${body}${trFmt.format(ans)}`;
      else if (kind < 0.95) c = `<mantik>\n${reasoning()}\n</mantik>\n<cevap>${trFmt.format(ans)}</cevap>`;
      else c = `${reasoning()} Sonuç ${trFmt.format(ans)}.`;
      items.push({ completion: c, label });
    }
  }
  return items;
}

const pool = makePool();
const grader = createGrader({ format: "mantik-cevap", locale: "tr-TR" });

function gradeAll(n: number): { valid: number; correct: number } {
  let valid = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const it = pool[i % POOL];
    const g = grader.gradeCanonical(it.completion, it.label);
    if (g.strict.valid) valid++;
    if (g.flexible.correct) correct++;
  }
  return { valid, correct };
}

// Warm-up, then three timed passes of N; we report the median pass (the machine is shared and noisy).
gradeAll(POOL * 5);
const passes: number[] = [];
let res = { valid: 0, correct: 0 };
for (let r = 0; r < 3; r++) {
  const t0 = process.hrtime.bigint();
  res = gradeAll(N);
  passes.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
const secs = median(passes);
const perS = N / secs;
console.log(
  `graded ${N} completions in ${passes.map((x) => x.toFixed(2)).join(" / ")} s (median ${secs.toFixed(2)}): ${Math.round(perS)} completions/s`,
);
console.log(`strict valid ${(res.valid / N).toFixed(3)}, flexible correct ${(res.correct / N).toFixed(3)}`);

// Full metrics pipeline (grading + pass@k + cons@k + *_first, groups of 8, ks 1,2,4,8).
const groups: { id: string; label: string; completions: string[] }[] = [];
for (let g = 0; g < POOL / GROUP; g++) {
  const slice = pool.slice(g * GROUP, (g + 1) * GROUP);
  groups.push({ id: `q${g}`, label: slice[0].label, completions: slice.map((x) => x.completion) });
}
const metricsN = Math.min(N, 200_000);
const t1 = process.hrtime.bigint();
const acc = new MetricsAccumulator({ ks: [1, 2, 4, 8], seed: 0 });
for (let i = 0; i < metricsN / GROUP; i++) acc.add(groups[i % groups.length]);
acc.finish();
const metricsSecs = Number(process.hrtime.bigint() - t1) / 1e9;
const metricsPerS = metricsN / metricsSecs;
console.log(
  `metrics pipeline: ${metricsN} completions in ${metricsSecs.toFixed(2)} s: ${Math.round(metricsPerS)}/s`,
);
const rssGrading = peakRssMiB();

// End to end: `ttrl grade` (JSONL parsing, grading, metrics, --details) on a file, in this process.
const e2eDir = mkdtempSync(join(tmpdir(), "ttrl-bench-grade-e2e-"));
const e2eFile = join(e2eDir, "gens.jsonl");
const e2eRows = Math.min(N, 200_000) / GROUP;
{
  const fd = openSync(e2eFile, "w");
  for (let i = 0; i < e2eRows; i++) writeSync(fd, `${JSON.stringify(groups[i % groups.length])}\n`);
  closeSync(fd);
}
process.env.TTRL_QUIET = "1";
const t2 = process.hrtime.bigint();
await runGrade({
  input: e2eFile,
  format: "mantik-cevap",
  extract: "tags",
  locale: "tr-TR",
  k: [1, 2, 4, 8],
  out: join(e2eDir, "metrics.json"),
  details: join(e2eDir, "details.jsonl"),
  seed: 0,
});
const e2eSecs = Number(process.hrtime.bigint() - t2) / 1e9;
const e2ePerS = (e2eRows * GROUP) / e2eSecs;
rmSync(e2eDir, { recursive: true, force: true });
console.log(
  `ttrl grade end to end: ${e2eRows * GROUP} completions in ${e2eSecs.toFixed(2)} s: ${Math.round(e2ePerS)}/s`,
);
const rss = peakRssMiB();

// Peer: math-verify on the same 10,000 completions.
let peerLine = "";
let ratioLine = "";
if (existsSync(PEER_PYTHON)) {
  const dir = mkdtempSync(join(tmpdir(), "ttrl-bench-grading-"));
  const file = join(dir, "pool.jsonl");
  writeFileSync(
    file,
    pool.map((x) => JSON.stringify({ completion: x.completion, label: x.label })).join("\n"),
  );
  const ours0 = process.hrtime.bigint();
  let oursCorrect = 0;
  for (const it of pool) if (grader.gradeCanonical(it.completion, it.label).flexible.correct) oursCorrect++;
  const oursPoolSecs = Number(process.hrtime.bigint() - ours0) / 1e9;
  const r = spawnSync(PEER_PYTHON, ["bench/peers/math_verify_grade.py", file], { encoding: "utf8" });
  rmSync(dir, { recursive: true, force: true });
  if (r.status === 0) {
    const peer = JSON.parse(r.stdout.trim().split("\n").pop() as string) as {
      n: number;
      seconds: number;
      per_s: number;
      correct: number;
    };
    const ratio = perS / peer.per_s;
    console.log(
      `math-verify: ${peer.n} completions in ${peer.seconds.toFixed(2)} s: ${Math.round(peer.per_s)}/s`,
    );
    console.log(`ratio (ttrl 1M-run rate / math-verify): ${Math.round(ratio)}×`);
    peerLine = `| math-verify \`parse\` + \`verify\` (Python, peer), same 10,000 completions | ${peer.n.toLocaleString("en-US")} | ${peer.seconds.toFixed(2)} | ${Math.round(peer.per_s).toLocaleString("en-US")} |`;
    ratioLine =
      `**ttrl is ${Math.round(ratio).toLocaleString("en-US")}× faster than math-verify** (goal ≥ 100×; ttrl's rate from the 1M run; ` +
      `on just the 10,000-completion pool ttrl took ${(oursPoolSecs * 1000).toFixed(1)} ms). ` +
      `Judged correct (flexible): ttrl ${oursCorrect.toLocaleString("en-US")}, math-verify ${peer.correct.toLocaleString("en-US")} of 10,000 — ` +
      "math-verify does not know Turkish number formatting (reads `1.250` as 1.25) and ignores the tag rules.";
  } else {
    console.error(`math-verify peer failed (${r.status}): ${r.stderr.slice(-500)}`);
    ratioLine = `math-verify peer failed to run (exit ${r.status}); no ratio.`;
  }
} else {
  ratioLine = `math-verify peer not run: ${PEER_PYTHON} is absent.`;
}

const goal = perS >= 500_000 ? "meets" : "misses";
writeSection(
  "grading",
  `## Grading core (\`bench/grading.bench.ts\`)

${N.toLocaleString("en-US")} completions (10,000 distinct, cycled; realistic mix of well-formed Turkish \`<mantık>\`/\`<cevap>\` answers, text around the tags, wrong answers, en-US numbers, units, unclosed and dotted-i tags) graded in **both** modes against their labels on one core (Node is single-threaded), after a warm-up pass; median of three passes. Machine shared with other developers: one short run, expect noise.

| what | completions | seconds | completions/s |
| --- | ---: | ---: | ---: |
| ttrl \`gradeCanonical\` (strict + flexible + correctness) | ${N.toLocaleString("en-US")} | ${secs.toFixed(2)} | **${Math.round(perS).toLocaleString("en-US")}** |
| ttrl full metrics pipeline (grading + pass@k + cons@k + *_first, groups of 8, k = 1,2,4,8) | ${metricsN.toLocaleString("en-US")} | ${metricsSecs.toFixed(2)} | ${Math.round(metricsPerS).toLocaleString("en-US")} |
| \`ttrl grade --k 1,2,4,8 --out … --details …\` end to end on a JSONL file (${e2eRows.toLocaleString("en-US")} rows of 8) | ${(e2eRows * GROUP).toLocaleString("en-US")} | ${e2eSecs.toFixed(2)} | ${Math.round(e2ePerS).toLocaleString("en-US")} |
${peerLine}

Goal ≥ 500,000 completions/s: ${goal} it. Peak RSS: ${rssGrading.toFixed(0)} MiB after the 1M-completion run and the metrics pipeline (10,000-completion pool in memory), ${rss.toFixed(0)} MiB after the end-to-end run (streaming; its input file is written line by line).

${ratioLine}`,
);
