import { type Command, Option } from "commander";
import { UsageError } from "../../util/errors.ts";
import { computeDtypeOption, deviceOption, parseFloatOption, parseIntOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("generate")
    .description("Sample a completion of a prompt from a local model")
    .requiredOption("--model <dir>", "model folder (HF layout)")
    .requiredOption("--prompt <text>", "prompt text")
    .option("--chat", "wrap the prompt as a user message with the tokenizer's chat template")
    .option("--greedy", "greedy decoding (argmax)")
    .option("--max-new-tokens <n>", "most new tokens", parseIntOption("--max-new-tokens", 1, 1_000_000), 128)
    .option("--temperature <t>", "sampling temperature", parseFloatOption("--temperature", 0, 100), 1)
    .option("--top-p <p>", "nucleus sampling threshold", parseFloatOption("--top-p", 0, 1), 1)
    .option("--top-k <k>", "sample among the k most likely tokens (0: off)", parseIntOption("--top-k", 0), 0)
    .option("--seed <n>", "sampling seed", parseIntOption("--seed", 0, 2 ** 31 - 1), 0)
    .option("--num <n>", "number of samples (seeds seed, seed+1, …)", parseIntOption("--num", 1, 4096), 1)
    .option("--stop <s...>", "stop strings (the completion ends with the first one found)")
    .option(
      "--threads <n>",
      "engine threads (default: TTRL_THREADS or the CPU count)",
      parseIntOption("--threads", 1, 256),
    )
    .addOption(
      new Option("--json", "print one JSON object per sample (tokens, text, logprobs, finish_reason)"),
    )
    .addHelpText(
      "after",
      '\nExample:\n  ttrl generate --model models/tiny --prompt "Soru: 2 + 3 kaç eder?\\n" --greedy --max-new-tokens 32\n',
    )
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(async (o) => {
      if (o.prompt === "") throw new UsageError("--prompt must not be empty");
      const { initRuntime } = await import("../../runtime/jax.ts");
      await initRuntime({ threads: o.threads });
      const { loadModel, generate } = await import("../../model/index.ts");
      const model = await loadModel(o.model);
      const text = o.chat
        ? model.tokenizer.applyChatTemplate([{ role: "user", content: o.prompt }], {
            addGenerationPrompt: true,
          })
        : o.prompt;
      const ids = model.tokenizer.encode(text, { addSpecialTokens: !o.chat });
      const t0 = performance.now();
      const gens = await generate(
        model,
        Array.from({ length: o.num }, () => ids),
        {
          maxNewTokens: o.maxNewTokens,
          greedy: Boolean(o.greedy),
          temperature: o.temperature,
          topP: o.topP,
          topK: o.topK,
          seeds: Array.from({ length: o.num }, (_, i) => o.seed + i),
          stop: o.stop,
        },
      );
      const secs = (performance.now() - t0) / 1000;
      let ntok = 0;
      for (const g of gens) {
        ntok += g.tokens.length;
        if (o.json)
          process.stdout.write(
            `${JSON.stringify({ text: g.text, tokens: g.tokens, logprobs: g.logprobs, finish_reason: g.finishReason })}\n`,
          );
        else process.stdout.write(`${g.text}\n`);
      }
      process.stderr.write(
        `${gens.length} sample(s), ${ntok} tokens in ${secs.toFixed(2)} s (${(ntok / secs).toFixed(1)} tok/s), prompt ${ids.length} tokens\n`,
      );
    });
}
