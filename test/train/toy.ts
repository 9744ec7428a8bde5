// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
/**
 * A tiny bigram language model written directly with jax-js, with a character tokenizer: enough to test
 * the trainers' mechanics (gradients, advantages, resume) in well under a second per step.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile, SafetensorsWriter } from "../../src/io/safetensors.ts";
import { type Array as JArray, nn, numpy as np } from "../../src/runtime/jax.ts";
import type { Params } from "../../src/train/optim.ts";
import type { Policy, Sample, SampleOptions } from "../../src/train/policy.ts";
import { Rng } from "../../src/util/rng.ts";

export const CHARS = ["<eos>", ..."abcdefgh0123456789 :\n<>/SoruvecğıüşöçTR".split("")];

export function charTokenizer(chars = CHARS) {
  const map = new Map(chars.map((c, i) => [c, i]));
  return {
    eosTokenIds: [0],
    padTokenId: 0,
    bosTokenId: null,
    encode(text: string): number[] {
      return [...text].map((ch) => {
        const id = map.get(ch);
        if (id === undefined) throw new Error(`toy tokenizer: unknown char ${JSON.stringify(ch)}`);
        return id;
      });
    },
    decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string {
      return ids
        .filter((i) => !(opts?.skipSpecialTokens && i === 0))
        .map((i) => chars[i])
        .join("");
    },
  };
}

/** Bigram LM: logits(next | prev) = W[prev]. */
export function bigramPolicy(opts: { seed?: number; scale?: number; maxContext?: number } = {}): Policy {
  const tok = charTokenizer();
  const V = CHARS.length;
  const rng = new Rng(opts.seed ?? 1);
  const w = new Float32Array(V * V).map(() => (opts.scale ?? 0.1) * rng.normal());
  const policy: Policy = {
    tokenizer: tok,
    maxContext: opts.maxContext ?? 512,
    params: { "model.W": np.array(w).reshape([V, V]) },
    logprobs(params: Params, ids: JArray, targets: JArray): JArray {
      const x = nn.oneHot(ids, V); // [B,T,V]
      const logits = np.matmul(x, params["model.W"]); // [B,T,V]
      const lp = nn.logSoftmax(logits, -1);
      return np.sum(lp.mul(nn.oneHot(targets, V)), -1);
    },
    async generate(params: Params, prompts: number[][], o: SampleOptions): Promise<Sample[]> {
      const W = await params["model.W"].ref.data();
      const temp = o.temperature ?? 1;
      return prompts.map((p, i) => {
        const r = new Rng(o.seeds[i]);
        let prev = p[p.length - 1];
        const tokens: number[] = [];
        const logprobs: number[] = [];
        let finishReason: Sample["finishReason"] = "length";
        for (let t = 0; t < o.maxNewTokens; t++) {
          const row = Array.from({ length: V }, (_, j) => W[prev * V + j] / (temp || 1));
          const mx = Math.max(...row);
          const ex = row.map((v) => Math.exp(v - mx));
          const z = ex.reduce((a, b) => a + b, 0);
          let u = r.next() * z;
          let k = 0;
          while (k < V - 1 && u >= ex[k]) u -= ex[k++];
          tokens.push(k);
          logprobs.push(Math.log(ex[k] / z));
          prev = k;
          if (k === 0) {
            finishReason = "eos";
            break;
          }
          const text = tok.decode(tokens);
          if (o.stop?.some((s) => text.endsWith(s))) {
            finishReason = "stop";
            break;
          }
        }
        return { tokens, logprobs, text: tok.decode(tokens, { skipSpecialTokens: true }), finishReason };
      });
    },
    async save(params: Params, dir: string): Promise<void> {
      mkdirSync(dir, { recursive: true });
      const names = Object.keys(params).sort();
      const w = new SafetensorsWriter(
        join(dir, "model.safetensors"),
        names.map((n) => ({ name: n, dtype: "F32", shape: params[n].shape })),
      );
      for (const n of names) await w.write(n, new Float32Array(await params[n].ref.data()));
      await w.close();
    },
    async loadParams(dir: string): Promise<Params> {
      const f = await SafetensorsFile.open(join(dir, "model.safetensors"));
      const out: Params = {};
      for (const [n, info] of f.tensors) out[n] = np.array(await f.readF32(n)).reshape(info.shape);
      await f.close();
      return out;
    },
  };
  return policy;
}

export async function paramBytes(p: Params): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const k of Object.keys(p).sort()) out[k] = Array.from(await p[k].ref.data());
  return out;
}
