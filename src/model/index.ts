/**
 * The model engine: load/save Hugging Face LLaMA/Qwen2 checkpoints, score token sequences, sample
 * completions with a preallocated KV cache. Runs on jax-js (Wasm); call `initRuntime()` first (loadModel
 * does it for you).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { type DType, isFloatDType, withConfigDtype } from "../io/dtype.ts";
import { readJsonObject } from "../io/files.ts";
import { Checkpoint, saveCheckpoint } from "../io/safetensors.ts";
import {
  checkDeviceTensor,
  initRuntime,
  type Array as JArray,
  jit,
  numpy as np,
  type OwnedFunction,
  tree,
} from "../runtime/jax.ts";
import { TtrlError } from "../util/errors.ts";
import { pow2 } from "../util/math.ts";
import { Rng } from "../util/rng.ts";
import { checkTiedHead, expectedParams, type ModelConfig, parseConfig } from "./config.ts";
import {
  decodeStep,
  flushRecent,
  forwardLogits,
  type KvCache,
  type Params,
  prefill,
  ropeTablesJs,
  type StepOut,
  tokenLogprobs,
} from "./forward.ts";
import type { Generation, SampleOptions, Sampler } from "./sampler.ts";
import { sampleRow } from "./sampling.ts";
import { loadTokenizer, type Tokenizer, tokenizerFromJson } from "./tokenizer.ts";

export { initRuntime } from "../runtime/jax.ts";
export type { ModelConfig } from "./config.ts";
export { expectedParams, paramCount, parseConfig, SUPPORTED_ARCHITECTURES } from "./config.ts";
export type { Params } from "./forward.ts";
export { forwardLogits, tokenLogprobs } from "./forward.ts";
export type {
  Completion,
  FinishReason,
  Generation,
  SampleOptions,
  Sampler,
  SamplerTokenizer,
} from "./sampler.ts";
export type { Tokenizer } from "./tokenizer.ts";

/** Files besides the weights that make up a model folder; kept verbatim so saveModel can write them back. */
export const MODEL_ASSET_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "chat_template.jinja",
] as const;

export interface Model {
  dir: string;
  config: ModelConfig;
  tokenizer: Tokenizer;
  /** name → f32 jax Array, HF tensor names and shapes. */
  params: Params;
  /** Extension: the model folder's tokenizer/generation files (name → text), written back by saveModel. */
  assets?: Record<string, string>;
}

const shapeStr = (s: readonly number[]) => `[${s.join(", ")}]`;

/** Build the tokenizer of a model folder, merging EOS ids from config.json and generation_config.json. */
function tokenizerFor(dir: string, config: ModelConfig, assets: Record<string, string>): Tokenizer {
  const eos = [...config.eosTokenId];
  if (assets["generation_config.json"]) {
    try {
      const g = JSON.parse(assets["generation_config.json"]) as { eos_token_id?: number | number[] };
      const ge = g.eos_token_id;
      for (const x of Array.isArray(ge) ? ge : ge !== undefined ? [ge] : [])
        if (!eos.includes(x)) eos.push(x);
    } catch {
      throw new TtrlError(`${join(dir, "generation_config.json")}: invalid JSON`);
    }
  }
  const tok = loadTokenizer(dir, { eosTokenIds: eos });
  if (tok.vocabSize > config.vocabSize)
    throw new TtrlError(
      `${dir}: tokenizer has ${tok.vocabSize} tokens but config.json vocab_size is ${config.vocabSize}`,
    );
  return tok;
}

/** `checkTiedHead` on a checkpoint: compares a stored lm_head.weight with the embedding when the config ties them. */
async function tiedHeadCheck(ckpt: Checkpoint, config: ModelConfig, file: string): Promise<string | null> {
  const hasLmHead = ckpt.has("lm_head.weight");
  let headDiffers: boolean | undefined;
  if (hasLmHead && config.tieWordEmbeddings && ckpt.has("model.embed_tokens.weight")) {
    const [a, b] = [ckpt.info("lm_head.weight"), ckpt.info("model.embed_tokens.weight")];
    headDiffers = a.shape.join(",") !== b.shape.join(",");
    if (!headDiffers) {
      const [x, y] = await Promise.all([
        ckpt.readF32("lm_head.weight"),
        ckpt.readF32("model.embed_tokens.weight"),
      ]);
      headDiffers = x.some((v, i) => v !== y[i]);
    }
  }
  return checkTiedHead(config, { hasLmHead, headDiffers }, file);
}

/** Load a model folder (HF layout) into float32 jax arrays. */
export async function loadModel(dir: string): Promise<Model> {
  await initRuntime();
  if (!existsSync(dir)) throw new TtrlError(`${dir}: model folder not found`);
  if (!statSync(dir).isDirectory()) throw new TtrlError(`${dir}: expected a model folder, got a file`);
  const cfgFile = join(dir, "config.json");
  if (!existsSync(cfgFile)) throw new TtrlError(`${dir}: missing config.json (not a model folder?)`);
  const config = parseConfig(readJsonObject(cfgFile), cfgFile);
  const assets: Record<string, string> = {};
  for (const f of MODEL_ASSET_FILES) {
    const p = join(dir, f);
    if (existsSync(p)) assets[f] = readFileSync(p, "utf8");
  }
  const tokenizer = tokenizerFor(dir, config, assets);
  const ckpt = await Checkpoint.open(dir);
  const params: Params = {};
  try {
    const warning = await tiedHeadCheck(ckpt, config, cfgFile);
    if (warning) process.stderr.write(`ttrl: warning: ${warning}\n`);
    const expected = expectedParams(config);
    const missing = expected.filter((e) => !ckpt.has(e.name)).map((e) => e.name);
    if (missing.length > 0)
      throw new TtrlError(
        `${dir}: checkpoint is missing ${missing.length} tensor(s) that config.json requires: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""}`,
      );
    const known = new Set(expected.map((e) => e.name));
    for (const n of ckpt.names) {
      const m = /^model\.layers\.(\d+)\./.exec(n);
      if (m && Number(m[1]) >= config.numLayers)
        throw new TtrlError(
          `${dir}: checkpoint has tensor ${n} but config.json num_hidden_layers is ${config.numLayers}`,
        );
      if (
        !known.has(n) &&
        /\.(weight|bias)$/.test(n) &&
        !(n === "lm_head.weight" && config.tieWordEmbeddings)
      )
        throw new TtrlError(`${dir}: unexpected tensor ${n} for ${config.architecture} (check config.json)`);
    }
    for (const e of expected) {
      const info = ckpt.info(e.name);
      if (!isFloatDType(String(info.dtype)))
        throw new TtrlError(
          `${info.file}: tensor ${e.name} has unsupported dtype ${info.dtype} (supported: F32, F16, BF16)`,
        );
      if (info.shape.length !== e.shape.length || info.shape.some((d, i) => d !== e.shape[i]))
        throw new TtrlError(
          `${info.file}: tensor ${e.name} has shape ${shapeStr(info.shape)} but config.json implies ${shapeStr(e.shape)}`,
        );
      checkDeviceTensor(`${info.file}: ${e.name}`, e.shape);
      const data = await ckpt.readF32(e.name);
      params[e.name] = np.array(data).reshape(e.shape);
    }
  } catch (e) {
    tree.dispose(params);
    throw e;
  } finally {
    await ckpt.close();
  }
  return { dir, config, tokenizer, params, assets };
}

/** Build an in-memory model from a config, tokenizer files and params (init-model, tests). */
export async function modelFromParts(
  dir: string,
  rawConfig: Record<string, unknown>,
  assets: Record<string, string>,
  params: Params,
): Promise<Model> {
  await initRuntime();
  const config = parseConfig(rawConfig);
  const tj = assets["tokenizer.json"];
  if (!tj) throw new TtrlError("modelFromParts: tokenizer.json is required");
  const tokenizer = tokenizerFromJson(JSON.parse(tj), JSON.parse(assets["tokenizer_config.json"] ?? "{}"), {
    eosTokenIds: config.eosTokenId,
  });
  return { dir, config, tokenizer, params, assets };
}

/** Random parameters as transformers initialises them: N(0, initializer_range), norms 1, biases 0. */
export function randomParams(config: ModelConfig, seed: number | string = 0): Params {
  const std = typeof config.raw.initializer_range === "number" ? config.raw.initializer_range : 0.02;
  const rng = new Rng(seed);
  const params: Params = {};
  for (const { name, shape } of expectedParams(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    if (name.endsWith("norm.weight")) d.fill(1);
    else if (!name.endsWith(".bias")) for (let i = 0; i < n; i++) d[i] = std * rng.normal();
    params[name] = np.array(d).reshape(shape);
  }
  return params;
}

/** Save a model in HF layout: config.json, model.safetensors (dtype, default F32), tokenizer files. */
export async function saveModel(
  model: Model,
  dir: string,
  opts?: { dtype?: DType; maxShardBytes?: number },
): Promise<void> {
  const dtype = opts?.dtype ?? "F32";
  await mkdir(dir, { recursive: true });
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  for (const { name, shape } of expectedParams(model.config)) {
    const p = model.params[name];
    if (!p) throw new TtrlError(`saveModel: params lack tensor ${name}`);
    if (p.shape.join(",") !== shape.join(","))
      throw new TtrlError(
        `saveModel: tensor ${name} has shape ${shapeStr(p.shape)}, config implies ${shapeStr(shape)}`,
      );
    tensors.push({ name, shape, data: (await p.ref.data()) as Float32Array });
  }
  await saveCheckpoint(dir, tensors, {
    dtype,
    maxShardBytes: opts?.maxShardBytes,
    metadata: { format: "pt" },
  });
  await writeJsonAtomic(join(dir, "config.json"), withConfigDtype(model.config.raw, dtype));
  for (const [f, text] of Object.entries(model.assets ?? {})) await writeFileAtomic(join(dir, f), text);
}

// ---------------------------------------------------------------------------------------------------------
// Compiled functions, one set per model object.

/** `decodeStep` with the config bound (see forward.ts for the arguments). */
type Step = (
  p: Params,
  c: KvCache,
  r: KvCache,
  tok: JArray,
  base: JArray,
  slot: JArray,
  cos: JArray,
  sin: JArray,
) => { logits: JArray; recent: KvCache };

interface Compiled {
  logprobs: OwnedFunction<(p: Params, ids: JArray, tg: JArray) => JArray>;
  prefill: Map<number, OwnedFunction<(p: Params, ids: JArray, last: JArray) => StepOut>>;
  step: OwnedFunction<Step>;
  flush: OwnedFunction<(c: KvCache, r: KvCache, base: JArray) => KvCache>;
  /** Rows of a prefill's logits and cache picked by `rows` (int32 [B]). */
  expand: OwnedFunction<(o: StepOut, rows: JArray) => StepOut>;
}

const compiled = new WeakMap<Model, Compiled>();

function compiledFor(model: Model): Compiled {
  const have = compiled.get(model);
  if (have) return have;
  const cfg = model.config;
  const step: Step = (p, c, r, tok, base, slot, cos, sin) =>
    decodeStep(p, cfg, c, r, tok, base, slot, cos, sin);
  const c: Compiled = {
    logprobs: jit((p: Params, ids: JArray, tg: JArray) => tokenLogprobs(p, cfg, ids, tg)),
    prefill: new Map(),
    step: jit(step),
    flush: jit((c: KvCache, r: KvCache, base: JArray) => flushRecent(c, r, base)),
    expand: jit((o: StepOut, rows: JArray) => {
      const pick = (x: JArray) => np.take(x, rows.ref, 0);
      const out: StepOut = {
        logits: pick(o.logits),
        cache: { k: o.cache.k.map(pick), v: o.cache.v.map(pick) },
      };
      rows.dispose();
      return out;
    }),
  };
  compiled.set(model, c);
  return c;
}

function prefillFn(model: Model, tmax: number) {
  const c = compiledFor(model);
  const have = c.prefill.get(tmax);
  if (have) return have;
  const cfg = model.config;
  const f = jit((p: Params, ids: JArray, last: JArray) => prefill(p, cfg, ids, last, tmax));
  c.prefill.set(tmax, f);
  return f;
}

/** Decoding steps buffered before they are written into the KV cache (see decodeStep). */
const RECENT = 16;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

function checkIds(seq: number[], V: number, what: string): void {
  for (const t of seq)
    if (!Number.isInteger(t) || t < 0 || t >= V)
      throw new TtrlError(`${what}: token id ${t} is outside the vocabulary [0, ${V})`);
}

/**
 * The batches in which whole sequences are scored: sorted by length, padded to 32-token buckets and to a
 * power of two of rows, each under ~256 MB of logits (at most `batchSize` rows, default 32). Checks every
 * token id and length first. Yields the rows' indices into `seqs` and the padded ids int32 [B*Tb].
 */
export function* scoringBatches(
  model: Model,
  seqs: number[][],
  batchSize?: number,
): Generator<{ idx: number[]; B: number; Tb: number; ids: Int32Array }> {
  const cfg = model.config;
  const V = cfg.vocabSize;
  seqs.forEach((s, i) => {
    checkIds(s, V, `sequence ${i}`);
    if (s.length > cfg.maxPositionEmbeddings)
      throw new TtrlError(
        `sequence ${i} has ${s.length} tokens, more than the model's context (${cfg.maxPositionEmbeddings})`,
      );
  });
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
  let at = 0;
  while (at < order.length) {
    const maxLen = Math.max(2, seqs[order[Math.min(order.length - 1, at + (batchSize ?? 1e9) - 1)]].length);
    const T = Math.min(roundUp(maxLen, 32), Math.max(maxLen, cfg.maxPositionEmbeddings));
    const fit = Math.max(1, Math.floor((256 * 2 ** 20) / (T * V * 4 * 3)));
    const idx = order.slice(at, at + Math.min(batchSize ?? 32, fit, order.length - at));
    const Tr = Math.max(...idx.map((i) => seqs[i].length), 2);
    const Tb = Math.min(roundUp(Tr, 32), Math.max(Tr, cfg.maxPositionEmbeddings));
    const B = pow2(idx.length);
    const ids = new Int32Array(B * Tb);
    idx.forEach((si, r) => {
      ids.set(seqs[si], r * Tb);
    });
    yield { idx, B, Tb, ids };
    at += idx.length;
  }
}

/**
 * Per-token log-probs of whole sequences: for each sequence of n tokens, n-1 numbers, entry i =
 * log p(token i+1 | tokens ≤ i). Batched by `scoringBatches`.
 */
export async function scoreSequences(
  model: Model,
  seqs: number[][],
  opts?: { batchSize?: number },
): Promise<number[][]> {
  await initRuntime();
  const out: number[][] = seqs.map(() => []);
  const c = compiledFor(model);
  for (const { idx, B, Tb, ids } of scoringBatches(model, seqs, opts?.batchSize)) {
    const tg = new Int32Array(B * Tb);
    idx.forEach((si, r) => {
      tg.set(seqs[si].slice(1), r * Tb);
    });
    const lp = c.logprobs(
      tree.ref(model.params),
      np.array(ids, { dtype: np.int32 }).reshape([B, Tb]),
      np.array(tg, { dtype: np.int32 }).reshape([B, Tb]),
    );
    const data = (await lp.data()) as Float32Array;
    idx.forEach((si, r) => {
      const n = seqs[si].length;
      out[si] = Array.from(data.subarray(r * Tb, r * Tb + Math.max(0, n - 1)));
    });
  }
  return out;
}

/** The sampler's options plus the model engine's extensions. */
export interface GenerateOptions extends SampleOptions {
  /** Extension: most sequences decoded at once (default: 128, fewer if the KV cache would pass ~1 GiB). */
  batchSize?: number;
  /** Extension: called after each decoding step with the number of tokens sampled so far. */
  onProgress?: (tokens: number) => void;
  /**
   * Extension (streaming): called after each decoding step with the token each running sequence sampled
   * (`seq` indexes `prompts`) and the raw logits [V] it was sampled from (a view, valid during the call).
   * Decoding waits for a returned promise: a server yields to the event loop there, so its sockets flush.
   */
  onStep?: (sampled: { seq: number; token: number; logits: Float32Array }[]) => void | Promise<void>;
  /** Extension: a sequence for which this returns true stops before its next token (finish "length"). */
  cancelled?: (seq: number) => boolean;
}

/** The model as a `Sampler` (its current `params`). */
export function modelSampler(model: Model): Sampler<Generation> {
  return {
    tokenizer: model.tokenizer,
    maxContext: model.config.maxPositionEmbeddings,
    generate: (prompts, opts) => generate(model, prompts, opts),
  };
}

/** Batched sampling with a preallocated KV cache. */
export async function generate(
  model: Model,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<Generation[]> {
  await initRuntime();
  const cfg = model.config;
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1)
    throw new TtrlError(`generate: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  if (opts.seeds && opts.seeds.length !== prompts.length)
    throw new TtrlError(`generate: ${opts.seeds.length} seeds for ${prompts.length} prompts`);
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new TtrlError(`generate: prompt ${i} is empty`);
    checkIds(p, cfg.vocabSize, `prompt ${i}`);
    if (p.length >= cfg.maxPositionEmbeddings)
      throw new TtrlError(
        `prompt ${i} has ${p.length} tokens, which leaves no room in the model's context of ${cfg.maxPositionEmbeddings} tokens`,
      );
  });
  const kvBytesPerTok = cfg.numLayers * 2 * cfg.numKvHeads * cfg.headDim * 4;
  const maxB = opts.batchSize ?? 128;
  const out: Generation[] = new Array(prompts.length);
  let done = 0;
  for (let at = 0; at < prompts.length; ) {
    const maxP = Math.max(...prompts.slice(at, at + maxB).map((p) => p.length));
    const tmax = Math.min(roundUp(maxP + opts.maxNewTokens, 32), roundUp(cfg.maxPositionEmbeddings, 32));
    const fit = Math.max(1, Math.floor((1024 * 2 ** 20) / (kvBytesPerTok * tmax * 2)));
    const n = Math.min(maxB, fit, prompts.length - at);
    const idx = Array.from({ length: n }, (_, i) => at + i);
    const gens = await generateBatch(model, idx, prompts, opts, (k) => opts.onProgress?.(done + k));
    idx.forEach((pi, r) => {
      out[pi] = gens[r];
      done += gens[r].tokens.length;
    });
    at += n;
  }
  return out;
}

async function generateBatch(
  model: Model,
  idx: number[],
  prompts: number[][],
  opts: GenerateOptions,
  progress: (tokens: number) => void,
): Promise<Generation[]> {
  const cfg = model.config;
  const tok = model.tokenizer;
  const V = cfg.vocabSize;
  const n = idx.length;
  const B = pow2(n);
  const lens = idx.map((i) => prompts[i].length);
  const maxP = Math.max(...lens);
  const P = Math.min(roundUp(maxP, 16), cfg.maxPositionEmbeddings);
  const tmax = Math.min(roundUp(maxP + opts.maxNewTokens, 32), roundUp(cfg.maxPositionEmbeddings, 32));
  // Identical prompts (GRPO's N samples per question, eval's k samples) are prefilled once; their rows
  // of the KV cache and first logits are then copied to every row that starts from them.
  const uniq = new Map<string, number>();
  const rowOf = new Int32Array(B);
  const firstRow: number[] = [];
  idx.forEach((pi, r) => {
    const key = prompts[pi].join(",");
    let u = uniq.get(key);
    if (u === undefined) {
      u = firstRow.length;
      uniq.set(key, u);
      firstRow.push(pi);
    }
    rowOf[r] = u;
  });
  const dedup = firstRow.length < n;
  const Bp = dedup ? pow2(firstRow.length) : B;
  const ids = new Int32Array(Bp * P).fill(tok.padTokenId);
  const last = new Int32Array(Bp);
  (dedup ? firstRow : idx).forEach((pi, r) => {
    ids.set(prompts[pi], r * P);
    last[r] = prompts[pi].length - 1;
  });
  const params = {
    greedy: Boolean(opts.greedy),
    temperature: opts.temperature ?? 1,
    topK: opts.topK ?? 0,
    topP: opts.topP ?? 1,
  };
  const rngs = idx.map((pi) => new Rng(opts.seeds ? opts.seeds[pi] : pi));
  const eos = new Set(tok.eosTokenIds);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  const stopWindow = stops.length ? 2 * Math.max(...stops.map((s) => s.length)) + 8 : 0;
  const gens = idx.map(() => ({
    tokens: [] as number[],
    logprobs: [] as number[],
    finish: null as Generation["finishReason"] | null,
  }));
  const limit = idx.map((pi) =>
    Math.min(opts.maxNewTokens, cfg.maxPositionEmbeddings - prompts[pi].length, tmax - prompts[pi].length),
  );
  const scratch = new Float64Array(V);
  let pre = prefillFn(model, tmax)(
    tree.ref(model.params),
    np.array(ids, { dtype: np.int32 }).reshape([Bp, P]),
    np.array(last, { dtype: np.int32 }),
  );
  if (dedup) pre = compiledFor(model).expand(pre, np.array(rowOf, { dtype: np.int32 }));
  let logits: JArray | null = pre.logits;
  let cache = pre.cache;
  const { numKvHeads: K, headDim: D, numLayers: L } = cfg;
  const zeros = () => np.zeros([B, K, RECENT, D]);
  let recent: KvCache = { k: Array.from({ length: L }, zeros), v: Array.from({ length: L }, zeros) };
  const { step, flush } = compiledFor(model);
  const half = D / 2;
  let sampled = 0;
  try {
    for (let s = 0; ; s++) {
      const cur: JArray = logits;
      logits = null;
      const data = (await cur.data()) as Float32Array; // data() consumes the array
      const next = new Int32Array(B).fill(tok.padTokenId);
      const pos = new Int32Array(B);
      let active = 0;
      const stepped: { seq: number; token: number; logits: Float32Array }[] = [];
      for (let r = 0; r < n; r++) {
        const g = gens[r];
        if (g.finish) continue;
        if (opts.cancelled?.(idx[r])) {
          g.finish = "length";
          continue;
        }
        const { token, logprob } = sampleRow(data, r * V, V, params, rngs[r], scratch);
        if (opts.onStep) stepped.push({ seq: idx[r], token, logits: data.subarray(r * V, (r + 1) * V) });
        g.tokens.push(token);
        g.logprobs.push(logprob);
        sampled++;
        next[r] = token;
        if (eos.has(token)) g.finish = "eos";
        else if (stopWindow > 0) {
          const tail = tok.decode(g.tokens.slice(-stopWindow));
          if (stops.some((st) => tail.includes(st))) g.finish = "stop";
        }
        if (!g.finish && g.tokens.length >= limit[r]) g.finish = "length";
        if (!g.finish) active++;
      }
      progress(sampled);
      if (stepped.length) await opts.onStep?.(stepped);
      if (active === 0) break;
      // Step s feeds the token sampled last at position len + s; the cache holds positions < len + s - slot.
      const slot = s % RECENT;
      const base = new Int32Array(B);
      for (let r = 0; r < B; r++) {
        const len = r < n ? lens[r] : 1;
        pos[r] = len + s;
        base[r] = len + s - slot;
      }
      if (slot === 0 && s > 0) {
        const prev = base.map((x) => x - RECENT);
        cache = flush(cache, tree.ref(recent), np.array(prev, { dtype: np.int32 }));
      }
      const [cos, sin] = ropeTablesJs(cfg, pos);
      const r = step(
        tree.ref(model.params),
        tree.ref(cache),
        recent,
        np.array(next, { dtype: np.int32 }),
        np.array(base, { dtype: np.int32 }),
        np.array(new Int32Array(B).fill(slot), { dtype: np.int32 }),
        cos.reshape([B, 1, 1, half]),
        sin.reshape([B, 1, 1, half]),
      );
      logits = r.logits;
      recent = r.recent;
    }
  } finally {
    logits?.dispose();
    tree.dispose(cache);
    tree.dispose(recent);
  }
  return gens.map((g) => {
    let text = tok.decode(g.finish === "eos" ? g.tokens.slice(0, -1) : g.tokens, { skipSpecialTokens: true });
    if (g.finish === "stop") {
      let cut = text.length;
      for (const st of stops) {
        const k = text.indexOf(st);
        if (k >= 0) cut = Math.min(cut, k + st.length);
      }
      text = text.slice(0, cut);
    }
    return { tokens: g.tokens, text, logprobs: g.logprobs, finishReason: g.finish ?? "length" };
  });
}

/** Full-recompute next-token logits for one sequence (tests, debugging): [V] floats at the last position. */
export async function lastLogits(model: Model, seq: number[]): Promise<Float32Array> {
  const lg = forwardLogits(tree.ref(model.params), model.config, np.array([seq], { dtype: np.int32 }));
  const d = (await lg.data()) as Float32Array;
  const V = model.config.vocabSize;
  return d.slice((seq.length - 1) * V, seq.length * V);
}
