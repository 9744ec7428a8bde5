import { type Command, InvalidArgumentError } from "commander";
import { parseSize, runMerge } from "../../merge/index.ts";
import { parseIntOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("merge")
    .description(
      "Merge models with a mergekit YAML config (slerp, linear, task_arithmetic, ties, dare_ties, dare_linear), streaming tensor by tensor",
    )
    .argument(
      "<config>",
      "mergekit YAML config (slices or models, merge_method, base_model, parameters, dtype)",
    )
    .requiredOption("--out <dir>", "output model folder (written to a temp folder, then renamed into place)")
    .option("--overwrite", "replace --out if it exists", false)
    .option(
      "--out-shard-size <size>",
      "shard limit per output safetensors file: bytes, or with a unit (5GB, 500MB, 2GiB; 5B = 5 billion, as mergekit)",
      (v: string) => {
        try {
          return parseSize(v);
        } catch (e) {
          throw new InvalidArgumentError((e as Error).message);
        }
      },
      5e9,
    )
    .option("--copy-tokenizer", "copy the base model's tokenizer files (default)", true)
    .option("--no-copy-tokenizer", "do not copy tokenizer files")
    .option("--random-seed <n>", "seed for DARE's random masks", parseIntOption("--random-seed", 0), 0)
    .option(
      "--threads <n>",
      "compute threads, the main one included (default: cores, at most 4)",
      parseIntOption("--threads", 1, 64),
    )
    .addHelpText(
      "after",
      `
Example (the seed's config):
  slices:
    - sources:
        - model: runs/a/final
          layer_range: [0, 32]
        - model: runs/b/final
          layer_range: [0, 32]
  merge_method: slerp
  base_model: runs/a/final
  parameters:
    t:
      - filter: self_attn
        value: [0, 0.5, 0.3, 0.7, 1]
      - filter: mlp
        value: [1, 0.5, 0.7, 0.3, 0]
      - value: 0.5
  dtype: bfloat16

Model paths are local folders (relative to the current directory), each with config.json and
model.safetensors or a sharded model.safetensors.index.json.`,
    )
    .action(
      async (
        config: string,
        opts: {
          out: string;
          overwrite: boolean;
          outShardSize: number;
          copyTokenizer: boolean;
          randomSeed: number;
        },
      ) => {
        const s = await runMerge(config, {
          out: opts.out,
          overwrite: opts.overwrite,
          outShardSize: opts.outShardSize,
          copyTokenizer: opts.copyTokenizer,
          randomSeed: opts.randomSeed,
        });
        const gb = (b: number) => (b / 1e9).toFixed(b < 1e8 ? 4 : 2);
        process.stderr.write(
          `merged ${s.tensors} tensors: read ${gb(s.bytesRead)} GB, wrote ${gb(s.bytesWritten)} GB in ${s.files.length} file(s), ${s.seconds.toFixed(1)} s (${gb(s.bytesRead / Math.max(s.seconds, 1e-3))} GB/s read) → ${s.out}\n`,
        );
      },
    );
}
