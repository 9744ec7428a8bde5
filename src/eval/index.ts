/**
 * `ttrl eval`: k samples per question from a backend (local engine or an OpenAI-compatible server), graded
 * by the grading core. Every finished sample is appended to `cache.jsonl` in the output folder, keyed by
 * (model, prompt, seed, sampling params), so a killed eval resumes without regenerating. "Model" is the
 * backend's id: a content hash of the model folder's weights, config and tokenizer (local), or the endpoint
 * URL and model name (HTTP), so changed weights never reuse old samples.
 *
 * Sample j of question `id` uses seed `sampleSeed(seed, id, j)`, so results depend neither on batching nor on
 * the backend. Outputs: generations.jsonl (`ttrl grade` input rows), metrics.json (`ttrl grade` output),
 * details.jsonl (`ttrl grade --details` rows: each completion's grading), eval_config.json; with `greedy`, greedy/ holds the same for
 * one greedy completion per question.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type GradeOptions, graderFor, type Locale } from "../answers/index.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { readJsonl, rejectTypos, writeJsonl } from "../io/jsonl.ts";
import { computeMetrics } from "../metrics/index.ts";
import { getTemplate, renderPrompt } from "../prompts/index.ts";
import { InputError, TtrlError, UsageError } from "../util/errors.ts";
import { createProgress } from "../util/progress.ts";
import { hashString } from "../util/rng.ts";
import type { Backend, ChatMessage, SampleJob, SampleOut, SamplingParams } from "./backends.ts";

export interface EvalQuestion {
  id: string;
  question: string;
  label: string | null;
}

export interface EvalOptions {
  backend: Backend;
  /** Name recorded in eval_config.json (and used by reports). */
  modelName: string;
  /** Model folder or endpoint URL, for the record. */
  model: string;
  data: string;
  out: string;
  k: number;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  seed?: number;
  template?: string;
  stop?: string[];
  greedy?: boolean;
  ks?: number[];
  format?: string;
  locale?: Locale;
  limit?: number;
  /** Progress bar on/off (default: on a TTY). */
  progress?: boolean;
}

export interface EvalResult {
  out: string;
  metrics: Record<string, any>;
  greedyMetrics?: Record<string, any>;
  questions: number;
  /** Samples per question (without the greedy one). */
  k: number;
  samples: number;
  /** Samples taken from the cache rather than generated. */
  cached: number;
  /**
   * Samples in the output folder's cache that this run did not use: made by other weights (the cache is
   * keyed by the model's content hash, or the endpoint URL and model name) or other sampling settings.
   */
  cacheIgnored: number;
  seconds: number;
}

/** The seed of sample j of question `id` (a non-negative 31-bit integer, accepted by every server). */
export function sampleSeed(seed: number, id: string, j: number | "greedy"): number {
  return hashString(`${seed}\u0000${id}\u0000${j}`) & 0x7fffffff;
}

export function defaultStops(format: string): string[] {
  return format === "reasoning-answer" ? ["</answer>"] : ["</cevap>"];
}

/** The keys `loadQuestions` reads (question or prompt; answer or label) and the data schema's others. */
const QUESTION_KEYS = ["id", "question", "prompt", "answer", "label", "solution", "source", "meta"];

export async function loadQuestions(file: string, limit?: number): Promise<EvalQuestion[]> {
  const out: EvalQuestion[] = [];
  const seen = new Map<string, number>();
  for await (const { line, value } of readJsonl<Record<string, unknown>>(file)) {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputError(file, line, "expected a JSON object with id and question");
    // Extra fields are allowed (datasets carry their own), a misspelt known one is not: "anwser" would
    // leave the question silently unlabelled.
    rejectTypos(file, line, value, QUESTION_KEYS);
    const q = value.question ?? value.prompt;
    if (typeof q !== "string" || q.trim() === "")
      throw new InputError(file, line, 'missing "question" (a non-empty string)');
    const id = value.id === undefined || value.id === null ? `line-${line}` : String(value.id);
    if (seen.has(id))
      throw new InputError(file, line, `duplicate id "${id}" (first on line ${seen.get(id)})`);
    seen.set(id, line);
    const a = value.answer ?? value.label;
    let label: string | null = null;
    if (a !== undefined && a !== null && a !== "") {
      if (typeof a !== "string" && typeof a !== "number")
        throw new InputError(
          file,
          line,
          `"answer" must be a number or a number string, got ${JSON.stringify(a)}`,
        );
      label = String(a);
    }
    out.push({ id, question: q, label });
    if (limit !== undefined && out.length >= limit) break;
  }
  if (out.length === 0) throw new InputError(file, undefined, "no questions");
  return out;
}

interface CacheRow {
  key: string;
  text: string;
  finish_reason: SampleOut["finishReason"];
  completion_tokens: number | null;
}

export async function runEval(o: EvalOptions): Promise<EvalResult> {
  const t0 = Date.now();
  const k = o.k;
  if (!Number.isInteger(k) || k < 1) throw new TtrlError(`k must be a positive integer, got ${k}`);
  const params: SamplingParams = {
    temperature: o.temperature ?? 1,
    topP: o.topP ?? 1,
    maxTokens: o.maxTokens ?? 256,
    stop: o.stop ?? defaultStops(o.format ?? "mantik-cevap"),
  };
  const seed = o.seed ?? 0;
  const templateName = o.template ?? "plain-tr";
  let template: ReturnType<typeof getTemplate>;
  try {
    template = getTemplate(templateName);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const gradeOpts: GradeOptions = { format: o.format ?? "mantik-cevap", locale: o.locale ?? "tr-TR" };
  const grader = graderFor(gradeOpts);
  const tooBig = (o.ks ?? []).filter((x) => x > k);
  if (tooBig.length)
    throw new UsageError(
      `ks ${tooBig.join(",")} exceeds k=${k}: pass@k and cons@k need at least k samples per question`,
    );
  const ks = [...(o.ks ?? [1, 2, 4, 8, 16, 32, 64].filter((x) => x <= k))];
  if (!ks.includes(k)) ks.push(k);
  const questions = await loadQuestions(o.data, o.limit);
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR")
      throw new UsageError(`${o.out}: is a file (or under one); the eval output must be a folder`);
    throw e;
  }

  const jobs: (SampleJob & { q: number; j: number | "greedy"; key: string })[] = [];
  for (let qi = 0; qi < questions.length; qi++) {
    const q = questions[qi];
    const req: { prompt?: string; messages?: ChatMessage[] } =
      template.kind === "chat"
        ? {
            messages: [
              ...(template.system ? [{ role: "system", content: template.system }] : []),
              { role: "user", content: q.question },
            ],
          }
        : { prompt: renderPrompt(q.question, template) };
    const js: (number | "greedy")[] = Array.from({ length: k }, (_, j) => j);
    if (o.greedy) js.push("greedy");
    for (const j of js) {
      const greedy = j === "greedy";
      const s = sampleSeed(seed, q.id, j);
      const key = createHash("sha256")
        .update(
          JSON.stringify([
            o.backend.id,
            req.prompt ?? req.messages,
            greedy ? "greedy" : s,
            greedy ? null : [params.temperature, params.topP],
            params.maxTokens,
            params.stop,
          ]),
        )
        .digest("hex")
        .slice(0, 32);
      const label = `question ${JSON.stringify(q.id)} ${greedy ? "greedy sample" : `sample ${j}`}`;
      jobs.push({ ...req, seed: s, greedy, q: qi, j, key, label });
    }
  }

  // Resume: samples already in the cache are not generated again.
  const cachePath = join(o.out, "cache.jsonl");
  const cache = new Map<string, CacheRow>();
  if (existsSync(cachePath)) {
    for await (const { value } of readJsonl<CacheRow>(cachePath, { skipInvalid: true }))
      if (value && typeof value.key === "string" && typeof value.text === "string")
        cache.set(value.key, value);
  }
  const results: (SampleOut | undefined)[] = jobs.map((j) => {
    const c = cache.get(j.key);
    return c
      ? { text: c.text, finishReason: c.finish_reason, completionTokens: c.completion_tokens }
      : undefined;
  });
  const cached = results.filter(Boolean).length;
  // Cached samples no job asked for: another model's (its weights changed) or other settings'.
  const wanted = new Set(jobs.map((j) => j.key));
  let cacheIgnored = 0;
  for (const key of cache.keys()) if (!wanted.has(key)) cacheIgnored++;
  const pending = jobs.map((_, i) => i).filter((i) => !results[i]);

  if (pending.length) {
    const bar = createProgress({
      label: `eval ${o.modelName}`,
      total: jobs.length,
      unit: "samples",
      enabled: o.progress,
    });
    bar.update(cached);
    try {
      await o.backend.run(
        pending.map((i) => jobs[i]),
        params,
        async (pi, out) => {
          const i = pending[pi];
          results[i] = out;
          const row: CacheRow = {
            key: jobs[i].key,
            text: out.text,
            finish_reason: out.finishReason,
            completion_tokens: out.completionTokens,
          };
          appendFileSync(cachePath, `${JSON.stringify(row)}\n`);
          bar.tick(1);
        },
      );
    } catch (e) {
      bar.stop();
      const done = results.filter(Boolean).length;
      const msg = e instanceof Error ? e.message : String(e);
      throw new TtrlError(
        `${msg}\n${done}/${jobs.length} samples finished and kept in ${cachePath}; re-run the same command to resume`,
        { cause: e },
      );
    }
    bar.stop();
  }

  // Assemble outputs.
  const completions: string[][] = questions.map(() => []);
  const greedyText: (string | null)[] = questions.map(() => null);
  // details.jsonl has `ttrl grade --details` rows: one per question, every completion's grading (plus its
  // seed, finish reason and length).
  const details = questions.map((q) => ({ id: q.id, label: q.label, completions: [] as unknown[] }));
  const greedyDetails = questions.map((q) => ({ id: q.id, label: q.label, completions: [] as unknown[] }));
  jobs.forEach((job, i) => {
    const r = results[i]!;
    const q = questions[job.q];
    const g = grader.grade(r.text, q.label);
    const row = {
      strict: g.strict,
      flexible: g.flexible,
      seed: job.greedy ? null : job.seed,
      finish_reason: r.finishReason,
      completion_tokens: r.completionTokens,
    };
    if (job.greedy) {
      greedyText[job.q] = r.text;
      greedyDetails[job.q].completions.push(row);
    } else {
      completions[job.q].push(r.text);
      details[job.q].completions.push(row);
    }
  });
  const genRows = questions.map((q, qi) => ({ id: q.id, label: q.label, completions: completions[qi] }));
  const metrics = await computeMetrics(genRows, { ...gradeOpts, ks, seed });
  const config = {
    model_name: o.modelName,
    model: o.model,
    backend: o.backend.kind,
    data: o.data,
    questions: questions.length,
    labelled: questions.filter((q) => q.label !== null).length,
    k,
    ks,
    temperature: params.temperature,
    top_p: params.topP,
    max_tokens: params.maxTokens,
    stop: params.stop,
    seed,
    template: templateName,
    format: gradeOpts.format,
    locale: gradeOpts.locale,
    greedy: Boolean(o.greedy),
  };
  await writeJsonl(join(o.out, "generations.jsonl"), genRows);
  await writeJsonl(join(o.out, "details.jsonl"), details);
  await writeJsonAtomic(join(o.out, "metrics.json"), metrics);
  let greedyMetrics: Record<string, any> | undefined;
  if (o.greedy) {
    const gRows = questions.map((q, qi) => ({
      id: q.id,
      label: q.label,
      completions: [greedyText[qi] ?? ""],
    }));
    greedyMetrics = (await computeMetrics(gRows, { ...gradeOpts, ks: [1], seed })) as Record<string, any>;
    await writeJsonl(join(o.out, "greedy", "generations.jsonl"), gRows);
    await writeJsonl(join(o.out, "greedy", "details.jsonl"), greedyDetails);
    await writeJsonAtomic(join(o.out, "greedy", "metrics.json"), greedyMetrics);
  }
  const seconds = (Date.now() - t0) / 1000;
  await writeJsonAtomic(join(o.out, "eval_config.json"), {
    ...config,
    seconds,
    cache_id: o.backend.id,
    cached_samples: cached,
    cache_ignored: cacheIgnored,
  });
  return {
    out: o.out,
    metrics: metrics as Record<string, any>,
    greedyMetrics,
    questions: questions.length,
    k,
    samples: jobs.length,
    cached,
    cacheIgnored,
    seconds,
  };
}
