/**
 * The trainers' `Policy` over the model engine (src/model). One `Model` object is kept for the whole run
 * (the engine caches its compiled sampler per model object); its `params` field is pointed at the
 * trainer's current weights before each sampling call.
 */

import { Checkpoint } from "../io/safetensors.ts";
import { type PrefixArrays, prefixArrays, prefixLogprobs } from "../model/forward.ts";
import { expectedParams, forwardLogits, generate, loadModel, type Model, saveModel } from "../model/index.ts";
import { type Array as JArray, nn, numpy as np, tree } from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import type { Params } from "./optim.ts";
import type { Policy, PrefixInputs, Sample, SampleOptions } from "./policy.ts";

/**
 * Log-probs for training: log softmax(logits / temperature) of the targets, as TRL scores completions
 * with the sampling temperature.
 */
export function engineLogprobs(model: Model, temperature = 1): Policy["logprobs"] {
  const cfg = model.config;
  return (params: Params, ids: JArray, targets: JArray) => {
    let logits = forwardLogits(params, cfg, ids);
    if (temperature !== 1 && temperature > 0) logits = logits.mul(1 / temperature);
    return nn.logSoftmax(logits, -1).mul(nn.oneHot(targets, cfg.vocabSize)).sum(-1);
  };
}

export function enginePolicy(model: Model, opts: { temperature?: number } = {}): Policy {
  return {
    tokenizer: model.tokenizer,
    maxContext: model.config.maxPositionEmbeddings,
    params: model.params,
    logprobs: engineLogprobs(model, opts.temperature ?? 1),
    prefix: {
      inputs: (b) => prefixArrays(model.config, b) as unknown as PrefixInputs,
      logprobs: (params, inputs) =>
        prefixLogprobs(params, model.config, inputs as unknown as PrefixArrays, opts.temperature ?? 1),
    },
    bytesPerToken(T: number): number {
      // Saved activations per layer (norms, q/k/v/o, MLP, attention scores) plus the logits chain,
      // times 6 for the temporaries jax-js keeps (calibrated on the peak RSS of the tiny and medium presets).
      const c = model.config;
      const perLayer = c.hiddenSize * 12 + c.intermediateSize * 5 + c.numHeads * T * 2;
      return 6 * 4 * (c.numLayers * perLayer + c.vocabSize * 4);
    },
    async generate(params: Params, prompts: number[][], o: SampleOptions): Promise<Sample[]> {
      model.params = params;
      const gens = await generate(model, prompts, {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topP: o.topP,
        topK: o.topK && o.topK > 0 ? o.topK : undefined,
        seeds: o.seeds,
        stop: o.stop,
      });
      return gens.map((g) => ({
        tokens: g.tokens,
        text: g.text,
        logprobs: g.logprobs,
        finishReason: g.finishReason,
      }));
    },
    async save(params: Params, dir: string, o?: { dtype?: "F32" | "F16" | "BF16" }): Promise<void> {
      await saveModel({ ...model, params }, dir, { dtype: o?.dtype ?? "F32" });
    },
    async loadParams(dir: string): Promise<Params> {
      const ck = await Checkpoint.open(dir);
      const out: Params = {};
      try {
        for (const { name, shape } of expectedParams(model.config)) {
          if (!ck.names.includes(name)) throw new TtrlError(`${dir}: checkpoint lacks tensor ${name}`);
          out[name] = np.array(await ck.readF32(name)).reshape(shape);
        }
      } catch (e) {
        tree.dispose(out);
        throw e;
      } finally {
        await ck.close();
      }
      return out;
    },
  };
}

/** Load a model folder as a trainable policy. */
export async function loadPolicy(
  dir: string,
  opts: { temperature?: number } = {},
): Promise<{ model: Model; policy: Policy }> {
  const model = await loadModel(dir);
  return { model, policy: enginePolicy(model, opts) };
}
