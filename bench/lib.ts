/** Helpers shared by benchmarks: machine description, timing, peak RSS, and writing a results section. */

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

export function machineLine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Write bench/results/NAME.md (a markdown section beginning with a "## " heading). */
export function writeSection(name: string, markdown: string): void {
  mkdirSync("bench/results", { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  writeFileSync(
    `bench/results/${name}.md`,
    `${markdown.trim()}\n\n_Measured ${date} on ${machineLine()}._\n`,
  );
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
