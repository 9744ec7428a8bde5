import { statSync } from "node:fs";
import { type Command, InvalidArgumentError } from "commander";
import { createGrader, type Extractor, type Locale, resolveFormat } from "../../answers/index.ts";
import { writeJsonAtomic } from "../../io/atomic.ts";
import { JsonlWriter, readJsonl, unknownKeyError } from "../../io/jsonl.ts";
import { MetricsAccumulator, type MetricsJson, type ModeMetrics, rowError } from "../../metrics/index.ts";
import { InputError, TtrlError } from "../../util/errors.ts";
import { createProgress } from "../../util/progress.ts";
import { checkOutputFile, parseChoice, parseExtractor, parseIntList, parseIntOption } from "../options.ts";

/** The keys of a `ttrl grade` input row; anything else (a typo like "lable") is an error. */
export const GRADE_ROW_KEYS = ["id", "label", "completions"] as const;

export function parseFormat(value: string): string {
  try {
    resolveFormat(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return value;
}

interface GradeCliOptions {
  input: string;
  format: string;
  extract: Extractor;
  locale: Locale;
  k?: number[];
  out?: string;
  details?: string;
  skipInvalid?: boolean;
  seed: number;
}

function fmt(x: number | null | undefined): string {
  return x === null || x === undefined ? "–" : x.toFixed(3);
}

function modeLine(name: string, m: ModeMetrics, ks: number[]): string {
  const kMax = String(ks[ks.length - 1]);
  const ci = m.ci95.accuracy;
  return (
    `  ${name.padEnd(8)} valid ${fmt(m.valid_ratio)}  accuracy ${fmt(m.accuracy)}` +
    (ci ? ` [${fmt(ci[0])}, ${fmt(ci[1])}]` : "") +
    `  pass@${kMax} ${fmt(m["pass@k"][kMax])}  cons@${kMax} ${fmt(m["cons@k"][kMax])}`
  );
}

/** Grade a JSONL file of completions in one streaming pass; returns the metrics object. */
export async function runGrade(o: GradeCliOptions): Promise<MetricsJson> {
  createGrader({ format: o.format, extract: o.extract, locale: o.locale }); // usage errors before reading
  if (o.out) checkOutputFile(o.out, "--out");
  if (o.details) checkOutputFile(o.details, "--details");
  let size = 0;
  try {
    const st = statSync(o.input);
    if (st.isDirectory()) throw new InputError(o.input, undefined, "is a folder, expected a file");
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(o.input, undefined, "file not found");
  }
  const started = Date.now();
  let skipped = 0;
  const progress = createProgress({ label: "grade", total: Math.max(1, size), unit: "B", fields: ["rows"] });
  const details = o.details ? new JsonlWriter(o.details) : null;
  let acc: MetricsAccumulator | null = null;
  let bytes = 0;
  try {
    for await (const { line, value } of readJsonl<Record<string, unknown>>(o.input, {
      skipInvalid: o.skipInvalid,
      onSkip: () => {
        skipped++;
      },
    })) {
      const err = rowError(value) ?? unknownKeyError(value as Record<string, unknown>, GRADE_ROW_KEYS);
      if (err) {
        if (o.skipInvalid) {
          skipped++;
          continue;
        }
        throw new InputError(o.input, line, err);
      }
      const row = value as { id: string; label?: string | number | null; completions: string[] };
      if (!acc) {
        let ks = o.k;
        if (!ks) {
          ks = [];
          for (let k = 1; k <= row.completions.length; k *= 2) ks.push(k);
        }
        acc = new MetricsAccumulator({
          format: o.format,
          extract: o.extract,
          locale: o.locale,
          ks,
          seed: o.seed,
        });
      }
      let added: ReturnType<MetricsAccumulator["add"]>;
      try {
        added = acc.add(row);
      } catch (e) {
        if (e instanceof TtrlError)
          throw new InputError(
            o.input,
            line,
            `${e.message}${/fewer than k/.test(e.message) ? " (choose smaller --k values)" : ""}`,
          );
        throw e;
      }
      if (details)
        await details.write({
          id: added.id,
          label: added.label,
          completions: added.graded.map((g) => ({ strict: g.strict, flexible: g.flexible })),
        });
      for (const c of row.completions) bytes += c.length + 8;
      progress.update(Math.min(bytes, size), { rows: acc.nQuestions });
    }
    acc ??= new MetricsAccumulator({
      format: o.format,
      extract: o.extract,
      locale: o.locale,
      ks: o.k ?? [1],
      seed: o.seed,
    });
    const metrics: MetricsJson = acc.finish();
    if (o.skipInvalid) metrics.skipped_lines = skipped;
    if (details) await details.commit();
    if (o.out) await writeJsonAtomic(o.out, metrics);
    progress.update(size);
    progress.stop();
    const secs = (Date.now() - started) / 1000;
    const lines = [
      `graded ${metrics.n_questions} questions, ${metrics.n_completions} completions (${metrics.n_labelled} labelled) in ${secs.toFixed(1)} s` +
        (o.skipInvalid ? `; skipped ${skipped} malformed line(s)` : ""),
      modeLine("strict", metrics.strict, metrics.ks),
      modeLine("flexible", metrics.flexible, metrics.ks),
    ];
    if (o.out) lines.push(`wrote ${o.out}${o.details ? ` and ${o.details}` : ""}`);
    else if (o.details) lines.push(`wrote ${o.details}`);
    process.stderr.write(`${lines.join("\n")}\n`);
    if (!o.out) process.stdout.write(`${JSON.stringify(metrics, null, 2)}\n`);
    return metrics;
  } catch (e) {
    progress.stop();
    if (details) await details.abort();
    throw e;
  }
}

export function register(program: Command): void {
  program
    .command("grade")
    .description(
      "Grade completions (strict and flexible extraction, locale-correct numbers) and compute valid ratio, accuracy, pass@k and cons@k; streams the input in constant memory",
    )
    .requiredOption(
      "--input <file>",
      'JSONL rows {"id", "label"?, "completions": [...]} (any other key is an error naming its line)',
    )
    .option(
      "--format <name>",
      "answer format: mantik-cevap, reasoning-answer, or REASONING/ANSWER tag names (e.g. think/answer)",
      parseFormat,
      "mantik-cevap",
    )
    .option(
      "--extract <how>",
      "answer extraction: tags, gsm8k, last-number or regex:<pattern>",
      parseExtractor("--extract", ["tags", "gsm8k", "last-number"]),
      "tags",
    )
    .option(
      "--locale <locale>",
      "number locale",
      parseChoice("--locale", ["tr-TR", "en-US"] as const),
      "tr-TR",
    )
    .option(
      "--k <list>",
      "k values for pass@k and cons@k (default: powers of two up to n)",
      parseIntList("--k"),
    )
    .option("--out <file>", "write metrics.json here (default: print it on stdout)")
    .option("--details <file>", "write one JSONL line per input row with every completion's grading")
    .option("--skip-invalid", "skip (and count) malformed lines instead of failing")
    .option(
      "--seed <n>",
      "seed for bootstrap CIs and cons@k subset sampling",
      parseIntOption("--seed", 0, 2 ** 31 - 1),
      0,
    )
    .addHelpText(
      "after",
      "\nExamples:\n  ttrl grade --input data/samples/grade-demo.jsonl --k 1,2,4\n  ttrl grade --input runs/eval/generations.jsonl --out metrics.json --details details.jsonl\n  ttrl grade --input gsm8k-gens.jsonl --extract last-number --locale en-US --k 1,8\n",
    )
    .action(async (o: GradeCliOptions) => {
      await runGrade(o);
    });
}
