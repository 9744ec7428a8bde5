// Single-threaded engine: env.ts sets TTRL_THREADS before the engine's runtime is first imported.
import "./env.ts";
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { prefixArrays, prefixLogprobs, tokenLogprobs } from "../../src/model/forward.ts";
import type { Model } from "../../src/model/index.ts";
import { initPresetModel } from "../../src/model/presets.ts";
import { type Array as JArray, jit, numpy as np, tree, valueAndGrad } from "../../src/runtime/jax.ts";
import {
  chunkByGroups,
  fitPrefixMicroBatch,
  MICRO_BATCH_BYTES,
  packPrefixSequences,
  packSequences,
  type SeqSpec,
} from "../../src/train/batch.ts";
import type { Params } from "../../src/train/optim.ts";
import type { Policy } from "../../src/train/policy.ts";
import { setupRuntime } from "./helpers.ts";

describe("packPrefixSequences", () => {
  it("stores each distinct prompt once and starts every row with its prompt's last token", () => {
    const seqs: SeqSpec[] = [
      { prompt: [1, 5, 6], completion: [7, 8] },
      { prompt: [1, 5, 6], completion: [9] },
      { prompt: [1, 4], completion: [3, 3, 2], train: false },
    ];
    const pb = packPrefixSequences(seqs, 4, 0);
    assert.equal(pb.Pg, 2);
    assert.equal(pb.B, 4);
    assert.deepEqual(Array.from(pb.rows), [0, 0, 1, 0]);
    assert.deepEqual(pb.prefixLen, [2, 1]);
    assert.deepEqual(Array.from(pb.prefix.subarray(0, 3)), [1, 5, 0]);
    assert.deepEqual(Array.from(pb.prefix.subarray(pb.Tp, pb.Tp + 2)), [1, 0]);
    const row = (a: ArrayLike<number>, r: number, n: number) =>
      Array.from(a as Int32Array).slice(r * pb.Tc, r * pb.Tc + n);
    assert.deepEqual(row(pb.ids, 0, 3), [6, 7, 0]);
    assert.deepEqual(row(pb.targets, 0, 3), [7, 8, 0]);
    assert.deepEqual(row(pb.ids, 2, 4), [4, 3, 3, 0]);
    assert.deepEqual(row(pb.targets, 2, 4), [3, 3, 2, 0]);
    assert.deepEqual(row(pb.mask, 0, 3), [1, 1, 0]);
    assert.deepEqual(row(pb.mask, 2, 3), [0, 0, 0]);
    assert.deepEqual(pb.lengths, [2, 1, 0, 0]);
  });
});

describe("chunkByGroups", () => {
  it("fills micro-batches with whole groups, at most `rows` rows and `groups` groups each", () => {
    const g = (...sizes: number[]) =>
      sizes.flatMap((n, i) => Array.from({ length: n }, () => ({ group: i })));
    const shape = (chunks: { group?: number }[][]) => chunks.map((c) => c.map((s) => s.group).join(""));
    assert.deepEqual(shape(chunkByGroups(g(4, 4, 4, 4), 8, 2)), ["00001111", "22223333"]);
    // a group with skipped rows does not let a third group in (the prompt count is a compiled shape)
    assert.deepEqual(shape(chunkByGroups(g(4, 3, 4, 4), 8, 2)), ["0000111", "22223333"]);
    // a group larger than a micro-batch is split
    assert.deepEqual(shape(chunkByGroups(g(6, 2), 4, 1)), ["0000", "00", "11"]);
    assert.deepEqual(chunkByGroups([], 4, 1), []);
  });
});

describe("fitPrefixMicroBatch", () => {
  it("counts each distinct prompt once and halves the rows until a micro-batch fits", () => {
    // 8 prompts of 17 tokens (prefix 16) × 8 completions of 16 tokens: a micro-batch of r rows holds
    // r×16 completion tokens and ceil(r/8) rounded up to a power of two prefixes of 16 tokens.
    const work = Array.from({ length: 64 }, (_, i) => ({
      prompt: Array.from({ length: 17 }, (_, t) => 3 + (i >> 3) + t),
      completion: Array.from({ length: 16 }, () => 5),
    }));
    const policy = (bpt: number) => ({ bytesPerToken: () => bpt }) as unknown as Policy;
    // 64 rows: 64×16 + 8×16 = 1152 tokens; 32 rows: 512 + 4×16 = 576; 16 rows: 256 + 2×16 = 288.
    assert.equal(fitPrefixMicroBatch(64, work, policy(MICRO_BATCH_BYTES / 1152)), 64);
    assert.equal(fitPrefixMicroBatch(64, work, policy(MICRO_BATCH_BYTES / 1151)), 32);
    assert.equal(fitPrefixMicroBatch(64, work, policy(MICRO_BATCH_BYTES / 300)), 16);
    assert.equal(fitPrefixMicroBatch(64, work, { bytesPerToken: undefined } as unknown as Policy), 64);
    assert.throws(
      () => fitPrefixMicroBatch(64, work, policy(MICRO_BATCH_BYTES)),
      /lower max_completion_length/,
    );
  });
});

describe("shared-prompt log-probs", () => {
  let m: Model;
  before(async () => {
    await setupRuntime();
    m = await initPresetModel("tiny", 11);
  });

  it("equal the full-sequence log-probs, and so do their gradients", async () => {
    const p1 = m.tokenizer.encode("Soru: 2 + 3 kaç?\n", { addSpecialTokens: true });
    const p2 = m.tokenizer.encode("Merhaba", { addSpecialTokens: true });
    const seqs: SeqSpec[] = [
      { prompt: p1, completion: [40, 41, 42, 43, 2] },
      { prompt: p2, completion: [50] },
      { prompt: p1, completion: [60, 61] },
      { prompt: [1], completion: [70, 71, 72] },
    ];
    const cfg = m.config;
    const B = 4;
    const full = packSequences(
      seqs,
      B,
      Math.max(...seqs.map((s) => s.prompt.length + s.completion.length)) - 1,
      0,
    );
    const pre = packPrefixSequences(seqs, B, 0);
    const weights = seqs.map((_, r) => r + 1); // distinct per row, so misplaced rows change the loss
    const wFull = new Float32Array(B * full.T);
    const wPre = new Float32Array(B * pre.Tc);
    for (let r = 0; r < B; r++) {
      for (let t = 0; t < full.T; t++) wFull[r * full.T + t] = full.mask[r * full.T + t] * weights[r];
      for (let t = 0; t < pre.Tc; t++) wPre[r * pre.Tc + t] = pre.mask[r * pre.Tc + t] * weights[r];
    }
    const fFull = jit(
      valueAndGrad((p: Params, ids: JArray, tg: JArray, w: JArray) =>
        np.sum(tokenLogprobs(p, cfg, ids, tg).mul(w)),
      ),
    );
    const fPre = jit(
      valueAndGrad((p: Params, a: ReturnType<typeof prefixArrays>, w: JArray) =>
        np.sum(prefixLogprobs(p, cfg, a).mul(w)),
      ),
    );
    const [l1, g1] = fFull(
      tree.ref(m.params),
      np.array(full.ids, { dtype: np.int32 }).reshape([B, full.T]),
      np.array(full.targets, { dtype: np.int32 }).reshape([B, full.T]),
      np.array(wFull).reshape([B, full.T]),
    ) as unknown as [JArray, Params];
    const [l2, g2] = fPre(
      tree.ref(m.params),
      prefixArrays(cfg, pre),
      np.array(wPre).reshape([B, pre.Tc]),
    ) as unknown as [JArray, Params];
    const a = (await l1.data())[0];
    const b = (await l2.data())[0];
    assert.ok(Number.isFinite(a) && a < 0);
    assert.ok(Math.abs(a - b) < 1e-4 * Math.abs(a), `${a} vs ${b}`);
    for (const k of Object.keys(g1)) {
      const x = await g1[k].data();
      const y = await g2[k].data();
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < x.length; i++) {
        scale = Math.max(scale, Math.abs(x[i]));
        diff = Math.max(diff, Math.abs(x[i] - y[i]));
      }
      assert.ok(scale > 0, `${k}: zero gradient`);
      assert.ok(diff <= 1e-4 * scale + 1e-6, `${k}: gradients differ by ${diff} (scale ${scale})`);
    }
    fFull.dispose();
    fPre.dispose();
  });
});
