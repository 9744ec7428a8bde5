/**
 * `ttrl merge`: mergekit-compatible model merging, streamed tensor by tensor.
 *
 * Everything is validated (config, models, layer ranges, tensor names and shapes, parameters) before any
 * output is written. The output is built in a temp folder beside `--out` and renamed into place at the end.
 */
import { randomBytes } from "node:crypto";
import { existsSync, promises as fsp } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { type DType, dtypeSize, isFloatDType, torchDtypeName } from "../io/dtype.ts";
import { Checkpoint, CheckpointWriter, numelOf } from "../io/safetensors.ts";
import { InputError, TtrlError } from "../util/errors.ts";
import { createProgress } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import { generateCard } from "./card.ts";
import { type MergeConfig, type OutputSlice, type Parameters, parseMergeConfig } from "./config.ts";
import type { StoredTensor } from "./kernels/tensors.ts";
import { BufferPool, releaseKernelMemory, SlerpWorkers } from "./kernels/workers.ts";
import { METHODS, type MergeContext, type MergeMethod, type TensorParams } from "./methods/index.ts";
import { layerPosition, ParamError, type ParamSpec, resolveParameter } from "./params.ts";

export interface MergeOptions {
  out: string;
  overwrite?: boolean;
  /** Output shard limit in bytes (default 5e9, as mergekit). */
  outShardSize?: number;
  copyTokenizer?: boolean;
  /** Seed for DARE's random masks. */
  randomSeed?: number;
  /** Show a progress bar (default: when stderr is a TTY). */
  progress?: boolean;
  /** Compute threads including the main one (default: available cores, at most 4). */
  threads?: number;
}

export interface MergeSummary {
  out: string;
  tensors: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  files: string[];
  /** Main-thread seconds by phase: waiting for reads, computing, waiting for writes (to bound the queue). */
  phases: { readWait: number; compute: number; writeWait: number };
}

/** The tokenizer files mergekit copies from the donor model. */
export const TOKENIZER_FILES = [
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.json",
  "tokenizer.model",
  "added_tokens.json",
  "merges.txt",
  "chat_template.jinja",
  "generation_config.json",
  "chat_template.json",
  "video_preprocessor_config.json",
];

const LAYER_RE = /^(.*?\blayers\.)(\d+)(\..+)$/;

interface ModelInfo {
  path: string;
  ckpt: Checkpoint;
  config: Record<string, unknown>;
  configText: string;
  numLayers: number;
}

interface PlannedInput {
  model: string;
  name: string;
  dtype: DType;
}

/** An output tensor as planned: its parameters (name, base index, values), inputs, shape and dtypes. */
interface PlannedTensor extends TensorParams {
  shape: number[];
  inputs: PlannedInput[];
  work: DType;
  out: DType;
}

/** Parse "5GB", "500M", "5B" (mergekit: billion), "2GiB", "1000" (bytes). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (examples: 5GB, 500MB, 2GiB, 1000000)`);
  const units: Record<string, number> = {
    "": 1,
    b: 1e9, // mergekit's "5B" = five billion
    k: 1e3,
    kb: 1e3,
    m: 1e6,
    mb: 1e6,
    g: 1e9,
    gb: 1e9,
    t: 1e12,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
  };
  const u = units[m[2].toLowerCase()];
  if (u === undefined)
    throw new Error(`unknown size unit ${JSON.stringify(m[2])} in ${JSON.stringify(text)}`);
  const v = Math.floor(Number(m[1]) * u);
  if (!(v > 0)) throw new Error(`size must be positive: ${JSON.stringify(text)}`);
  return v;
}

function promote(dtypes: DType[]): DType {
  const s = new Set(dtypes);
  if (s.size === 1) return dtypes[0];
  return "F32";
}

function fmtShape(s: number[]): string {
  return `[${s.join(", ")}]`;
}

async function openModel(path: string, cfgFile: string): Promise<ModelInfo> {
  if (!existsSync(path)) throw new InputError(cfgFile, undefined, `model folder not found: ${path}`);
  const cfgPath = join(path, "config.json");
  let configText: string;
  let config: Record<string, unknown>;
  try {
    configText = await fsp.readFile(cfgPath, "utf8");
  } catch {
    throw new InputError(path, undefined, "no config.json in the model folder");
  }
  try {
    config = JSON.parse(configText);
  } catch (e) {
    throw new InputError(cfgPath, undefined, `not valid JSON (${(e as Error).message})`);
  }
  const ckpt = await Checkpoint.open(path);
  let numLayers = Number(config.num_hidden_layers);
  if (!Number.isInteger(numLayers)) {
    numLayers = 0;
    for (const n of ckpt.names) {
      const m = LAYER_RE.exec(n);
      if (m) numLayers = Math.max(numLayers, Number(m[2]) + 1);
    }
  }
  return { path, ckpt, config, configText, numLayers };
}

function collectParamNames(cfg: MergeConfig): { name: string; where: string }[] {
  const out: { name: string; where: string }[] = [];
  const add = (p: Parameters | undefined, where: string) => {
    for (const k of Object.keys(p ?? {})) out.push({ name: k, where });
  };
  add(cfg.parameters, "parameters");
  cfg.models?.forEach((m, i) => {
    add(m.parameters, `models[${i}].parameters`);
  });
  cfg.slices?.forEach((s, i) => {
    add(s.parameters, `slices[${i}].parameters`);
    s.sources.forEach((src, j) => {
      add(src.parameters, `slices[${i}].sources[${j}].parameters`);
    });
  });
  return out;
}

/** Everything needed to run a merge, checked before any output is written. */
export interface MergePlan {
  config: MergeConfig;
  method: MergeMethod;
  models: Map<string, ModelInfo>;
  tensors: PlannedTensor[];
  donor: string;
  tokenizerDonor: string | null;
  outConfigText: string;
  numLayers: number;
}

export async function planMerge(
  cfg: MergeConfig,
  opts: { copyTokenizer?: boolean } = {},
): Promise<MergePlan> {
  const file = cfg.file;
  const fail = (msg: string): never => {
    throw new InputError(file, undefined, msg);
  };
  const method = METHODS[cfg.mergeMethod];
  if (!method)
    fail(`unknown merge_method "${cfg.mergeMethod}" (supported: ${Object.keys(METHODS).join(", ")})`);
  const specs = new Map(method.params.map((p) => [p.name, p]));
  for (const { name, where } of collectParamNames(cfg)) {
    if (!specs.has(name))
      fail(
        `${where}: unknown parameter "${name}" for ${method.name} (known: ${[...specs.keys()].join(", ")})`,
      );
  }

  // open every referenced model
  const models = new Map<string, ModelInfo>();
  const refs: string[] = [];
  const ref = (p: string) => {
    if (!refs.includes(p)) refs.push(p);
  };
  if (cfg.baseModel) ref(cfg.baseModel);
  for (const m of cfg.models ?? []) ref(m.model);
  for (const s of cfg.slices ?? []) {
    if (s.baseModel) ref(s.baseModel);
    for (const src of s.sources) ref(src.model);
  }
  try {
    for (const p of refs) models.set(p, await openModel(p, file));
  } catch (e) {
    for (const m of models.values()) await m.ckpt.close();
    throw e;
  }
  const closeAll = async () => {
    for (const m of models.values()) await m.ckpt.close();
  };
  try {
    // models → one slice over every model's full layer range (the base added when not listed)
    let slices: OutputSlice[];
    if (cfg.models) {
      const sources = cfg.models.map((m) => ({
        model: m.model,
        layerRange: [0, models.get(m.model)?.numLayers ?? 0] as [number, number],
        parameters: m.parameters,
      }));
      if (cfg.baseModel && !cfg.models.some((m) => m.model === cfg.baseModel)) {
        sources.push({
          model: cfg.baseModel,
          layerRange: [0, models.get(cfg.baseModel)?.numLayers ?? 0],
          parameters: undefined,
        });
      }
      const n0 = sources[0].layerRange[1];
      for (const s of sources) {
        if (s.layerRange[1] !== n0)
          fail(
            `models have different numbers of layers (${sources.map((x) => `${x.model}: ${x.layerRange[1]}`).join(", ")}); use slices`,
          );
      }
      slices = [{ sources }];
    } else {
      slices = cfg.slices as OutputSlice[];
    }

    // method contract and layer ranges
    slices.forEach((s, i) => {
      const base = s.baseModel ?? cfg.baseModel;
      const n = s.sources.length;
      if (n < method.minInputs || (method.maxInputs !== undefined && n > method.maxInputs)) {
        fail(
          `slices[${i}]: ${method.name} needs ${method.maxInputs === method.minInputs ? `exactly ${method.minInputs}` : `at least ${method.minInputs}`} input models, got ${n}`,
        );
      }
      if (method.baseRequired && !base) fail(`${method.name} needs a base_model`);
      if (method.baseRequired && base && !s.sources.some((src) => src.model === base)) {
        fail(`slices[${i}]: the base model ${base} is not among the slice's sources`);
      }
      for (const src of s.sources) {
        const m = models.get(src.model) as ModelInfo;
        if (src.layerRange[1] > m.numLayers) {
          fail(
            `slices[${i}]: layer_range [${src.layerRange.join(", ")}] is past the ${m.numLayers} layers of ${src.model}`,
          );
        }
      }
    });

    const donor = cfg.baseModel ?? slices[0].sources[0].model;
    const donorInfo = models.get(donor) as ModelInfo;
    // non-layer tensors: embeddings before the layers, the rest (final norm, lm_head) after
    const nonLayer = donorInfo.ckpt.names.filter((n) => !LAYER_RE.test(n));
    const pre = nonLayer.filter((n) => n.includes("embed"));
    const post = nonLayer.filter((n) => !n.includes("embed"));

    const tensors: PlannedTensor[] = [];
    const plan = (outName: string, slice: OutputSlice, inputNames: string[], t: number): void => {
      const base = slice.baseModel ?? cfg.baseModel;
      const inputs: PlannedInput[] = [];
      let shape: number[] | null = null;
      let shapeFrom = "";
      slice.sources.forEach((src, k) => {
        const m = models.get(src.model) as ModelInfo;
        const name = inputNames[k];
        if (!m.ckpt.has(name))
          fail(`tensor ${name} (for output ${outName}) is missing from model ${src.model}`);
        const info = m.ckpt.info(name);
        if (!isFloatDType(info.dtype))
          fail(
            `tensor ${name} of ${src.model} has dtype ${info.dtype}; ttrl merge supports F32, F16 and BF16`,
          );
        if (shape === null) {
          shape = info.shape;
          shapeFrom = `${src.model} (${name})`;
        } else if (shape.length !== info.shape.length || shape.some((d, j) => d !== info.shape[j])) {
          fail(
            `tensor ${outName}: shape ${fmtShape(shape)} in ${shapeFrom} but ${fmtShape(info.shape)} in ${src.model} (${name})`,
          );
        }
        inputs.push({ model: src.model, name, dtype: info.dtype as DType });
      });
      const baseIndex = base ? slice.sources.findIndex((s) => s.model === base) : -1;
      const shared: Record<string, number | boolean> = {};
      const perInput: Record<string, number | boolean>[] = slice.sources.map(() => ({}));
      const resolve1 = (
        spec: ParamSpec,
        scopes: (Parameters | undefined)[],
        tensorName: string,
        who: string,
      ) => {
        let v: number | boolean | undefined;
        try {
          v = resolveParameter(spec, scopes, tensorName, t);
        } catch (e) {
          if (e instanceof ParamError) fail(`${e.message} (tensor ${tensorName}${who})`);
          throw e;
        }
        if (v === undefined) fail(`missing required parameter "${spec.name}" for tensor ${tensorName}${who}`);
        return v as number | boolean;
      };
      for (const spec of method.params) {
        if (spec.scope === "shared") {
          shared[spec.name] = resolve1(spec, [slice.parameters, cfg.parameters], outName, "");
        } else {
          slice.sources.forEach((src, k) => {
            if (spec.scope === "nonBase" && k === baseIndex) return;
            const scopes = [
              ...slice.sources.filter((s) => s.model === src.model).map((s) => s.parameters),
              slice.parameters,
              cfg.parameters,
            ];
            perInput[k][spec.name] = resolve1(spec, scopes, inputNames[k], ` of model ${src.model}`);
          });
        }
      }
      const refused = method.check?.({ name: outName, baseIndex, shared, perInput });
      if (refused) fail(refused);
      const work = cfg.dtype ?? promote(inputs.map((x) => x.dtype));
      tensors.push({
        name: outName,
        shape: shape as unknown as number[],
        inputs,
        baseIndex,
        work,
        out: cfg.outDtype ?? work,
        shared,
        perInput,
      });
    };

    for (const n of pre)
      plan(
        n,
        slices[0],
        slices[0].sources.map(() => n),
        0,
      );
    let outLayer = 0;
    slices.forEach((s) => {
      const nl = s.sources[0].layerRange[1] - s.sources[0].layerRange[0];
      const base = s.baseModel ?? cfg.baseModel;
      const refSrc = s.sources.find((x) => x.model === base) ?? s.sources[0];
      const refModel = models.get(refSrc.model) as ModelInfo;
      for (let i = 0; i < nl; i++) {
        const refLayer = refSrc.layerRange[0] + i;
        const names = refModel.ckpt.names.filter((n) => {
          const m = LAYER_RE.exec(n);
          return m !== null && Number(m[2]) === refLayer;
        });
        if (names.length === 0) fail(`model ${refSrc.model} has no tensors for layer ${refLayer}`);
        for (const n of names) {
          const m = LAYER_RE.exec(n) as RegExpExecArray;
          const outName = `${m[1]}${outLayer}${m[3]}`;
          const inputNames = s.sources.map((src) => `${m[1]}${src.layerRange[0] + i}${m[3]}`);
          plan(outName, s, inputNames, layerPosition(i, nl));
        }
        outLayer++;
      }
    });
    for (const n of post)
      plan(
        n,
        slices[slices.length - 1],
        slices[slices.length - 1].sources.map(() => n),
        0,
      );

    // tokenizer
    let tokenizerDonor: string | null = null;
    if (cfg.tokenizerSource) {
      tokenizerDonor = cfg.tokenizerSource === "base" ? donor : cfg.tokenizerSource;
      if (!existsSync(join(tokenizerDonor, "tokenizer_config.json"))) {
        fail(`tokenizer_source ${cfg.tokenizerSource}: no tokenizer_config.json in ${tokenizerDonor}`);
      }
      const emb = tensors.find((t) => t.name.includes("embed_tokens"));
      const tcfg = (
        tokenizerDonor === donor
          ? donorInfo.config
          : JSON.parse(await fsp.readFile(join(tokenizerDonor, "config.json"), "utf8").catch(() => "{}"))
      ) as Record<string, unknown>;
      if (emb && typeof tcfg.vocab_size === "number" && emb.shape[0] !== tcfg.vocab_size) {
        fail(
          `tokenizer_source ${cfg.tokenizerSource}: its vocabulary (${tcfg.vocab_size}) differs from the merged embeddings (${emb.shape[0]}); re-mapping vocabularies is not supported`,
        );
      }
    } else if (opts.copyTokenizer !== false) {
      const d = donor;
      if (
        existsSync(join(d, "tokenizer_config.json")) &&
        (existsSync(join(d, "tokenizer.json")) || existsSync(join(d, "tokenizer.model")))
      ) {
        tokenizerDonor = d;
      }
    }

    const numLayers = outLayer;
    const outConfigText = updateConfigText(donorInfo.configText, donorInfo.config, {
      dtype: cfg.outDtypeName ?? cfg.dtypeName,
      numLayers: numLayers,
    });
    return { config: cfg, method, models, tensors, donor, tokenizerDonor, outConfigText, numLayers };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** config.json of the output: the donor's text with `torch_dtype` (and `dtype`) and `num_hidden_layers` updated. */
export function updateConfigText(
  text: string,
  config: Record<string, unknown>,
  upd: { dtype?: string; numLayers: number },
): string {
  const next: Record<string, unknown> = { ...config };
  if (upd.dtype) {
    // transformers ≥ 5 writes `dtype`, older versions `torch_dtype`: update whichever the donor has
    if ("torch_dtype" in config || !("dtype" in config)) next.torch_dtype = upd.dtype;
    if ("dtype" in config) next.dtype = upd.dtype;
  }
  if ("num_hidden_layers" in config) next.num_hidden_layers = upd.numLayers;
  // keep the donor's formatting where only values change: patch top-level lines in place
  let out = text;
  let ok = true;
  for (const [k, v] of Object.entries(next)) {
    if (JSON.stringify(config[k]) === JSON.stringify(v)) continue;
    const re = new RegExp(
      `^(  ${JSON.stringify(k).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: )([^\\n]*?)(,?)$`,
      "m",
    );
    if (k in config && re.test(out)) out = out.replace(re, (_m, a, _b, c) => `${a}${JSON.stringify(v)}${c}`);
    else ok = false;
  }
  if (ok) return out;
  return `${JSON.stringify(next, null, 2)}\n`;
}

async function readInputs(plan: MergePlan, t: PlannedTensor, pool: BufferPool): Promise<StoredTensor[]> {
  return Promise.all(
    t.inputs.map(async (inp) => {
      const ck = (plan.models.get(inp.model) as ModelInfo).ckpt;
      const info = ck.info(inp.name);
      return { raw: await ck.readRaw(inp.name, pool.get(info.end - info.begin)), dtype: inp.dtype };
    }),
  );
}

/** Tensors whose inputs are being read ahead of the one being computed. */
const PREFETCH = 2;
/** Tensors being written at once. */
const WRITES = 3;

/** A merge's temp folder beside its output: `.<out>.ttrl-tmp-<pid>-<hex>` (and `<that>.old` while swapping). */
const TEMP_RE = /^\.(.+)\.ttrl-tmp-(\d+)-[0-9a-f]+(\.old)?$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

/**
 * Remove the temp folders that killed merges left in `parent`: those whose process is gone. A running
 * merge's (another process, or this one) is kept. A `.old` folder (the previous output, moved aside just
 * before the new one is moved in) whose output is missing was interrupted mid-swap: it is put back.
 */
export async function removeStaleTemps(parent: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    const path = join(parent, name);
    const target = join(parent, m[1]);
    if (m[3] && !existsSync(target)) await fsp.rename(path, target).catch(() => {});
    else {
      await fsp.rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

/** Run a merge from a mergekit YAML file into `opts.out`. */
export async function runMerge(configPath: string, opts: MergeOptions): Promise<MergeSummary> {
  const started = Date.now();
  const out = resolve(opts.out);
  await removeStaleTemps(dirname(out));
  if (existsSync(out) && !opts.overwrite)
    throw new TtrlError(`${opts.out} already exists (use --overwrite to replace it)`);
  const cfg = parseMergeConfig(configPath);
  const plan = await planMerge(cfg, { copyTokenizer: opts.copyTokenizer });
  const tmp = join(
    dirname(out),
    `.${basename(out)}.ttrl-tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  const rng = new Rng(opts.randomSeed ?? 0);
  let bytesRead = 0;
  let bytesWritten = 0;
  const progress = createProgress({
    label: "merge",
    total: plan.tensors.length,
    unit: "tensors",
    enabled: opts.progress,
  });
  let writer: CheckpointWriter | null = null;
  const pool = new BufferPool();
  const workers = new SlerpWorkers(opts.threads === undefined ? undefined : Math.max(0, opts.threads - 1));
  const ctx: MergeContext = { pool, workers, rng };
  let pending: Promise<StoredTensor[]> | null = null;
  const writing: Promise<void>[] = [];
  // The failed write of the earliest tensor (e.g. a non-finite tensor the writer refused): later tensors'
  // writes then fail only because the writer closed, and may fail first, so the earliest is reported.
  let failed: { i: number; e: unknown } | null = null;
  const writeFailed = async (): Promise<void> => {
    await Promise.all(writing);
    if (failed) throw failed.e;
  };
  const phases = { readWait: 0, compute: 0, writeWait: 0 };
  const reads: Promise<StoredTensor[]>[] = [];
  try {
    await fsp.mkdir(tmp, { recursive: true });
    writer = new CheckpointWriter(
      tmp,
      plan.tensors.map((t) => ({ name: t.name, dtype: t.out, shape: t.shape })),
      { maxShardBytes: opts.outShardSize ?? 5e9, metadata: { format: "pt" } },
    );
    // pipeline: reads of the next PREFETCH tensors in flight while this one is computed; writes queued
    let next = 0;
    const refill = () => {
      while (next < plan.tensors.length && reads.length < PREFETCH) {
        reads.push(readInputs(plan, plan.tensors[next++], pool));
      }
    };
    refill();
    for (let i = 0; i < plan.tensors.length; i++) {
      const t = plan.tensors[i];
      let c = performance.now();
      pending = reads.shift() as Promise<StoredTensor[]>;
      const inputs = await pending;
      pending = null;
      phases.readWait += performance.now() - c;
      refill();
      for (const x of inputs) bytesRead += x.raw.byteLength;
      c = performance.now();
      const result = await plan.method.merge({ ...t, inputs }, ctx);
      phases.compute += performance.now() - c;
      for (const x of inputs) pool.put(x.raw);
      // a bounded number of tensors being written while the next ones are computed
      c = performance.now();
      if (writing.length >= WRITES) await writing.shift();
      if (failed) await writeFailed();
      phases.writeWait += performance.now() - c;
      writing.push(
        writer.write(t.name, result).then(
          () => pool.put(result),
          (e) => {
            if (!failed || i < failed.i) failed = { i, e };
          },
        ),
      );
      bytesWritten += result.byteLength;
      progress.tick(1);
    }
    await writeFailed();
    await writer.close();
    progress.stop();
    // side files
    await fsp.writeFile(join(tmp, "config.json"), plan.outConfigText);
    if (plan.tokenizerDonor) {
      for (const f of TOKENIZER_FILES) {
        const src = join(plan.tokenizerDonor, f);
        if (existsSync(src)) await fsp.copyFile(src, join(tmp, f));
      }
    }
    await fsp.writeFile(join(tmp, "README.md"), generateCard(plan.config, basename(out), plan.method));
    await fsp.writeFile(join(tmp, "mergekit_config.yml"), plan.config.text);
    // into place
    if (existsSync(out)) {
      const old = `${tmp}.old`;
      await fsp.rename(out, old);
      await fsp.rename(tmp, out);
      await fsp.rm(old, { recursive: true, force: true });
    } else {
      await fsp.rename(tmp, out);
    }
  } catch (e) {
    progress.stop();
    // let in-flight reads and writes settle (their errors are secondary to `e`)
    await Promise.allSettled([pending, ...reads, ...writing]);
    if (writer) await writer.abort().catch(() => {});
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    await workers.close();
    pool.clear();
    releaseKernelMemory();
    for (const m of plan.models.values()) await m.ckpt.close();
  }
  return {
    out,
    tensors: plan.tensors.length,
    bytesRead,
    bytesWritten,
    seconds: (Date.now() - started) / 1000,
    files: writer?.files ?? [],
    phases: {
      readWait: phases.readWait / 1000,
      compute: phases.compute / 1000,
      writeWait: phases.writeWait / 1000,
    },
  };
}

export { dtypeSize, numelOf, torchDtypeName };
