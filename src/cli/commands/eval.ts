import { type Command, Option } from "commander";
import { TEMPLATES } from "../../prompts/index.ts";
import { UsageError } from "../../util/errors.ts";
import {
  checkOutputFolder,
  computeDtypeOption,
  deviceOption,
  parseChoice,
  parseFloatOption,
  parseIntList,
  parseIntOption,
} from "../options.ts";

export function register(program: Command): void {
  program
    .command("eval")
    .description(
      "Sample k completions per test question from a local model or an OpenAI-compatible server, grade them, and write generations.jsonl, metrics.json, details.jsonl and eval_config.json",
    )
    .option("--model <dir>", "local model folder (HF layout)")
    .option("--endpoint <url>", "OpenAI-compatible server base URL, e.g. http://127.0.0.1:8000/v1")
    .option("--model-name <name>", "model name (required with --endpoint; default: the model folder's name)")
    .requiredOption("--data <file>", "test questions (JSONL rows with id, question, answer?)")
    .requiredOption(
      "--out <dir>",
      "output folder (re-running into it resumes from its cache, which is keyed by the weights' content, or the endpoint URL and model name)",
    )
    .option("--k <n>", "samples per question", parseIntOption("--k", 1, 1024), 8)
    .option(
      "--ks <list>",
      "k values for pass@k / cons@k (default: powers of two up to k)",
      parseIntList("--ks"),
    )
    .option("--temperature <t>", "sampling temperature", parseFloatOption("--temperature", 0, 2), 1)
    .option("--top-p <p>", "nucleus sampling threshold", parseFloatOption("--top-p", 0, 1), 1)
    .option(
      "--max-tokens <n>",
      "most new tokens per completion",
      parseIntOption("--max-tokens", 1, 1_000_000),
      256,
    )
    .option(
      "--seed <n>",
      "seed (sample j of question id uses a seed derived from seed, id and j)",
      parseIntOption("--seed", 0, 2 ** 31 - 1),
      0,
    )
    .option(
      "--template <name>",
      `prompt template: ${Object.keys(TEMPLATES).join(", ")}`,
      parseChoice("--template", Object.keys(TEMPLATES)),
      "plain-tr",
    )
    .option("--stop <s...>", "stop strings (default: the format's closing answer tag)")
    .option("--greedy", "also run one greedy completion per question (written to greedy/)")
    .addOption(
      new Option("--format <name>", "answer format")
        .choices(["mantik-cevap", "reasoning-answer"])
        .default("mantik-cevap"),
    )
    .option(
      "--locale <locale>",
      "number locale",
      parseChoice("--locale", ["tr-TR", "en-US"] as const),
      "tr-TR",
    )
    .option("--limit <n>", "only the first n questions", parseIntOption("--limit", 1))
    .option(
      "--batch-size <n>",
      "local backend: sequences per generate call",
      parseIntOption("--batch-size", 1, 4096),
      16,
    )
    .option(
      "--concurrency <n>",
      "HTTP backend: requests in flight",
      parseIntOption("--concurrency", 1, 1024),
      8,
    )
    .option(
      "--retries <n>",
      "HTTP backend: retries per request for 429/5xx, dropped connections and cut-off, non-JSON or empty replies (exponential backoff)",
      parseIntOption("--retries", 0, 20),
      4,
    )
    .option("--timeout <s>", "HTTP backend: seconds per request", parseIntOption("--timeout", 1), 600)
    .option("--threads <n>", "local backend: engine threads", parseIntOption("--threads", 1, 256))
    .addHelpText(
      "after",
      "\nExamples:\n  ttrl eval --model models/tr-math-base --data data/tr-math/test.jsonl --k 8 --out runs/eval-base\n  ttrl eval --endpoint http://127.0.0.1:8000/v1 --model-name tr-math-base --data data/tr-math/test.jsonl --out runs/eval-http\n",
    )
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(async (o) => {
      if (Boolean(o.model) === Boolean(o.endpoint))
        throw new UsageError("give exactly one of --model DIR or --endpoint URL");
      if (o.endpoint && !o.modelName) throw new UsageError("--endpoint needs --model-name NAME");
      if (o.endpoint && !/^https?:\/\//.test(o.endpoint))
        throw new UsageError(`--endpoint must be an http(s) URL, got "${o.endpoint}"`);
      const tooBig = (o.ks ?? []).filter((x: number) => x > o.k);
      if (tooBig.length)
        throw new UsageError(
          `--ks ${tooBig.join(",")} exceeds --k ${o.k}: pass@k and cons@k need at least k samples per question (raise --k or drop those values)`,
        );
      checkOutputFolder(o.out, "--out");
      const { runEval, loadQuestions } = await import("../../eval/index.ts");
      await loadQuestions(o.data, o.limit); // bad data fails before a model loads

      const { formatEvalSummary } = await import("../../eval/summary.ts");
      const backends = await import("../../eval/backends.ts");
      let backend: import("../../eval/backends.ts").Backend;
      let modelName: string;
      if (o.model) {
        const { loadEngine } = await import("../../eval/engine.ts");
        const engine = await loadEngine(o.model, { name: o.modelName, threads: o.threads });
        backend = backends.localBackend(engine, { batchSize: o.batchSize });
        modelName = engine.name;
      } else {
        backend = backends.httpBackend({
          endpoint: o.endpoint,
          modelName: o.modelName,
          concurrency: o.concurrency,
          retries: o.retries,
          timeoutMs: o.timeout * 1000,
        });
        modelName = o.modelName;
      }
      const r = await runEval({
        backend,
        modelName,
        model: o.model ?? o.endpoint,
        data: o.data,
        out: o.out,
        k: o.k,
        ks: o.ks,
        temperature: o.temperature,
        topP: o.topP,
        maxTokens: o.maxTokens,
        seed: o.seed,
        template: o.template,
        stop: o.stop,
        greedy: o.greedy,
        format: o.format,
        locale: o.locale,
        limit: o.limit,
      });
      await backend.close();
      process.stdout.write(formatEvalSummary(r));
    });
}
