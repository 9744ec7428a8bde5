/**
 * `ttrl data build`: the seed's pipeline — sample, translate, extract answers, keep integers, split — with
 * every intermediate file written to the output folder and all LLM calls cached there.
 */
import { join } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";
import { type ImportOptions, importFile } from "./import.ts";
import { LlmClient, type LlmConfig } from "./llm.ts";
import { extractRows, type PromptFile, translateRows } from "./llmsteps.ts";
import { filterRows, parseSplitSpec, sampleRows, splitRows } from "./ops.ts";
import { type DataRow, writeRows } from "./schema.ts";

export interface BuildOptions {
  from: string;
  out: string;
  import?: ImportOptions;
  sample?: number;
  seed: number | string;
  translate?: string;
  extractAnswers?: boolean;
  integersOnly?: boolean;
  digitsOnly?: boolean;
  split?: string;
  splitNames?: string[];
  llm?: Omit<LlmConfig, "cacheFile"> & { cacheFile?: string };
  concurrency?: number;
  translatePrompt?: PromptFile;
  extractPrompt?: PromptFile;
}

export interface BuildSummary {
  rows_in: number;
  sampled: number;
  translated: number | null;
  extracted: number | null;
  kept: number;
  dropped: Record<string, number>;
  splits: Record<string, number>;
  unused_after_split: number;
  llm: {
    requests: number;
    cache_hits: number;
    retries: number;
    retry_reasons: Record<string, number>;
  } | null;
  files: Record<string, string>;
}

export async function buildDataset(o: BuildOptions): Promise<BuildSummary> {
  const needLlm = Boolean(o.translate || o.extractAnswers);
  // Validate everything cheap (split spec, LLM config and API key) before reading data or calling anyone.
  const spec = o.split ? parseSplitSpec(o.split, o.splitNames) : null;
  let llm: LlmClient | null = null;
  if (needLlm) {
    if (!o.llm) throw new Error("buildDataset: LLM steps need an llm config");
    llm = new LlmClient({ ...o.llm, cacheFile: o.llm.cacheFile ?? join(o.out, "llm-cache.jsonl") });
  }
  const files: Record<string, string> = {};
  const dropped: Record<string, number> = {};
  const addDropped = (d: Record<string, number>) => {
    for (const [k, v] of Object.entries(d)) dropped[k] = (dropped[k] ?? 0) + v;
  };
  const save = async (name: string, rows: DataRow[]) => {
    const f = join(o.out, `${name}.jsonl`);
    await writeRows(f, rows);
    files[name] = `${name}.jsonl`;
  };

  const imported = await importFile(o.from, o.import ?? {});
  let rows = imported.rows;
  const rowsIn = rows.length;
  if (o.sample !== undefined) {
    rows = sampleRows(rows, Math.min(o.sample, rows.length), o.seed);
    await save("sampled", rows);
  }
  const sampled = rows.length;
  const summary: BuildSummary = {
    rows_in: rowsIn,
    sampled,
    translated: null,
    extracted: null,
    kept: 0,
    dropped,
    splits: {},
    unused_after_split: 0,
    llm: null,
    files,
  };
  const llmStats = () =>
    llm
      ? {
          requests: llm.stats.requests,
          cache_hits: llm.stats.cacheHits,
          retries: llm.stats.retries,
          retry_reasons: llm.stats.retryReasons,
        }
      : null;
  try {
    if (o.translate && llm) {
      const r = await translateRows(rows, llm, {
        language: o.translate,
        prompt: o.translatePrompt,
        concurrency: o.concurrency,
      });
      rows = r.rows;
      summary.translated = r.done;
      addDropped(r.dropped);
      await save("translated", rows);
    }
    if (o.extractAnswers && llm) {
      const r = await extractRows(rows, llm, { prompt: o.extractPrompt, concurrency: o.concurrency });
      rows = r.rows;
      summary.extracted = r.done;
      addDropped(r.dropped);
      await save("extracted", rows);
    }
  } finally {
    summary.llm = llmStats();
  }
  if (o.integersOnly || o.digitsOnly) {
    const f = filterRows(rows, { integersOnly: o.integersOnly, digitsOnly: o.digitsOnly });
    rows = f.rows;
    for (const [k, v] of Object.entries(f.dropped))
      dropped[`filter: ${k}`] = (dropped[`filter: ${k}`] ?? 0) + v;
    await save("filtered", rows);
  }
  summary.kept = rows.length;
  if (spec) {
    const s = splitRows(rows, spec, o.seed);
    for (const p of s.parts) {
      await save(p.name, p.rows);
      summary.splits[p.name] = p.rows.length;
    }
    summary.unused_after_split = s.unused;
  } else await save("data", rows);
  await writeJsonAtomic(join(o.out, "summary.json"), summary);
  return summary;
}

export function formatBuildSummary(s: BuildSummary): string {
  const lines = [
    `rows in: ${s.rows_in}`,
    `sampled: ${s.sampled}`,
    ...(s.translated !== null ? [`translated: ${s.translated}`] : []),
    ...(s.extracted !== null ? [`answers extracted: ${s.extracted}`] : []),
    `kept: ${s.kept}`,
    ...Object.entries(s.dropped).map(([k, v]) => `dropped (${k}): ${v}`),
    ...Object.entries(s.splits).map(([k, v]) => `${k}: ${v}`),
    ...(s.unused_after_split > 0 ? [`not in any split: ${s.unused_after_split}`] : []),
    ...(s.llm
      ? [
          `llm: ${s.llm.requests} requests, ${s.llm.cache_hits} from cache, ${s.llm.retries} retries` +
            (Object.keys(s.llm.retry_reasons).length
              ? ` (${Object.entries(s.llm.retry_reasons)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join(", ")})`
              : ""),
        ]
      : []),
  ];
  return lines.join("\n");
}
