/**
 * Defects found against mergekit 0.1.5 and by killing merges (issue 15, items 3, 5, 11): each test here
 * failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  bf16ToF32,
  type DType,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  roundToDtypeInPlace,
} from "../../src/io/dtype.ts";
import { runMerge } from "../../src/merge/index.ts";
import { dareTensor } from "../../src/merge/methods/dare.ts";
import type { TaskTensorFn } from "../../src/merge/methods/task_arithmetic.ts";
import { tiesTensor } from "../../src/merge/methods/ties.ts";
import { Rng } from "../../src/util/rng.ts";

const FIX = resolve("test/fixtures/merge");
const root = mkdtempSync(join(tmpdir(), "ttrl-merge-defects-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const dirFor = (label: string) => {
  const d = join(root, `${label}-${counter++}`);
  mkdirSync(d);
  return d;
};

describe("linear merge whose weights sum to 0 (issue 15 item 3)", () => {
  it("is refused before any output is written, naming the tensor and the weights", async () => {
    const dir = dirFor("linear0");
    const cfg = join(dir, "c.yml");
    writeFileSync(
      cfg,
      [
        "models:",
        `  - model: ${FIX}/model_a`,
        "    parameters:",
        "      weight: 1.0",
        `  - model: ${FIX}/model_b`,
        "    parameters:",
        "      weight: -1.0",
        "merge_method: linear",
        "dtype: float32",
        "",
      ].join("\n"),
    );
    const out = join(dir, "out");
    await assert.rejects(
      runMerge(cfg, { out, progress: false }),
      /c\.yml: linear: the weights of tensor model\.embed_tokens\.weight sum to 0 .*normalize/,
    );
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), ["c.yml"]);
  });

  it("normalize: false with weights summing to 0 is a valid (difference) merge", async () => {
    const dir = dirFor("linear0-nonorm");
    const cfg = join(dir, "c.yml");
    writeFileSync(
      cfg,
      `models:\n  - model: ${FIX}/model_a\n    parameters:\n      weight: 1.0\n  - model: ${FIX}/model_b\n    parameters:\n      weight: -1.0\nmerge_method: linear\nparameters:\n  normalize: false\ndtype: float32\n`,
    );
    await runMerge(cfg, { out: join(dir, "out"), progress: false, copyTokenizer: false });
    assert.ok(existsSync(join(dir, "out", "model.safetensors")));
  });
});

/**
 * mergekit's generalized task arithmetic with sign consensus, written op by op as torch runs it in the
 * merge dtype: every tensor op's result is rounded to `work` (torch accumulates a reduced-precision sum in
 * float32 and rounds once). Densities of 1 (no sparsification), lambda 1.
 */
function mergekitConsensus(
  base: Float32Array,
  models: Float32Array[],
  weights: number[],
  normalize: boolean,
  work: DType,
): Float32Array {
  const r = (x: number) => roundToDtypeInPlace(new Float32Array([x]), work)[0];
  const n = base.length;
  const w = weights.map(r);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const wd = models.map((m, k) => r(r(m[i] - base[i]) * w[k]));
    let sumW = 0;
    for (const d of wd) sumW = Math.fround(sumW + d);
    const majority = r(sumW) >= 0 ? 1 : -1;
    let mixed = 0;
    let divisor = 0;
    wd.forEach((d, k) => {
      if (Math.sign(d) !== majority) return;
      mixed = Math.fround(mixed + d);
      divisor = Math.fround(divisor + w[k]);
    });
    let m = r(mixed);
    let div = r(divisor);
    if (div === 0) div = 1;
    if (normalize) m = r(m / div);
    out[i] = r(base[i] + m);
  }
  return out;
}

const encode = (x: Float32Array, dtype: DType) => {
  const h = dtype === "BF16" ? f32ToBf16(x) : f32ToF16(x);
  return { raw: new Uint8Array(h.buffer, h.byteOffset, h.byteLength), dtype };
};
const decode = (r: Uint8Array, dtype: DType) => {
  const h = new Uint16Array(r.buffer, r.byteOffset, r.byteLength / 2);
  return dtype === "BF16" ? bf16ToF32(h) : f16ToF32(h);
};

/** The per-tensor function of ties, or of dare_ties (densities of 1: no draws, no sparsification). */
const mergeOf = (method: "ties" | "dare_ties"): TaskTensorFn =>
  method === "ties" ? tiesTensor : dareTensor(new Rng(0), true);

describe("ties / dare_ties with normalize in bf16 and fp16 (issue 15 item 5)", () => {
  it("the agreeing weights are summed in the merge dtype: 0.69921875 + 0.5 = 1.203125 in bf16", () => {
    // both deltas 1.5: mixed = bf16(1.046875 + 0.75) = 1.796875; divisor = bf16(0.69921875 + 0.5) = 1.203125
    const base = new Float32Array([0]);
    const x = new Float32Array([1.5]);
    for (const method of ["ties", "dare_ties"] as const) {
      const r = mergeOf(method)(
        encode(base, "BF16"),
        [encode(x, "BF16"), encode(x, "BF16")],
        { weights: [0.7, 0.5], densities: [1, 1], normalize: true, rescale: false, lambda: 1 },
        "BF16",
        "BF16",
      );
      // 1.796875 / 1.203125 → 1.4921875 in bf16 (the float32 divisor 1.19921875 gives 1.5)
      assert.equal(decode(r, "BF16")[0], 1.4921875, method);
    }
  });

  it("equals mergekit's op-by-op rounding on random tensors (property, bf16 and fp16)", () => {
    const vals = fc.array(fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true }), {
      minLength: 1,
      maxLength: 24,
    });
    fc.assert(
      fc.property(
        vals,
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.double({ min: 0.05, max: 1.5, noNaN: true }), { minLength: 4, maxLength: 4 }),
        fc.constantFrom<DType>("BF16", "F16"),
        fc.constantFrom("ties" as const, "dare_ties" as const),
        fc.integer(),
        (b0, k, ws, work, method, seed) => {
          const n = b0.length;
          let s = seed | 0;
          const next = () => {
            s = (Math.imul(s, 1103515245) + 12345) | 0;
            return ((s >>> 8) & 0xffff) / 0x10000 - 0.5;
          };
          const round = (x: Float32Array) => decode(encode(x, work).raw, work);
          const base = round(Float32Array.from(b0));
          const models = Array.from({ length: k }, () => round(base.map((v) => v + next())));
          const weights = ws.slice(0, k);
          const got = decode(
            mergeOf(method)(
              encode(base, work),
              models.map((m) => encode(m, work)),
              {
                weights,
                densities: weights.map(() => 1),
                normalize: true,
                rescale: false,
                lambda: 1,
              },
              work,
              work,
            ),
            work,
          );
          const exp = mergekitConsensus(base, models, weights, true, work);
          for (let i = 0; i < n; i++)
            assert.ok(
              Object.is(got[i], exp[i]) || got[i] === exp[i],
              `element ${i}: ${got[i]} vs ${exp[i]} (n=${n})`,
            );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("stale temp folders of killed merges (issue 15 item 11)", () => {
  it("are removed at the next merge into the same parent; a live merge's temp folder is kept", async () => {
    const dir = dirFor("stale");
    // a PID that surely belongs to no running process: a child that has exited
    const dead = spawnSync(process.execPath, ["-e", ""]).pid as number;
    const stale = join(dir, `.out.ttrl-tmp-${dead}-0badf00d`);
    const staleOld = join(dir, `.other.ttrl-tmp-${dead}-12345678.old`);
    // killed between moving the previous output aside and moving the new one in: the previous comes back
    const orphanOld = join(dir, `.gone.ttrl-tmp-${dead}-abcdef01.old`);
    const live = join(dir, `.out.ttrl-tmp-${process.pid}-feedbeef`); // a merge still running (this process)
    const unrelated = join(dir, ".out.ttrl-tmp-notapid");
    for (const d of [stale, staleOld, orphanOld, live, unrelated, join(dir, "other")]) {
      mkdirSync(d);
      writeFileSync(join(d, "model-00001-of-00002.safetensors"), "partial");
    }
    await runMerge(`${FIX}/configs/slerp_scalar.yml`, {
      out: join(dir, "out"),
      progress: false,
      copyTokenizer: false,
    });
    assert.equal(existsSync(stale), false, "stale temp folder of a dead merge");
    assert.equal(existsSync(staleOld), false, "stale .old folder of a dead merge");
    assert.equal(existsSync(live), true, "a running merge's temp folder must be kept");
    assert.equal(existsSync(unrelated), true, "names that are not ttrl temp folders are left alone");
    assert.equal(existsSync(join(dir, "gone", "model-00001-of-00002.safetensors")), true, "restored");
    assert.deepEqual(
      readdirSync(dir).sort(),
      [".out.ttrl-tmp-notapid", `.out.ttrl-tmp-${process.pid}-feedbeef`, "gone", "other", "out"].sort(),
    );
  });
});

describe("non-finite merges are never saved (issue 15 item 3)", () => {
  /** model_b with a NaN and an Inf, written byte by byte (the library's writer refuses non-finite weights). */
  async function modelWithNaN(dir: string): Promise<string> {
    const { cpSync } = await import("node:fs");
    const { Checkpoint } = await import("../../src/io/safetensors.ts");
    const bad = join(dir, "model_nan");
    // model_b is sharded: copy its other files, then write one model.safetensors
    cpSync(`${FIX}/model_b`, bad, { recursive: true, filter: (f) => !/safetensors/.test(f) });
    const ck = await Checkpoint.open(`${FIX}/model_b`);
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const n of ck.names) {
      const data = await ck.readF32(n);
      if (n === "model.layers.2.mlp.down_proj.weight") data[5] = Number.NaN;
      if (n === "model.layers.1.self_attn.v_proj.weight") data[0] = Number.POSITIVE_INFINITY;
      const h = f32ToBf16(data);
      parts.push(new Uint8Array(h.buffer, h.byteOffset, h.byteLength));
      header[n] = { dtype: "BF16", shape: ck.info(n).shape, data_offsets: [at, at + h.byteLength] };
      at += h.byteLength;
    }
    await ck.close();
    let json = JSON.stringify(header);
    json += " ".repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(join(bad, "model.safetensors"), Buffer.concat([len, Buffer.from(json), ...parts]));
    return bad;
  }

  it("an input with NaN/Inf stops the merge with an error naming the tensor; nothing is written", async () => {
    const dir = dirFor("nonfinite");
    const bad = await modelWithNaN(dir);
    const slerp = (dtype: string) =>
      `models:\n  - model: ${FIX}/model_a\n  - model: ${bad}\nmerge_method: slerp\nbase_model: ${FIX}/model_a\nparameters:\n  t: 0.3\ndtype: ${dtype}\n`;
    const configs: [string, string][] = [
      ["slerp_bf16_kernels", slerp("bfloat16")],
      ["slerp_float32", slerp("float32")],
      [
        "linear",
        `models:\n  - model: ${FIX}/model_a\n    parameters:\n      weight: 1\n  - model: ${bad}\n    parameters:\n      weight: 1\nmerge_method: linear\ndtype: bfloat16\n`,
      ],
      [
        "task_arithmetic",
        `models:\n  - model: ${bad}\n    parameters:\n      weight: 0.5\nmerge_method: task_arithmetic\nbase_model: ${FIX}/model_a\ndtype: bfloat16\n`,
      ],
    ];
    for (const [label, text] of configs) {
      const cfg = join(dir, `${label}.yml`);
      writeFileSync(cfg, text);
      const out = join(dir, `out_${label}`);
      await assert.rejects(
        runMerge(cfg, { out, progress: false }),
        /tensor "model\.layers\.1\.self_attn\.v_proj\.weight" \[8, 16\] has a non-finite value/,
        label,
      );
      assert.equal(existsSync(out), false, label);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes("ttrl-tmp")),
        [],
        label,
      );
    }
  });
});
