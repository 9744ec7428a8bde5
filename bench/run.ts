/**
 * `npm run bench [-- NAME...]`: runs bench/*.bench.ts (each in its own process, so peak RSS is its own),
 * then rebuilds bench/RESULTS.md from the per-benchmark sections in bench/results/*.md. Each benchmark
 * writes its own section (see bench/lib.ts), so benchmarks never edit one shared file.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const filters = process.argv.slice(2);
const files = readdirSync("bench")
  .filter((f) => f.endsWith(".bench.ts"))
  .sort()
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));

let failed = 0;
for (const f of files) {
  console.log(`\n=== bench/${f}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", join("bench", f)], { stdio: "inherit" });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${f} exited with ${r.status}`);
  }
}

const sections = readdirSync("bench/results")
  .filter((f) => f.endsWith(".md"))
  .sort()
  .map((f) => readFileSync(join("bench/results", f), "utf8").trim());
writeFileSync(
  "bench/RESULTS.md",
  `# Benchmark results\n\nMade by \`npm run bench\` (each section by its own \`bench/*.bench.ts\`; rerun one with \`npm run bench -- NAME\`). Machine: see each section. Ratios against peers are measured in the same run.\n\n${sections.join("\n\n")}\n`,
);
console.log(`\nbench/RESULTS.md rebuilt from ${sections.length} section(s)`);
process.exit(failed ? 1 : 0);
