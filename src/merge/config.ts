/**
 * mergekit's YAML configuration: parsing (YAML 1.1, as PyYAML reads it), validation and normalisation into
 * output slices. Every error names the config file.
 */
import { parse as parseYaml } from "yaml";
import { type DType, parseTorchDtype } from "../io/dtype.ts";
import { readUtf8File } from "../io/files.ts";
import { InputError } from "../util/errors.ts";

export type Scalar = number | boolean | string;
export type ScalarOrGradient = Scalar | Scalar[];
export interface Conditional {
  value: ScalarOrGradient;
  filter?: string;
}
export type ParameterSetting = ScalarOrGradient | Conditional | Conditional[];
export type Parameters = Record<string, ParameterSetting>;

export interface InputSlice {
  model: string;
  layerRange: [number, number];
  parameters?: Parameters;
}
export interface OutputSlice {
  sources: InputSlice[];
  baseModel?: string;
  parameters?: Parameters;
}
export interface InputModel {
  model: string;
  parameters?: Parameters;
}

export interface MergeConfig {
  file: string;
  /** The config file's text, verbatim (for the model card). */
  text: string;
  mergeMethod: string;
  baseModel?: string;
  slices?: OutputSlice[];
  models?: InputModel[];
  parameters?: Parameters;
  dtype?: DType;
  outDtype?: DType;
  /** Names as written in the config (`bfloat16`), for config.json. */
  dtypeName?: string;
  outDtypeName?: string;
  tokenizerSource?: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isScalar(v: unknown): v is Scalar {
  return typeof v === "number" || typeof v === "boolean" || typeof v === "string";
}

export function parseMergeConfig(file: string, text?: string): MergeConfig {
  const src = text ?? readUtf8File(file);
  let doc: unknown;
  try {
    doc = parseYaml(src, { version: "1.1", uniqueKeys: true, prettyErrors: true });
  } catch (e) {
    const err = e as Error & { linePos?: { line: number }[] };
    throw new InputError(file, err.linePos?.[0]?.line, `invalid YAML: ${err.message.split("\n")[0]}`);
  }
  const fail = (msg: string): never => {
    throw new InputError(file, undefined, msg);
  };
  if (!isObj(doc)) return fail("the config must be a YAML mapping (with merge_method and slices or models)");

  const known = new Set([
    "merge_method",
    "base_model",
    "slices",
    "models",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    "modules",
    "tokenizer",
    "chat_template",
  ]);
  for (const k of Object.keys(doc))
    if (!known.has(k)) fail(`unknown key "${k}" (known: ${[...known].join(", ")})`);
  if (doc.modules !== undefined && doc.modules !== null)
    fail("`modules:` configs are not supported by ttrl merge (use slices or models)");
  if (doc.tokenizer !== undefined && doc.tokenizer !== null)
    fail(
      "the `tokenizer:` section is not supported by ttrl merge (use tokenizer_source: base or a model path)",
    );
  if (doc.chat_template !== undefined && doc.chat_template !== null)
    fail("`chat_template` is not supported by ttrl merge");

  const str = (v: unknown, what: string): string => {
    if (typeof v !== "string" || v === "")
      fail(`${what} must be a non-empty string, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const mergeMethod = str(doc.merge_method, "merge_method");
  const baseModel = doc.base_model == null ? undefined : modelRef(doc.base_model, "base_model", fail);

  const params = (v: unknown, where: string): Parameters | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) fail(`${where}.parameters must be a mapping`);
    const out: Parameters = {};
    for (const [name, s] of Object.entries(v as Record<string, unknown>))
      out[name] = setting(s, `${where}.parameters.${name}`, fail);
    return out;
  };

  let slices: OutputSlice[] | undefined;
  let models: InputModel[] | undefined;
  const hasSlices = doc.slices !== undefined && doc.slices !== null;
  const hasModels = doc.models !== undefined && doc.models !== null;
  if (hasSlices === hasModels) fail("exactly one of `slices` or `models` must be present");
  if (hasSlices) {
    if (!Array.isArray(doc.slices) || doc.slices.length === 0) fail("slices must be a non-empty list");
    slices = (doc.slices as unknown[]).map((s, i) => {
      const where = `slices[${i}]`;
      if (!isObj(s)) return fail(`${where} must be a mapping with sources`);
      for (const k of Object.keys(s)) {
        if (!["sources", "base_model", "parameters", "residual_weight"].includes(k))
          fail(`${where}: unknown key "${k}"`);
      }
      if (s.residual_weight != null) fail(`${where}: residual_weight is not supported`);
      if (!Array.isArray(s.sources) || s.sources.length === 0)
        fail(`${where}.sources must be a non-empty list`);
      const sources = (s.sources as unknown[]).map((src, j) => {
        const w = `${where}.sources[${j}]`;
        if (!isObj(src)) return fail(`${w} must be a mapping with model and layer_range`);
        for (const k of Object.keys(src))
          if (!["model", "layer_range", "parameters"].includes(k)) fail(`${w}: unknown key "${k}"`);
        const lr = src.layer_range;
        if (
          !Array.isArray(lr) ||
          lr.length !== 2 ||
          !lr.every((x) => Number.isInteger(x) && (x as number) >= 0)
        ) {
          fail(`${w}.layer_range must be two non-negative integers [start, end], got ${JSON.stringify(lr)}`);
        }
        const [a, b] = lr as [number, number];
        if (b <= a) fail(`${w}.layer_range [${a}, ${b}] is empty (end must be greater than start)`);
        return {
          model: modelRef(src.model, `${w}.model`, fail),
          layerRange: [a, b] as [number, number],
          parameters: params(src.parameters, w),
        };
      });
      const n = sources[0].layerRange[1] - sources[0].layerRange[0];
      for (const src of sources) {
        if (src.layerRange[1] - src.layerRange[0] !== n) {
          fail(
            `${where}: all sources of a slice must have the same number of layers (${JSON.stringify(sources.map((x) => x.layerRange))})`,
          );
        }
      }
      return {
        sources,
        baseModel: s.base_model == null ? undefined : modelRef(s.base_model, `${where}.base_model`, fail),
        parameters: params(s.parameters, where),
      };
    });
  } else {
    if (!Array.isArray(doc.models) || doc.models.length === 0) fail("models must be a non-empty list");
    models = (doc.models as unknown[]).map((m, i) => {
      const where = `models[${i}]`;
      if (!isObj(m)) return fail(`${where} must be a mapping with a model`);
      for (const k of Object.keys(m))
        if (!["model", "parameters"].includes(k)) fail(`${where}: unknown key "${k}"`);
      return { model: modelRef(m.model, `${where}.model`, fail), parameters: params(m.parameters, where) };
    });
  }

  const dt = (v: unknown, key: string): { d?: DType; name?: string } => {
    if (v === undefined || v === null) return {};
    const name = str(v, key).replace(/^torch\./, "");
    const d = parseTorchDtype(name);
    if (!d || !["float32", "float16", "bfloat16"].includes(name))
      fail(`${key} must be float32, float16 or bfloat16, got ${JSON.stringify(v)}`);
    return { d: d as DType, name };
  };
  const dtype = dt(doc.dtype, "dtype");
  const outDtype = dt(doc.out_dtype, "out_dtype");
  let tokenizerSource: string | undefined;
  if (doc.tokenizer_source != null) {
    tokenizerSource = str(doc.tokenizer_source, "tokenizer_source");
    if (tokenizerSource === "union") {
      fail(
        'tokenizer_source: union is not supported by ttrl merge (it builds a new vocabulary); use "base" or a model path',
      );
    }
  }
  return {
    file,
    text: src,
    mergeMethod,
    baseModel,
    slices,
    models,
    parameters: params(doc.parameters, "top-level"),
    dtype: dtype.d,
    dtypeName: dtype.name,
    outDtype: outDtype.d,
    outDtypeName: outDtype.name,
    tokenizerSource,
  };
}

function modelRef(v: unknown, what: string, fail: (m: string) => never): string {
  if (isObj(v) && typeof v.model === "object")
    fail(`${what}: LoRA / structured model references are not supported; give a local folder`);
  if (typeof v !== "string" || v === "")
    fail(`${what} must be a model folder path, got ${JSON.stringify(v)}`);
  if ((v as string).includes("+")) fail(`${what}: LoRA references ("model+lora") are not supported`);
  return v as string;
}

function setting(v: unknown, where: string, fail: (m: string) => never): ParameterSetting {
  if (isScalar(v)) return v;
  if (Array.isArray(v)) {
    if (v.length === 0) fail(`${where}: empty list`);
    if (v.every(isScalar)) return v as Scalar[];
    if (v.every(isObj))
      return v.map((c, i) => conditional(c as Record<string, unknown>, `${where}[${i}]`, fail));
    fail(`${where}: a list must hold either values (a gradient) or {filter, value} entries, not a mix`);
  }
  if (isObj(v)) return conditional(v, where, fail);
  return fail(`${where}: unsupported value ${JSON.stringify(v)}`);
}

function conditional(c: Record<string, unknown>, where: string, fail: (m: string) => never): Conditional {
  for (const k of Object.keys(c))
    if (k !== "value" && k !== "filter")
      fail(`${where}: unknown key "${k}" (expected value and optional filter)`);
  if (!("value" in c)) fail(`${where}: missing value`);
  const value = c.value;
  if (!(isScalar(value) || (Array.isArray(value) && value.length > 0 && value.every(isScalar)))) {
    fail(`${where}.value must be a number, boolean, string or a list of them, got ${JSON.stringify(value)}`);
  }
  if (c.filter !== undefined && c.filter !== null && typeof c.filter !== "string")
    fail(`${where}.filter must be a string`);
  return { value: value as ScalarOrGradient, filter: (c.filter as string | null) ?? undefined };
}
