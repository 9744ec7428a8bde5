import { type Command, Option } from "commander";
import { parseIntOption } from "../options.ts";

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
    .addHelpText(
      "after",
      "\nExample:\n  ttrl init-model --preset tiny --tokenizer char-tr --out models/tiny\n",
    )
    .action(async (o) => {
      const { writePresetModel } = await import("../../model/presets.ts");
      const { paramCount } = await import("../../model/index.ts");
      const model = await writePresetModel(o.preset, o.out, { seed: o.seed, dtype: o.dtype });
      const c = model.config;
      process.stderr.write(
        `wrote ${o.out}: ${c.architecture} preset=${o.preset} params=${paramCount(c)} layers=${c.numLayers} d=${c.hiddenSize} vocab=${c.vocabSize} dtype=${o.dtype}\n`,
      );
    });
}
