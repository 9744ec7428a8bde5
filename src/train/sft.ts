/**
 * Supervised fine-tuning (`ttrl sft`): rows {question, solution} become renderPrompt(question) + solution +
 * EOS with the prompt tokens masked out of the loss; rows {text} train on every token. The loss is the
 * mean token negative log-likelihood over each optimizer step's batch (micro-batched, gradients
 * accumulated). Data order is a seeded shuffle per epoch; checkpoints hold optimizer state and the data
 * position, so a killed run resumes to the same weights as an uninterrupted one.
 */
import { join } from "node:path";
import { renderPrompt } from "../prompts/index.ts";
import { type Array as JArray, jit, numpy as np, tree, valueAndGrad } from "../runtime/jax.ts";
import { TtrlError, UsageError } from "../util/errors.ts";
import { createProgress } from "../util/progress.ts";
import {
  bucketLength,
  chunkRows,
  fitMicroBatch,
  type PackedBatch,
  packSequences,
  type SeqSpec,
} from "./batch.ts";
import { DataOrder } from "./data.ts";
import { appendJsonl, TRAIN_LOG } from "./log.ts";
import { adamwFromSettings, GradAccumulator, type Params, type SchedulerType } from "./optim.ts";
import type { Policy } from "./policy.ts";
import { finishRun, maybeCheckpoint, openRun } from "./state.ts";
import { applyUpdate, idsArrays } from "./update.ts";

export interface SftConfig {
  model: string;
  data: string;
  seed: number;
  prompt_template: string;
  /** Rows per optimizer step. */
  batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  lr_scheduler_type: SchedulerType;
  warmup_ratio: number;
  /** Warmup steps; overrides warmup_ratio when > 0 (as in transformers). */
  warmup_steps: number;
  max_grad_norm: number;
  num_train_epochs: number;
  max_steps: number;
  /** Longest prompt + solution in tokens (0: the model's context). Longer rows are an error. */
  max_length: number;
  save_steps: number;
  save_total_limit: number;
  save_dtype: "F32" | "BF16" | "F16";
}

export const SFT_DEFAULTS: SftConfig = {
  model: "",
  data: "",
  seed: 42,
  prompt_template: "plain-tr",
  batch_size: 16,
  gradient_accumulation_steps: 1,
  learning_rate: 5e-4,
  weight_decay: 0.0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  lr_scheduler_type: "cosine",
  warmup_ratio: 0.05,
  warmup_steps: 0,
  max_grad_norm: 1.0,
  num_train_epochs: 1,
  max_steps: -1,
  max_length: 0,
  save_steps: 100,
  save_total_limit: 2,
  save_dtype: "F32",
};

export interface SftRow {
  line: number;
  question?: string;
  solution?: string;
  text?: string;
}

export function sftExamples(rows: SftRow[], policy: Policy, c: SftConfig, file: string): SeqSpec[] {
  if (rows.length === 0) throw new TtrlError(`${file}: no training rows`);
  const tok = policy.tokenizer;
  const eos = tok.eosTokenIds[0];
  if (eos === undefined) throw new TtrlError("the model's tokenizer has no EOS token");
  const maxLen = c.max_length > 0 ? Math.min(c.max_length, policy.maxContext) : policy.maxContext;
  return rows.map((r) => {
    let spec: SeqSpec;
    if (typeof r.question === "string" && typeof r.solution === "string") {
      const prompt = tok.encode(renderPrompt(r.question, c.prompt_template, tok as never), {
        addSpecialTokens: true,
      });
      spec = { prompt, completion: [...tok.encode(r.solution, { addSpecialTokens: false }), eos] };
    } else if (typeof r.text === "string") {
      const ids = tok.encode(r.text, { addSpecialTokens: true });
      spec = { prompt: ids.slice(0, 1), completion: [...ids.slice(1), eos] };
    } else {
      throw new TtrlError(`${file}:${r.line}: expected {"question","solution"} or {"text"} (strings)`);
    }
    const n = spec.prompt.length + spec.completion.length;
    if (n > maxLen)
      throw new TtrlError(`${file}:${r.line}: example has ${n} tokens, more than the limit of ${maxLen}`);
    return spec;
  });
}

export interface SftRunOptions {
  policy: Policy;
  rows: SftRow[];
  config: SftConfig;
  outDir: string;
  dataFile?: string;
  resume?: boolean;
  /** Start over in a used run folder (deleting what it holds). */
  overwrite?: boolean;
  stopAfter?: number;
  onStep?: (log: Record<string, unknown>) => void;
}

/** Settings a resume may change: they do not change the weights. */
export const SFT_RESUME_MAY_CHANGE = ["save_steps", "save_total_limit", "save_dtype"];

export async function trainSft(
  o: SftRunOptions,
): Promise<{ params: Params; steps: number; log: Record<string, unknown>[] }> {
  const c = o.config;
  if (c.batch_size % c.gradient_accumulation_steps !== 0)
    throw new UsageError(
      `batch_size (${c.batch_size}) must be divisible by gradient_accumulation_steps (${c.gradient_accumulation_steps})`,
    );
  const examples = sftExamples(o.rows, o.policy, c, o.dataFile ?? c.data);
  const policy = o.policy;
  const n = examples.length;
  const steps =
    c.max_steps > 0 ? c.max_steps : Math.max(1, Math.ceil((c.num_train_epochs * n) / c.batch_size));
  const order = new DataOrder(n, c.seed, true);
  const opt = adamwFromSettings(policy.params, c);
  const run = { outDir: o.outDir, policy, opt };
  let { params, start } = await openRun(
    {
      outDir: o.outDir,
      config: c,
      totalSteps: steps,
      resume: o.resume,
      overwrite: o.overwrite,
      resumeMayChange: SFT_RESUME_MAY_CHANGE,
      logs: [TRAIN_LOG],
    },
    policy,
    policy.params,
    opt,
  );
  const lossGrad = jit(
    valueAndGrad((p: Params, ids: JArray, targets: JArray, mask: JArray, scale: JArray) => {
      const lp = policy.logprobs(p, ids, targets);
      return np.sum(lp.mul(mask)).mul(scale).mul(-1);
    }),
  );
  const progress = createProgress({ label: "sft", total: steps, unit: "step", fields: ["loss", "lr"] });
  progress.update(start);
  const log: Record<string, unknown>[] = [];
  try {
    for (let step = start; step < steps; step++) {
      const t0 = performance.now();
      const packed = sftMicroBatches(
        order.step(step, c.batch_size).map((i) => examples[i]),
        c,
        policy,
      );
      const tokens = packed.reduce((a, p) => a + p.lengths.reduce((x, y) => x + y, 0), 0);
      const acc = new GradAccumulator();
      let lossSum = 0;
      for (const pb of packed) {
        const [l, g] = lossGrad(
          tree.ref(params),
          ...idsArrays(pb),
          np.array(pb.mask).reshape([pb.B, pb.T]),
          np.array(1 / Math.max(1, tokens)),
        ) as unknown as [JArray, Params];
        lossSum += (await l.data())[0];
        await acc.add(g);
      }
      const u = await applyUpdate(opt, params, acc.take(), lossSum, c, {
        step,
        totalOptSteps: steps,
        outDir: o.outDir,
      });
      params = u.params;
      const wall = (performance.now() - t0) / 1000;
      const entry = {
        step: step + 1,
        epoch: ((step + 1) * c.batch_size) / n,
        lr: u.lr,
        loss: lossSum,
        grad_norm: u.gradNorm,
        tokens,
        tokens_per_s: packed.reduce((a, p) => a + p.B * p.T, 0) / wall,
      };
      appendJsonl(join(o.outDir, TRAIN_LOG), [entry]);
      log.push(entry);
      o.onStep?.(entry);
      progress.update(step + 1, { loss: lossSum, lr: u.lr });
      const state = { step: step + 1, optimizerStep: opt.t, dataPosition: (step + 1) * c.batch_size };
      await maybeCheckpoint(run, params, { ...state, epoch: entry.epoch, seed: c.seed }, c, steps);
      if (o.stopAfter !== undefined && step + 1 - start >= o.stopAfter)
        return { params, steps: step + 1, log };
    }
  } finally {
    progress.stop();
    lossGrad.dispose();
    opt.dispose();
  }
  await finishRun(o.outDir, policy, params, c.save_dtype);
  return { params, steps, log };
}

/** One SFT step's rows as micro-batches of batch_size / gradient_accumulation_steps rows (fewer if memory needs). */
function sftMicroBatches(batch: SeqSpec[], c: SftConfig, policy: Policy): PackedBatch[] {
  const stepT = bucketLength(Math.max(...batch.map((s) => s.prompt.length + s.completion.length)) - 1);
  const rows = fitMicroBatch(c.batch_size / c.gradient_accumulation_steps, stepT, policy);
  return chunkRows(batch, rows).map((ch) =>
    packSequences(
      ch,
      rows,
      bucketLength(Math.max(...ch.map((s) => s.prompt.length + s.completion.length)) - 1),
      policy.tokenizer.padTokenId,
    ),
  );
}
