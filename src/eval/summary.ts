/** The short summary `ttrl eval` prints: validity, accuracy, pass@k and cons@k in both modes. */
import type { EvalResult } from "./index.ts";

export const pct = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? "—" : `${(100 * v).toFixed(1)}%`;

export function formatEvalSummary(r: EvalResult): string {
  const m = r.metrics;
  const ks: number[] = m.ks ?? [];
  const lines = [
    `eval: ${r.questions} questions × ${r.k} samples${r.greedyMetrics ? " + 1 greedy" : ""}` +
      ` (${r.cached} from cache) in ${r.seconds.toFixed(1)} s → ${r.out}`,
  ];
  if (r.cacheIgnored > 0)
    lines.push(
      `cache: ${r.cacheIgnored} cached sample(s) in ${r.out} belong to other weights, another endpoint or other settings and were not used`,
    );
  if (m.n_labelled === 0) lines.push("no labels in the data: correctness metrics are absent (—)");
  const head = ["mode", "valid", "accuracy", ...ks.map((k) => `pass@${k}`), ...ks.map((k) => `cons@${k}`)];
  const rows = (["strict", "flexible"] as const).map((mode) => {
    const x = m[mode] ?? {};
    return [
      mode,
      pct(x.valid_ratio),
      pct(x.accuracy),
      ...ks.map((k) => pct(x["pass@k"]?.[String(k)])),
      ...ks.map((k) => pct(x["cons@k"]?.[String(k)])),
    ];
  });
  if (r.greedyMetrics) {
    const g = r.greedyMetrics;
    lines.push(
      `greedy: valid ${pct(g.strict?.valid_ratio)} / ${pct(g.flexible?.valid_ratio)}, accuracy ${pct(g.strict?.accuracy)} / ${pct(g.flexible?.accuracy)} (strict / flexible)`,
    );
  }
  lines.push(table([head, ...rows]));
  return `${lines.join("\n")}\n`;
}

export function table(rows: string[][]): string {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join("  ");
      return i === 0 ? `${line}\n${w.map((x) => "-".repeat(x)).join("  ")}` : line;
    })
    .join("\n");
}
