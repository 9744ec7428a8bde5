/** `ttrl data …`: import, sample, filter, split, translate, extract, build, synth. */
import { join } from "node:path";
import { type Command, Option } from "commander";
import type { Extractor, Locale } from "../../answers/index.ts";
import { buildDataset, formatBuildSummary } from "../../data/build.ts";
import { importFile, PRESETS, type Preset } from "../../data/import.ts";
import { LlmClient, type LlmConfig, RunStoppedError } from "../../data/llm.ts";
import { extractRows, loadPromptFile, type StepResult, translateRows } from "../../data/llmsteps.ts";
import { filterRows, parseSplitSpec, sampleRows, splitRows } from "../../data/ops.ts";
import { type DataRow, loadRows, rowToJson, writeRows } from "../../data/schema.ts";
import {
  LANGS,
  type Lang,
  SynthOptionError,
  type SynthOptions,
  synthesize,
  synthesizeDrills,
  TEMPLATE_NAMES,
} from "../../data/synth.ts";
import { writeFileAtomic } from "../../io/atomic.ts";
import { TtrlError, UsageError } from "../../util/errors.ts";
import { Rng } from "../../util/rng.ts";
import { parseChoice, parseExtractor, parseFloatOption, parseIntList, parseIntOption } from "../options.ts";

function parseSeed(v: string): number {
  return parseIntOption("--seed", 0, 2 ** 32 - 1)(v);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Run a synth call; its option errors (named by SynthOptions field) are said with this command's flags. */
function asFlags<T>(run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (!(e instanceof SynthOptionError)) throw e;
    const flags = e.options.map((o) => `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    throw new UsageError(`${flags.join("/")}: ${e.detail}`);
  }
}

function say(text: string) {
  process.stdout.write(`${text}\n`);
}

function droppedLines(d: Record<string, number>): string[] {
  return Object.entries(d).map(([k, v]) => `dropped (${k}): ${v}`);
}

interface ImportFlags {
  preset?: Preset;
  questionField?: string;
  answerField?: string;
  solutionField?: string;
  idField?: string;
  idPrefix?: string;
  answerExtract?: Extractor;
  locale?: Locale;
  format?: "jsonl" | "csv" | "parquet";
  skipInvalid?: boolean;
}

function addImportOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--preset <name>", "source layout preset").choices(PRESETS as string[]))
    .option("--question-field <f>", "field holding the question (default: question)")
    .option("--answer-field <f>", "field holding the answer (default: answer)")
    .option("--solution-field <f>", "field holding a worked solution, kept as `solution`")
    .option("--id-field <f>", "field holding a unique id (default: FILE-<n>)")
    .option("--id-prefix <p>", "prefix of generated ids (default: the file's base name)")
    .option(
      "--answer-extract <how>",
      "pull the number out of a free-text answer: gsm8k | last-number | regex:PATTERN",
      parseExtractor("--answer-extract", ["gsm8k", "last-number"]),
    )
    .addOption(
      new Option("--locale <l>", "number format of the source").choices(["en-US", "tr-TR"]).default("en-US"),
    )
    .addOption(
      new Option("--format <f>", "source format (default: by extension)").choices([
        "jsonl",
        "csv",
        "parquet",
      ]),
    )
    .option("--skip-invalid", "skip bad records (counted) instead of failing");
}

function importOpts(f: ImportFlags) {
  return {
    preset: f.preset,
    questionField: f.questionField,
    answerField: f.answerField,
    solutionField: f.solutionField,
    idField: f.idField,
    idPrefix: f.idPrefix,
    answerExtract: f.answerExtract,
    locale: f.locale,
    format: f.format,
    skipInvalid: f.skipInvalid,
  };
}

interface LlmFlags {
  baseUrl: string;
  model: string;
  concurrency: number;
  timeout: number;
  maxRetries: number;
  temperature: number;
  cache?: string;
}

/**
 * The OpenAI-compatible client options shared by translate, extract and build. `build` needs `--model` only
 * when it runs an LLM step, so there it is optional.
 */
function addLlmOptions(cmd: Command, opts: { modelRequired?: boolean; cacheHelp?: string } = {}): Command {
  const modelRequired = opts.modelRequired !== false;
  const model = new Option(
    "--model <name>",
    modelRequired
      ? "model name on that server"
      : "model name on that server (needed with --translate/--extract-answers)",
  ).makeOptionMandatory(modelRequired);
  return cmd
    .option(
      "--base-url <url>",
      "OpenAI-compatible API base URL (key from OPENAI_API_KEY; none needed on localhost)",
      process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1",
    )
    .addOption(model)
    .option("--concurrency <n>", "requests in flight", parseIntOption("--concurrency", 1, 256), 8)
    .option("--timeout <s>", "per-request timeout in seconds", parseFloatOption("--timeout", 0.001), 60)
    .option(
      "--max-retries <n>",
      "retries per request (429/5xx/timeouts)",
      parseIntOption("--max-retries", 0),
      6,
    )
    .option("--temperature <t>", "sampling temperature", parseFloatOption("--temperature", 0, 2), 0)
    .option("--cache <file>", opts.cacheHelp ?? "LLM reply cache (JSONL); default beside the output");
}

function llmConfig(f: LlmFlags, defaultCache: string): LlmConfig {
  return {
    baseURL: f.baseUrl,
    model: f.model,
    timeoutMs: f.timeout * 1000,
    maxRetries: f.maxRetries,
    temperature: f.temperature,
    cacheFile: f.cache ?? defaultCache,
  };
}

function resumeHint(e: unknown, cache: string | undefined): never {
  if (e instanceof RunStoppedError && cache)
    throw new TtrlError(
      `${e.message}\nreplies so far are cached in ${cache}; rerun the same command to resume`,
      {
        cause: e,
      },
    );
  throw e;
}

export function register(program: Command): void {
  const data = program
    .command("data")
    .description("build datasets: import, sample, translate, extract answers, filter, split, synthesize");

  addImportOptions(
    data
      .command("import")
      .description(
        "map a JSONL, CSV or Parquet file into the row schema {id, question, answer?, solution?, source?}",
      )
      .argument("<file>", "source file")
      .requiredOption("--out <file>", "output JSONL"),
  ).action(async (file: string, f: ImportFlags & { out: string }) => {
    const { rows, summary } = await importFile(file, importOpts(f));
    await writeRows(f.out, rows);
    say(
      [
        `records in: ${summary.recordsIn}`,
        `rows out: ${summary.rowsOut} (with answer: ${summary.withAnswer})`,
        ...(summary.answerNotFound ? [`answer not found by extractor: ${summary.answerNotFound}`] : []),
        ...Object.entries(summary.skipped).map(([k, v]) => `skipped (${k}): ${v}`),
        `wrote ${f.out}`,
      ].join("\n"),
    );
  });

  data
    .command("sample")
    .description("draw N rows without replacement (deterministic for a seed; source order kept)")
    .argument("<file>", "dataset JSONL")
    .requiredOption("--n <k>", "rows to draw", parseIntOption("--n", 1))
    .requiredOption("--seed <s>", "random seed", parseSeed)
    .requiredOption("--out <file>", "output JSONL")
    .action(async (file: string, f: { n: number; seed: number; out: string }) => {
      const { rows } = loadRows(file);
      const out = sampleRows(rows, f.n, f.seed);
      await writeRows(f.out, out);
      say(`rows in: ${rows.length}\nsampled: ${out.length}\nwrote ${f.out}`);
    });

  data
    .command("filter")
    .description("keep rows with integer answers, drop long or duplicate questions")
    .argument("<file>", "dataset JSONL")
    .option("--integers-only", "keep rows whose answer is an integer")
    .option("--digits-only", "keep rows whose answer is a non-negative integer (the seed's 'digits only')")
    .option("--require-answer", "drop rows without an answer")
    .option("--max-question-chars <n>", "drop longer questions", parseIntOption("--max-question-chars", 1))
    .option("--dedupe", "drop rows repeating an earlier question")
    .requiredOption("--out <file>", "output JSONL")
    .action(async (file: string, f: Record<string, unknown> & { out: string }) => {
      const { rows } = loadRows(file);
      const r = filterRows(rows, {
        integersOnly: Boolean(f.integersOnly),
        digitsOnly: Boolean(f.digitsOnly),
        requireAnswer: Boolean(f.requireAnswer),
        maxQuestionChars: f.maxQuestionChars as number | undefined,
        dedupe: Boolean(f.dedupe),
      });
      await writeRows(f.out, r.rows);
      say(
        [
          `rows in: ${rows.length}`,
          `kept: ${r.rows.length}`,
          ...droppedLines(r.dropped),
          `wrote ${f.out}`,
        ].join("\n"),
      );
    });

  data
    .command("split")
    .description("shuffle with a seed and cut into train/test (or train/val/test) files")
    .argument("<file>", "dataset JSONL")
    .requiredOption("--split <sizes>", 'sizes like "2000:598", "2000:rest" or "1000:100:rest"')
    .option("--names <list>", "file names of the parts (default train,test or train,val,test)")
    .requiredOption("--seed <s>", "random seed", parseSeed)
    .requiredOption("--out <dir>", "output folder")
    .action(async (file: string, f: { split: string; names?: string; seed: number; out: string }) => {
      const spec = parseSplitSpec(
        f.split,
        f.names?.split(",").map((s) => s.trim()),
      );
      const { rows } = loadRows(file);
      const s = splitRows(rows, spec, f.seed);
      for (const p of s.parts) await writeRows(join(f.out, `${p.name}.jsonl`), p.rows);
      say(
        [
          `rows in: ${rows.length}`,
          ...s.parts.map((p) => `${p.name}: ${p.rows.length}`),
          ...(s.unused ? [`not in any split: ${s.unused}`] : []),
          `wrote ${f.out}`,
        ].join("\n"),
      );
    });

  const stepSummary = (label: string, nIn: number, r: StepResult, llm: LlmClient, out: string) =>
    [
      `rows in: ${nIn}`,
      `${label}: ${r.done}`,
      ...droppedLines(r.dropped),
      `llm: ${llm.stats.requests} requests, ${llm.stats.cacheHits} from cache, ${llm.stats.retries} retries`,
      `wrote ${out}`,
    ].join("\n");

  addLlmOptions(
    data
      .command("translate")
      .description("translate each question with an LLM (original kept in meta.question_original)")
      .argument("<file>", "dataset JSONL")
      .requiredOption("--to <lang>", "target language code, e.g. tr")
      .option("--prompt <file>", "prompt template (default data/prompts/translate.txt)")
      .requiredOption("--out <file>", "output JSONL"),
  ).action(async (file: string, f: LlmFlags & { to: string; prompt?: string; out: string }) => {
    const llm = new LlmClient(llmConfig(f, `${f.out}.llm-cache.jsonl`));
    const prompt = f.prompt ? loadPromptFile(f.prompt) : undefined;
    const { rows } = loadRows(file);
    const r = await translateRows(rows, llm, { language: f.to, prompt, concurrency: f.concurrency }).catch(
      (e) => resumeHint(e, llm.cacheFile),
    );
    await writeRows(f.out, r.rows);
    say(stepSummary("translated", rows.length, r, llm, f.out));
  });

  addLlmOptions(
    data
      .command("extract")
      .description("extract each row's numeric answer from its solution with an LLM")
      .argument("<file>", "dataset JSONL with solutions")
      .option("--prompt <file>", "prompt template (default data/prompts/extract.txt)")
      .requiredOption("--out <file>", "output JSONL"),
  ).action(async (file: string, f: LlmFlags & { prompt?: string; out: string }) => {
    const llm = new LlmClient(llmConfig(f, `${f.out}.llm-cache.jsonl`));
    const prompt = f.prompt ? loadPromptFile(f.prompt) : undefined;
    const { rows } = loadRows(file);
    const r = await extractRows(rows, llm, { prompt, concurrency: f.concurrency }).catch((e) =>
      resumeHint(e, llm.cacheFile),
    );
    await writeRows(f.out, r.rows);
    say(stepSummary("answers extracted", rows.length, r, llm, f.out));
  });

  const build = addImportOptions(
    data
      .command("build")
      .description("the whole pipeline: import, sample, translate, extract answers, keep integers, split")
      .requiredOption("--from <file>", "source file (JSONL, CSV or Parquet)")
      .option("--sample <n>", "rows to sample", parseIntOption("--sample", 1))
      .requiredOption("--seed <s>", "seed for sampling and splitting", parseSeed)
      .option("--translate <lang>", "translate questions into this language")
      .option("--extract-answers", "extract numeric answers from solutions with the LLM")
      .option("--integers-only", "keep rows with integer answers")
      .option("--digits-only", "keep rows with non-negative integer answers")
      .option("--split <sizes>", 'e.g. "2000:598" (writes train.jsonl, test.jsonl)')
      .option("--translate-prompt <file>", "translation prompt template")
      .option("--extract-prompt <file>", "extraction prompt template")
      .requiredOption("--out <dir>", "output folder"),
  );
  // LLM options, but --model only required when an LLM step is asked for.
  addLlmOptions(build, {
    modelRequired: false,
    cacheHelp: "LLM reply cache (default OUT/llm-cache.jsonl)",
  }).action(async (f: ImportFlags & Partial<LlmFlags> & Record<string, any>) => {
    const needLlm = Boolean(f.translate || f.extractAnswers);
    if (needLlm && !f.model)
      throw new UsageError("--model is required with --translate or --extract-answers");
    const cache = f.cache ?? join(f.out, "llm-cache.jsonl");
    try {
      const s = await buildDataset({
        from: f.from,
        out: f.out,
        import: importOpts(f),
        sample: f.sample,
        seed: f.seed,
        translate: f.translate,
        extractAnswers: Boolean(f.extractAnswers),
        integersOnly: Boolean(f.integersOnly),
        digitsOnly: Boolean(f.digitsOnly),
        split: f.split,
        concurrency: f.concurrency,
        translatePrompt: f.translatePrompt ? loadPromptFile(f.translatePrompt) : undefined,
        extractPrompt: f.extractPrompt ? loadPromptFile(f.extractPrompt) : undefined,
        llm: needLlm ? llmConfig(f as LlmFlags, cache) : undefined,
      });
      say(`${formatBuildSummary(s)}\nwrote ${f.out}`);
    } catch (e) {
      resumeHint(e, needLlm ? cache : undefined);
    }
  });

  data
    .command("synth")
    .description("generate short math word problems with integer answers and worked solutions (tr or en)")
    .addOption(new Option("--lang <l>", "language").choices(LANGS as string[]).default("tr"))
    .requiredOption("--n <k>", "number of problems", parseIntOption("--n", 1, 10_000_000))
    .requiredOption("--seed <s>", "random seed", parseSeed)
    .requiredOption("--out <dir>", "output folder (or FILE.jsonl without --split)")
    .option("--split <sizes>", 'cut into parts, e.g. "2000:598" (train.jsonl, test.jsonl)')
    .option("--ops <list>", "allowed operation counts", parseIntList("--ops"), [1, 2, 3])
    .option(
      "--levels <list>",
      "allowed magnitude levels (1: two-digit … 3: four-digit)",
      parseIntList("--levels"),
      [1, 2, 3],
    )
    .option("--templates <list>", "only these templates (comma-separated)")
    .option(
      "--keep-templates <list>",
      "make the set as without this flag, then keep only the rows of these templates (a subset of that set, in every split part)",
    )
    .option("--max-question-chars <n>", "longest question", parseIntOption("--max-question-chars", 20), 120)
    .option("--max-solution-chars <n>", "longest solution", parseIntOption("--max-solution-chars", 20), 120)
    .option("--exclude <file>", "never produce a question of this dataset (repeatable)", collect, [])
    .option("--id-prefix <p>", "id prefix (default synth-LANG-sSEED)")
    .option(
      "--max-number <n>",
      "reject problems with any number above n (in the question or a step)",
      parseIntOption("--max-number", 1),
    )
    .option(
      "--loose-format <p>",
      "share of solutions in a looser layout (no reasoning tags, untagged answer, trailing text) for base-model warm-ups",
      parseFloatOption("--loose-format", 0, 1),
      0,
    )
    .option(
      "--slips <p>",
      "share of solutions whose last result (and answer) is off by 1-3, for base-model warm-ups (the row's answer stays true)",
      parseFloatOption("--slips", 0, 1),
      0,
    )
    .option(
      "--drills <k>",
      'also write k arithmetic-drill rows {"id","text"} (8 worked steps each) mixed into the output, for `ttrl sft`',
      parseIntOption("--drills", 0, 10_000_000),
      0,
    )
    .action(async (f: Record<string, any>) => {
      if (f.drills > 0 && f.split)
        throw new UsageError("--drills makes an SFT warm-up file: use it without --split");
      const exclude = new Set<string>();
      for (const file of f.exclude as string[]) for (const r of loadRows(file).rows) exclude.add(r.question);
      const spec = f.split ? parseSplitSpec(f.split) : null;
      const opts: SynthOptions = {
        lang: parseChoice("--lang", LANGS)(f.lang) as Lang,
        n: f.n,
        seed: f.seed,
        ops: f.ops,
        levels: f.levels,
        templates: f.templates ? String(f.templates).split(",") : undefined,
        maxQuestionChars: f.maxQuestionChars,
        maxSolutionChars: f.maxSolutionChars,
        exclude,
        idPrefix: f.idPrefix,
        looseFormat: f.looseFormat,
        slips: f.slips,
        maxNumber: f.maxNumber,
      };
      const keep = f.keepTemplates ? String(f.keepTemplates).split(",") : null;
      for (const t of keep ?? [])
        if (!TEMPLATE_NAMES.includes(t))
          throw new UsageError(
            `--keep-templates: unknown template "${t}" (known: ${TEMPLATE_NAMES.join(", ")})`,
          );
      const { rows: made, stats } = asFlags(() => synthesize(opts));
      const kept = (rs: DataRow[]) =>
        keep ? rs.filter((r) => keep.includes(String((r.meta as { template?: string }).template))) : rs;
      const rows = spec ? made : kept(made);
      const lines = [`generated: ${rows.length} (attempts ${stats.attempts})`];
      if (f.looseFormat > 0) lines.push(`loose layouts: ${JSON.stringify(stats.byLayout)}`);
      if (f.slips > 0) lines.push(`solutions with a slip: ${stats.slipped}`);
      lines.push(`by operations: ${JSON.stringify(stats.byOps)}, by level: ${JSON.stringify(stats.byLevel)}`);
      if (exclude.size)
        lines.push(
          `excluded questions: ${exclude.size} (rejected as excluded: ${stats.rejected.excluded ?? 0})`,
        );
      if (spec) {
        const s = splitRows(rows, spec, f.seed);
        for (const p of s.parts) {
          const part = kept(p.rows);
          await writeRows(join(f.out, `${p.name}.jsonl`), part);
          lines.push(`${p.name}: ${part.length}${keep ? ` (of ${p.rows.length})` : ""}`);
        }
        if (s.unused) lines.push(`not in any split: ${s.unused}`);
      } else {
        const file = String(f.out).endsWith(".jsonl") ? f.out : join(f.out, "data.jsonl");
        if (f.drills > 0) {
          const drills = asFlags(() => synthesizeDrills(opts, f.drills));
          // Problems and drills interleaved in a seeded order (the SFT data order is shuffled again).
          const all: string[] = [...rows.map((r) => rowToJson(r)), ...drills.map((d) => JSON.stringify(d))];
          new Rng(f.seed).fork("synth/mix").shuffle(all);
          await writeFileAtomic(file, all.map((l) => `${l}\n`).join(""));
          lines.push(`drill rows: ${drills.length}`);
        } else await writeRows(file, rows);
        lines.push(`wrote ${file}`);
      }
      say(lines.join("\n"));
    });
}
