/** Compare two checkpoints the way the parity tests define equality. */
import { Checkpoint } from "../../src/io/safetensors.ts";

export interface Diff {
  name: string;
  dtype: string;
  n: number;
  differing: number;
  maxSteps: number;
  /** Largest |difference| divided by the expected tensor's RMS (how large differences are at the tensor's scale). */
  maxRelToRms: number;
  /** Elements that differ by more than 2 steps, and their largest |difference| / RMS. */
  over2: number;
  maxRelOver2: number;
}

const scratchU = new Uint32Array(1);
const scratchF = new Float32Array(scratchU.buffer);
function floatOf(bits: number, width: 16 | 32): number {
  scratchU[0] = width === 16 ? bits << 16 : bits;
  return scratchF[0];
}

/** Position of a 16- or 32-bit float pattern on the number line (so "steps" = representable values between). */
function ordered(bits: number, width: 16 | 32): number {
  const sign = width === 16 ? 0x8000 : 0x80000000;
  const mag = bits & (sign - 1);
  return (bits & sign) !== 0 ? -mag : mag;
}

export async function compareCheckpoints(
  gotDir: string,
  expDir: string,
): Promise<{ names: [string[], string[]]; meta: string[]; diffs: Diff[] }> {
  const got = await Checkpoint.open(gotDir);
  const exp = await Checkpoint.open(expDir);
  try {
    const meta: string[] = [];
    const diffs: Diff[] = [];
    for (const name of exp.names) {
      if (!got.has(name)) continue;
      const a = got.info(name);
      const b = exp.info(name);
      if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) {
        meta.push(`${name}: ${a.dtype}${JSON.stringify(a.shape)} vs ${b.dtype}${JSON.stringify(b.shape)}`);
        continue;
      }
      const ra = await got.readRaw(name);
      const rb = await exp.readRaw(name);
      const width = a.dtype === "F32" ? 32 : 16;
      const va = width === 32 ? new Uint32Array(ra.buffer) : new Uint16Array(ra.buffer);
      const vb = width === 32 ? new Uint32Array(rb.buffer) : new Uint16Array(rb.buffer);
      let differing = 0;
      let maxSteps = 0;
      let maxAbs = 0;
      let over2 = 0;
      let maxAbsOver2 = 0;
      let sq = 0;
      for (let i = 0; i < va.length; i++) {
        if (va[i] !== vb[i]) {
          differing++;
          const steps = Math.abs(ordered(va[i], width) - ordered(vb[i], width));
          const abs = Math.abs(floatOf(va[i], width) - floatOf(vb[i], width));
          maxSteps = Math.max(maxSteps, steps);
          maxAbs = Math.max(maxAbs, abs);
          if (steps > 2) {
            over2++;
            maxAbsOver2 = Math.max(maxAbsOver2, abs);
          }
        }
      }
      if (differing) for (let i = 0; i < vb.length; i++) sq += floatOf(vb[i], width) ** 2;
      const rms = Math.sqrt(sq / Math.max(1, vb.length));
      diffs.push({
        name,
        dtype: a.dtype,
        n: va.length,
        differing,
        maxSteps,
        maxRelToRms: differing ? maxAbs / rms : 0,
        over2,
        maxRelOver2: over2 ? maxAbsOver2 / rms : 0,
      });
    }
    return { names: [[...got.names].sort(), [...exp.names].sort()], meta, diffs };
  } finally {
    await got.close();
    await exp.close();
  }
}
