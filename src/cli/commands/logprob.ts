import type { Command } from "commander";
import { readJsonl, writeJsonl } from "../../io/jsonl.ts";
import { InputError } from "../../util/errors.ts";
import { createProgress } from "../../util/progress.ts";
import { checkOutputFile, computeDtypeOption, deviceOption, parseIntOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("logprob")
    .description(
      "Score token sequences: for each input row write token_logprobs, entry i = log p(token i+1 | tokens ≤ i)",
    )
    .requiredOption("--model <dir>", "model folder (HF layout)")
    .requiredOption("--input <file>", 'JSONL rows {"id", "input_ids": int[]} or {"id", "text"}')
    .requiredOption("--out <file>", 'output JSONL rows {"id", "token_logprobs": number[]}')
    .option("--batch-size <n>", "sequences per forward pass", parseIntOption("--batch-size", 1, 4096), 16)
    .option("--threads <n>", "engine threads", parseIntOption("--threads", 1, 256))
    .addHelpText(
      "after",
      "\nExample:\n  ttrl logprob --model models/tiny --input seqs.jsonl --out logprobs.jsonl\n",
    )
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(async (o) => {
      checkOutputFile(o.out, "--out");
      // The input is read (and its shape checked) before the model loads: bad data fails in a moment.
      const rows: { line: number; row: Record<string, unknown> }[] = [];
      for await (const { line, value } of readJsonl<Record<string, unknown>>(o.input)) {
        if (typeof value !== "object" || value === null || Array.isArray(value))
          throw new InputError(o.input, line, "expected a JSON object");
        const row = value as Record<string, unknown>;
        if (!Array.isArray(row.input_ids) && typeof row.text !== "string")
          throw new InputError(o.input, line, 'row needs "input_ids" (int[]) or "text" (string)');
        rows.push({ line, row });
      }
      const { initRuntime } = await import("../../runtime/jax.ts");
      await initRuntime({ threads: o.threads });
      const { loadModel, scoreSequences } = await import("../../model/index.ts");
      const model = await loadModel(o.model);
      const ids: unknown[] = [];
      const seqs: number[][] = [];
      for (const { line, row } of rows) {
        let seq: number[];
        if (Array.isArray(row.input_ids)) {
          seq = row.input_ids as number[];
          if (!seq.every((t) => Number.isInteger(t) && t >= 0 && t < model.config.vocabSize))
            throw new InputError(
              o.input,
              line,
              `input_ids must be integers in [0, ${model.config.vocabSize})`,
            );
        } else if (typeof row.text === "string") seq = model.tokenizer.encode(row.text);
        else throw new InputError(o.input, line, 'row needs "input_ids" (int[]) or "text" (string)');
        if (seq.length > model.config.maxPositionEmbeddings)
          throw new InputError(
            o.input,
            line,
            `${seq.length} tokens, more than the model's context (${model.config.maxPositionEmbeddings})`,
          );
        ids.push(row.id ?? line);
        seqs.push(seq);
      }
      const bar = createProgress({ label: "logprob", total: seqs.length, unit: "seq" });
      const out: number[][] = [];
      for (let i = 0; i < seqs.length; i += o.batchSize * 4) {
        const part = await scoreSequences(model, seqs.slice(i, i + o.batchSize * 4), {
          batchSize: o.batchSize,
        });
        out.push(...part);
        bar.tick(part.length);
      }
      bar.stop();
      await writeJsonl(
        o.out,
        out.map((lp, i) => ({ id: ids[i], token_logprobs: lp })),
      );
      process.stderr.write(
        `scored ${seqs.length} sequence(s), ${out.reduce((s, x) => s + x.length, 0)} tokens → ${o.out}\n`,
      );
    });
}
