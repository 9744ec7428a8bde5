/** Linear merge (model soups): Σ wᵢ·xᵢ in float32, in input order, divided by Σ wᵢ when `normalize`. */
import type { DType } from "../../io/dtype.ts";
import {
  CHUNK,
  loadChunk,
  numelOfStored,
  outBytes,
  type StoredTensor,
  storeChunk,
} from "../kernels/tensors.ts";
import { fr } from "../kernels/torch.ts";
import { type MergeMethod, perInputValues } from "./types.ts";

export function linearTensor(
  inputs: StoredTensor[],
  weights: number[],
  normalize: boolean,
  work: DType,
  out: DType,
): Uint8Array {
  const n = numelOfStored(inputs[0]);
  const w = weights.map(fr);
  let denom = 0;
  for (const x of w) denom = fr(denom + x);
  const acc = new Float32Array(Math.min(CHUNK, n));
  const tmp = new Float32Array(Math.min(CHUNK, n));
  const dst = outBytes(n, out);
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const ac = acc.length === m ? acc : acc.subarray(0, m);
    ac.fill(0);
    for (let k = 0; k < inputs.length; k++) {
      const x = loadChunk(inputs[k], s, m, work, tmp);
      const wk = w[k];
      for (let i = 0; i < m; i++) ac[i] = ac[i] + fr(x[i] * wk);
    }
    if (normalize) for (let i = 0; i < m; i++) ac[i] = ac[i] / denom;
    storeChunk(ac, work, out, dst, s);
  }
  return dst;
}

export const linear: MergeMethod = {
  name: "linear",
  prettyName: "Linear",
  referenceUrl: "https://arxiv.org/abs/2203.05482",
  params: [
    { name: "weight", kind: "float", scope: "input" },
    { name: "normalize", kind: "bool", scope: "shared", default: true },
  ],
  baseRequired: false,
  minInputs: 1,
  check(t) {
    if (!t.shared.normalize) return null;
    const w = perInputValues(t, "weight");
    let sum = 0;
    for (const x of w) sum = fr(sum + fr(x));
    if (sum !== 0) return null;
    return `linear: the weights of tensor ${t.name} sum to 0 (${w.join(", ")}), and normalize: true divides by their sum; give weights with a non-zero sum or set normalize: false`;
  },
  merge: (job) =>
    linearTensor(
      job.inputs,
      perInputValues(job, "weight"),
      job.shared.normalize as boolean,
      job.work,
      job.out,
    ),
};
