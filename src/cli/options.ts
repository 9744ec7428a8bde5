/** Option parsers for commander that reject bad values as usage errors (exit code 2). */
import { statSync } from "node:fs";
import { InvalidArgumentError, Option } from "commander";
import type { Extractor } from "../answers/index.ts";
import {
  COMPUTE_DTYPES,
  ENGINE_DEVICES,
  parseComputeDtype,
  parseDevice,
  selectComputeDtype,
  selectDevice,
} from "../runtime/device.ts";
import { UsageError } from "../util/errors.ts";

export function parseIntOption(name: string, min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim()))
      throw new InvalidArgumentError(`${name} must be an integer, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in [${min}, ${max}], got ${n}`);
    return n;
  };
}

export function parseFloatOption(
  name: string,
  min = Number.NEGATIVE_INFINITY,
  max = Number.POSITIVE_INFINITY,
) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name} must be a number, got "${value}"`);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in [${min}, ${max}], got ${n}`);
    return n;
  };
}

/** Comma-separated positive integers, e.g. "1,2,4,8". */
export function parseIntList(name: string) {
  return (value: string): number[] => {
    const parts = value.split(",").map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1))
      throw new InvalidArgumentError(`${name} must be comma-separated positive integers, got "${value}"`);
    return parts.map(Number);
  };
}

export function parseChoice<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value))
      throw new InvalidArgumentError(`${name} must be one of ${choices.join(", ")}, got "${value}"`);
    return value as T;
  };
}

/** A flag naming an output file must not name an existing folder (checked before any work). */
export function checkOutputFile(path: string, flag: string): void {
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(path);
  } catch {
    return; // absent: it will be created
  }
  if (st.isDirectory()) throw new UsageError(`${flag} ${path}: is a folder; give a file path`);
}

/** A flag naming an output folder must not name an existing file (checked before any work). */
export function checkOutputFolder(path: string, flag: string): void {
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(path);
  } catch {
    return;
  }
  if (!st.isDirectory()) throw new UsageError(`${flag} ${path}: is a file; give a folder path`);
}

/** A flag whose value `parse` checks (a UsageError becomes commander's own error) and `select` records. */
function settingOption<T>(
  flags: string,
  help: string,
  parse: (value: string) => T,
  select: (value: T) => void,
): Option {
  return new Option(flags, help).argParser((value: string) => {
    let v: T;
    try {
      v = parse(value);
    } catch (e) {
      throw e instanceof UsageError ? new InvalidArgumentError(e.message) : e;
    }
    select(v);
    return value;
  });
}

/**
 * `--device wasm|webgpu`, the engine's device, for every command that runs the engine. The choice is made
 * as the flag is parsed (src/runtime/device.ts), before the command starts the engine; without the flag,
 * TTRL_DEVICE or wasm.
 */
export function deviceOption(): Option {
  return settingOption(
    "--device <name>",
    `engine device: ${ENGINE_DEVICES.join(" or ")} (webgpu: a GPU through Dawn; default: TTRL_DEVICE or wasm)`,
    (v) => parseDevice(v),
    selectDevice,
  );
}

/**
 * `--compute-dtype float32|float16`, the precision of the model's matmuls, beside `--device` on every
 * command that runs the engine. Chosen as the flag is parsed (src/runtime/device.ts); float16 (mixed
 * precision) needs `--device webgpu` on an adapter with shader-f16, checked when the engine starts.
 */
export function computeDtypeOption(): Option {
  return settingOption(
    "--compute-dtype <dtype>",
    `precision of the model's matmuls: ${COMPUTE_DTYPES.join(" or ")} (float16: mixed precision, float32 weights and everything else; --device webgpu on an adapter with shader-f16 only; default: TTRL_COMPUTE_DTYPE or float32)`,
    (v) => parseComputeDtype(v),
    selectComputeDtype,
  );
}

/**
 * An answer-extraction flag: one of `kinds` or `regex:PATTERN` (a valid, non-empty JavaScript regex).
 * `ttrl grade --extract` also takes `tags`; `ttrl data import --answer-extract` works on free text only.
 */
export function parseExtractor(flag: string, kinds: readonly ("tags" | "gsm8k" | "last-number")[]) {
  return (value: string): Extractor => {
    if ((kinds as readonly string[]).includes(value)) return value as Extractor;
    if (value.startsWith("regex:")) {
      const p = value.slice(6);
      if (p === "")
        throw new InvalidArgumentError(`${flag} regex: needs a pattern, e.g. regex:Cevap: (\\S+)`);
      try {
        new RegExp(p, "g");
      } catch (e) {
        throw new InvalidArgumentError(`${flag} ${value}: invalid regex: ${(e as Error).message}`);
      }
      return value as Extractor;
    }
    throw new InvalidArgumentError(`${flag} must be ${kinds.join(", ")} or regex:<pattern>, got "${value}"`);
  };
}
