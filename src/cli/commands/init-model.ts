import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { TtrlError, UsageError } from "../../util/errors.ts";
import { parseIntOption } from "../options.ts";

/** Files of a model folder that init-model writes or that would be stale next to a new random model. */
const MODEL_FILE =
  /^(config\.json|generation_config\.json|tokenizer(_config)?\.json|special_tokens_map\.json|chat_template\.jinja|model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json)$/;

/**
 * `--out` must be a new or empty folder, or `--overwrite` given (then the old model's files are removed
 * first; other files are kept). A file, or a path under a file, is a clear error.
 */
export function prepareInitTarget(out: string, overwrite: boolean): void {
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") throw new TtrlError(`${out}: a parent of --out is a file, not a folder`);
    throw new TtrlError(`${out}: cannot use as --out (${code ?? (e as Error).message})`);
  }
  if (!st.isDirectory())
    throw new UsageError(
      `${out}: exists and is a file, not a folder (--out names the model folder to write)`,
    );
  const names = readdirSync(out);
  if (names.length === 0) return;
  if (!overwrite) {
    const model = names.filter((n) => MODEL_FILE.test(n));
    const what = model.length
      ? `holds a model (${model.slice(0, 3).join(", ")}${model.length > 3 ? ", …" : ""})`
      : `is not empty (${names.length} entries)`;
    throw new UsageError(`${out}: already exists and ${what}; use --overwrite to replace the model in it`);
  }
  for (const n of names) if (MODEL_FILE.test(n)) rmSync(join(out, n), { force: true });
}

export function register(program: Command): void {
  program
    .command("init-model")
    .description("Write a randomly initialised LLaMA model (HF layout) with the char-tr character tokenizer")
    .addOption(
      new Option("--preset <name>", "model size: tiny (~0.3M params), small (~4.4M), medium (~29M)")
        .choices(["tiny", "small", "medium"])
        .default("tiny"),
    )
    .addOption(new Option("--tokenizer <name>", "tokenizer").choices(["char-tr"]).default("char-tr"))
    .requiredOption("--out <dir>", "output model folder")
    .option("--seed <n>", "initialisation seed", parseIntOption("--seed", 0, 2 ** 31 - 1), 0)
    .addOption(new Option("--dtype <dtype>", "weights dtype").choices(["F32", "F16", "BF16"]).default("F32"))
    .option("--overwrite", "replace the model files of an existing, non-empty --out folder", false)
    .addHelpText(
      "after",
      "\nExample:\n  ttrl init-model --preset tiny --tokenizer char-tr --out models/tiny\n",
    )
    .action(async (o) => {
      prepareInitTarget(o.out, o.overwrite);
      const { writePresetModel } = await import("../../model/presets.ts");
      const { paramCount } = await import("../../model/index.ts");
      const model = await writePresetModel(o.preset, o.out, { seed: o.seed, dtype: o.dtype });
      const c = model.config;
      process.stderr.write(
        `wrote ${o.out}: ${c.architecture} preset=${o.preset} params=${paramCount(c)} layers=${c.numLayers} d=${c.hiddenSize} vocab=${c.vocabSize} dtype=${o.dtype}\n`,
      );
    });
}
