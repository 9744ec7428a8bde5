/** Helpers shared by benchmarks: machine description, timing, peak RSS, and writing a results section. */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
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

/**
 * Run a benchmark worker or peer (`cmd args`) with TTRL_THREADS = `threads` (and TTRL_QUIET) and return the
 * last line of its stdout that starts with "{", parsed; fails with its stderr's tail otherwise.
 */
export function runJson<T = Record<string, unknown>>(cmd: string, args: string[], threads: number): T {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1", TTRL_THREADS: String(threads) },
    maxBuffer: 1 << 26,
  });
  const line = r.stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .pop();
  if (r.status !== 0 || !line)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return JSON.parse(line) as T;
}

/**
 * The Python of the benchmark peers: TTRL_PYTHON, else the repo's .venv (made by
 * `npm run setup:python -- --peers` from python/requirements.txt and bench/peers/requirements.txt). Exits
 * with that command when neither exists, so `npm run bench` says how to get the peers.
 */
export function peerPython(): string {
  const py = process.env.TTRL_PYTHON ?? ".venv/bin/python";
  if (!existsSync(py)) {
    console.error(`bench: the peers need Python at ${py}; run \`npm run setup:python -- --peers\` first`);
    process.exit(2);
  }
  return py;
}

/** A console script of the peers' venv (e.g. mergekit-yaml), next to peerPython(). */
export function peerBin(name: string): string {
  const py = peerPython();
  return py.replace(/python[0-9.]*$/, name);
}
