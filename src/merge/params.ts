/**
 * Parameter resolution as mergekit does it: filters (first entry whose filter is missing, `*`, or a
 * case-sensitive substring of the tensor name), gradients over a slice's layers, precedence from the most
 * specific setting (source, slice) to the top level, then the method's default.
 */
import type { Conditional, ParameterSetting, Parameters, Scalar } from "./config.ts";

export type ParamKind = "float" | "bool";
export interface ParamSpec {
  name: string;
  kind: ParamKind;
  /** shared: one value per tensor; input: one per input model; nonBase: one per non-base input. */
  scope: "shared" | "input" | "nonBase";
  default?: number | boolean;
  /** Allowed range for floats (inclusive). */
  min?: number;
  max?: number;
}

export class ParamError extends Error {}

/** Validate one scalar as pydantic does in lax mode (numeric strings to floats, yes/no strings to booleans). */
export function validateScalar(spec: ParamSpec, v: Scalar): number | boolean {
  if (spec.kind === "bool") {
    if (typeof v === "boolean") return v;
    if (typeof v === "number" && (v === 0 || v === 1)) return v === 1;
    if (typeof v === "string") {
      const s = v.trim().toLowerCase();
      if (["true", "t", "yes", "y", "on", "1"].includes(s)) return true;
      if (["false", "f", "no", "n", "off", "0"].includes(s)) return false;
    }
    throw new ParamError(`${spec.name} must be a boolean, got ${JSON.stringify(v)}`);
  }
  let x: number;
  if (typeof v === "number") x = v;
  else if (typeof v === "boolean") x = v ? 1 : 0;
  else {
    const s = v.trim();
    x = s === "" ? Number.NaN : Number(s);
    if (!Number.isFinite(x) && !/^[+-]?(inf(inity)?|nan)$/i.test(s)) {
      throw new ParamError(`${spec.name} must be a number, got ${JSON.stringify(v)}`);
    }
  }
  if (!Number.isFinite(x))
    throw new ParamError(`${spec.name} must be a finite number, got ${JSON.stringify(v)}`);
  if ((spec.min !== undefined && x < spec.min) || (spec.max !== undefined && x > spec.max)) {
    throw new ParamError(`${spec.name} must be in [${spec.min ?? "-inf"}, ${spec.max ?? "inf"}], got ${x}`);
  }
  return x;
}

/**
 * A gradient's value at position `t` ∈ [0, 1]: `scaled = t·(len−1)`, linear interpolation between the two
 * neighbouring entries (numbers); lists that are not all numbers step (`values[int(scaled)]`).
 */
export function gradientValue(values: (number | boolean)[], t: number): number | boolean {
  const numeric = values.every((v) => typeof v === "number");
  if (!numeric) return values[Math.trunc(t * (values.length - 1))];
  const scaled = t * (values.length - 1);
  const i0 = Math.trunc(scaled);
  const i1 = Math.min(values.length - 1, i0 + 1);
  const frac = scaled - i0;
  return (1 - frac) * (values[i0] as number) + frac * (values[i1] as number);
}

/** The position of layer `i` of `n` in a slice: i/(n−1), or 1 for a one-layer slice. */
export function layerPosition(i: number, n: number): number {
  return n > 1 ? i / (n - 1) : 1;
}

function isConditional(s: unknown): s is Conditional {
  return typeof s === "object" && s !== null && !Array.isArray(s);
}

/** Evaluate one setting for a tensor; undefined when no filter matches. */
export function evaluateSetting(
  spec: ParamSpec,
  setting: ParameterSetting,
  tensorName: string,
  t: number,
): number | boolean | undefined {
  if (isConditional(setting)) return evaluateSetting(spec, [setting], tensorName, t);
  if (!Array.isArray(setting)) return validateScalar(spec, setting);
  if (setting.length === 0) return undefined;
  if (setting.every((e) => !isConditional(e))) {
    const values = (setting as Scalar[]).map((e) => validateScalar(spec, e));
    const v = gradientValue(values, t);
    return typeof v === "number" ? validateScalar(spec, v) : v;
  }
  for (const cond of setting as Conditional[]) {
    if (
      cond.filter === undefined ||
      cond.filter === "*" ||
      (tensorName !== "" && tensorName.includes(cond.filter))
    ) {
      return evaluateSetting(spec, cond.value, tensorName, t);
    }
  }
  return undefined;
}

/** Resolve a parameter from settings in descending precedence; falls back to the default. */
export function resolveParameter(
  spec: ParamSpec,
  scopes: (Parameters | undefined)[],
  tensorName: string,
  t: number,
): number | boolean | undefined {
  for (const scope of scopes) {
    if (scope && Object.hasOwn(scope, spec.name)) {
      const v = evaluateSetting(spec, scope[spec.name], tensorName, t);
      if (v !== undefined) return v;
    }
  }
  return spec.default;
}
