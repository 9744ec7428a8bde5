import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { bf16ToF32, f32ToBf16 } from "../../src/io/dtype.ts";
import { Checkpoint, saveCheckpoint } from "../../src/io/safetensors.ts";
import { parseMergeConfig } from "../../src/merge/config.ts";
import { parseSize, runMerge, TOKENIZER_FILES } from "../../src/merge/index.ts";
import type { StoredTensor } from "../../src/merge/kernels/tensors.ts";
import { fma32, torchSplit, torchSum } from "../../src/merge/kernels/torch.ts";
import { peerSlerpStats, slerpCoefficients, slerpF32, slerpTensor } from "../../src/merge/methods/slerp.ts";
import {
  evaluateSetting,
  gradientValue,
  layerPosition,
  type ParamSpec,
  resolveParameter,
} from "../../src/merge/params.ts";
import { Rng } from "../../src/util/rng.ts";
import { compareCheckpoints } from "./compare.ts";

const FIX = "test/fixtures/merge";
const root = mkdtempSync(join(tmpdir(), "ttrl-merge-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string) => {
  const d = join(root, `${counter++}`);
  mkdirSync(d);
  return join(d, name);
};

/** The issue's equality: same names, shapes and dtypes; ≤ 0.1% of elements differ, each by ≤ 2 steps. */
async function assertParity(
  got: string,
  exp: string,
  opts: { maxFraction?: number; maxSteps?: number } = {},
) {
  const r = await compareCheckpoints(got, exp);
  assert.deepEqual(r.names[0], r.names[1], "tensor names");
  assert.deepEqual(r.meta, [], "dtypes and shapes");
  let total = 0;
  let differing = 0;
  for (const d of r.diffs) {
    total += d.n;
    differing += d.differing;
    if (opts.maxSteps !== undefined || d.differing) {
      assert.ok(
        d.maxSteps <= (opts.maxSteps ?? 2),
        `${d.name}: ${d.differing} elements differ, by up to ${d.maxSteps} steps`,
      );
    }
  }
  assert.ok(differing <= total * (opts.maxFraction ?? 0.001), `${differing} of ${total} elements differ`);
  return { total, differing };
}

function sameFile(a: string, b: string) {
  assert.equal(readFileSync(a, "utf8"), readFileSync(b, "utf8"), `${a} vs ${b}`);
}

/** mergekit lists the models of its card in Python set order (random per process): compare as sorted lines. */
function sameCard(a: string, b: string) {
  const norm = (p: string) => readFileSync(p, "utf8").split("\n").sort();
  assert.deepEqual(norm(a), norm(b), `${a} vs ${b}`);
}

describe("parity with mergekit (fixtures made by scripts/fixtures/make_merge_fixtures.py)", () => {
  for (const name of ["seed_slerp", "slerp_scalar", "linear", "task_arithmetic", "layer_slices"]) {
    it(`${name}: same tensors, config.json, model card and tokenizer files`, async () => {
      const out = fresh(name);
      const s = await runMerge(`${FIX}/configs/${name}.yml`, { out, progress: false });
      const exp = `${FIX}/expected/${name}`;
      const { differing } = await assertParity(out, exp);
      // these configs are bit-exact today; keep it so (the issue's tolerance is for other libms)
      assert.equal(differing, 0);
      assert.deepEqual(
        JSON.parse(readFileSync(join(out, "config.json"), "utf8")),
        JSON.parse(readFileSync(join(exp, "config.json"), "utf8")),
      );
      sameCard(join(out, "README.md"), join(exp, "README.md"));
      sameFile(join(out, "mergekit_config.yml"), join(exp, "mergekit_config.yml"));
      const expFiles = readdirSync(exp).filter((f) => TOKENIZER_FILES.includes(f));
      assert.ok(expFiles.includes("tokenizer.json"));
      for (const f of expFiles) sameFile(join(out, f), join(exp, f));
      assert.deepEqual(readdirSync(out).sort(), readdirSync(exp).sort());
      assert.equal(s.files.length, 1);
      const f = await Checkpoint.open(out);
      assert.equal((await import("node:fs")).statSync(join(out, "model.safetensors")).isFile(), true);
      await f.close();
    });
  }

  it("sharded output: same tensors, shard count, index total_size, and {format: pt} metadata", async () => {
    const out = fresh("seed_slerp_sharded");
    const exp = `${FIX}/expected/seed_slerp_sharded`;
    await runMerge(`${FIX}/configs/seed_slerp.yml`, { out, outShardSize: parseSize("20K"), progress: false });
    await assertParity(out, exp);
    const a = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
    const b = JSON.parse(readFileSync(join(exp, "model.safetensors.index.json"), "utf8"));
    assert.equal(a.metadata.total_size, b.metadata.total_size);
    assert.deepEqual(Object.keys(a.weight_map).sort(), Object.keys(b.weight_map).sort());
    assert.deepEqual(new Set(Object.values(a.weight_map)), new Set(Object.values(b.weight_map)));
    const ck = await Checkpoint.open(out);
    for (const n of ck.names) {
      const f = ck.info(n).file;
      assert.ok(f.endsWith(a.weight_map[n]));
    }
    await ck.close();
    sameCard(join(out, "README.md"), join(exp, "README.md"));
  });

  it("ties: equal except where torch's unstable argsort breaks ties in |delta| at the top-k boundary", async () => {
    const out = fresh("ties");
    await runMerge(`${FIX}/configs/ties.yml`, { out, progress: false });
    // bf16 deltas tie often; each tie broken differently swaps one kept element for another (2 per tensor)
    const r = await compareCheckpoints(out, `${FIX}/expected/ties`);
    assert.deepEqual(r.meta, []);
    let total = 0;
    let differing = 0;
    for (const d of r.diffs) {
      total += d.n;
      differing += d.differing;
      assert.ok(d.differing <= 4, `${d.name}: ${d.differing} elements differ`);
    }
    assert.ok(differing <= total * 0.005, `${differing} of ${total}`);
  });
});

const bf = (x: Float32Array): StoredTensor => {
  const h = f32ToBf16(x);
  return { raw: new Uint8Array(h.buffer), dtype: "BF16" };
};
const f32arr = fc.float32Array({
  minLength: 1,
  maxLength: 200,
  noNaN: true,
  noDefaultInfinity: true,
  min: -1e6,
  max: 1e6,
});

describe("SLERP properties", () => {
  // −0 in the base becomes +0 (−0·c0 + 0·b), as in mergekit: compared as values
  const sameValues = (x: Float32Array, y: Float32Array) => {
    assert.equal(x.length, y.length);
    for (let i = 0; i < x.length; i++) assert.ok(x[i] === y[i], `element ${i}: ${x[i]} vs ${y[i]}`);
  };
  const bfValues = (r: Uint8Array) => bf16ToF32(new Uint16Array(r.buffer, r.byteOffset, r.byteLength / 2));
  it("t = 0 gives the base and t = 1 the other model exactly (float32 and bfloat16)", () => {
    fc.assert(
      fc.property(f32arr, fc.integer(), (a, seed) => {
        const rng = new Rng(seed);
        const b = Float32Array.from(a, () => rng.normal() * 10);
        sameValues(slerpF32(a, b, 0), a);
        sameValues(slerpF32(a, b, 1), b);
        sameValues(bfValues(slerpTensor(bf(a), bf(b), 0, "BF16", "BF16")), bfValues(bf(a).raw));
        sameValues(bfValues(slerpTensor(bf(a), bf(b), 1, "BF16", "BF16")), bfValues(bf(b).raw));
      }),
      { numRuns: 200 },
    );
  });

  it("slerp(a, a, t) = a (exactly in bfloat16, within one float32 ulp in float32)", () => {
    fc.assert(
      fc.property(f32arr, fc.double({ min: 0, max: 1, noNaN: true }), (a, t) => {
        // mergekit normalises only norms > 1e-8; below that the cosine is not 1 and the result is not a
        const norm = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));
        fc.pre(Math.fround(norm(a)) > 1e-8 && Math.fround(norm(bfValues(bf(a).raw))) > 1e-8);
        sameValues(bfValues(slerpTensor(bf(a), bf(a), t, "BF16", "BF16")), bfValues(bf(a).raw));
        const r = slerpF32(a, a, t);
        // each float32 product rounds once, the sum once: within an ulp (or two subnormal steps)
        for (let i = 0; i < a.length; i++)
          assert.ok(
            Math.abs(r[i] - a[i]) <= Math.max(Math.abs(a[i]) * 2 ** -23, 2 ** -148),
            `${r[i]} vs ${a[i]}`,
          );
      }),
      { numRuns: 200 },
    );
  });

  it("interpolates on the great circle: orthogonal unit vectors at t = 0.5 give (a+b)/√2", () => {
    const a = new Float32Array([1, 0, 0]);
    const b = new Float32Array([0, 1, 0]);
    const r = slerpF32(a, b, 0.5);
    assert.ok(Math.abs(r[0] - Math.SQRT1_2) < 1e-6 && Math.abs(r[1] - Math.SQRT1_2) < 1e-6 && r[2] === 0);
    // nearly parallel (|dot| > 0.9995): plain lerp coefficients
    const c = slerpCoefficients(0.25, 0.99999, 1, 1);
    assert.equal(c.lerp, true);
    assert.equal(c.c0, Math.fround(0.75));
    assert.equal(c.c1, 0.25);
    // zero tensors: norms below 1e-8 are not divided by
    assert.deepEqual(
      slerpF32(new Float32Array(4), new Float32Array([1, 2, 3, 4]), 0.5),
      new Float32Array(
        [0, 0, 0, 0].map((_, i) =>
          Math.fround(
            Math.fround(Math.sin(Math.fround(Math.fround(0.5) * Math.fround(Math.PI / 2))) / 1) * (i + 1),
          ),
        ),
      ),
    );
  });
});

describe("parameter resolution", () => {
  const t: ParamSpec = { name: "t", kind: "float", scope: "shared", min: 0, max: 1 };
  it("maps layers to gradient values like mergekit (table)", () => {
    const attn = [0, 0.5, 0.3, 0.7, 1];
    const mlp = [1, 0.5, 0.7, 0.3, 0];
    // 4 layers: positions 0, 1/3, 2/3, 1
    const got4 = [0, 1, 2, 3].map((i) => gradientValue(attn, layerPosition(i, 4)) as number);
    const exp4 = [0, 0.5 - 0.2 / 3, 0.3 + 0.8 / 3, 1];
    for (const [i, g] of got4.entries())
      assert.ok(Math.abs(g - exp4[i]) < 1e-12, `layer ${i}: ${g} vs ${exp4[i]}`);
    // 32 layers (the seed): selected layers, computed by hand from scaled = i/31·4
    const table: [number, number, number][] = [
      [0, 0, 1],
      [8, 0.5 - 0.2 * (32 / 31 - 1), 0.5 + 0.2 * (32 / 31 - 1)],
      [16, 0.3 + 0.4 * (64 / 31 - 2), 0.7 - 0.4 * (64 / 31 - 2)],
      [31, 1, 0],
    ];
    for (const [i, a, m] of table) {
      assert.ok(
        Math.abs((gradientValue(attn, layerPosition(i, 32)) as number) - a) < 1e-12,
        `attn layer ${i}`,
      );
      assert.ok(Math.abs((gradientValue(mlp, layerPosition(i, 32)) as number) - m) < 1e-12, `mlp layer ${i}`);
    }
    assert.equal(layerPosition(0, 1), 1);
  });

  it("takes the first matching filter (substring, case-sensitive), then the fallback", () => {
    const setting = [{ filter: "self_attn", value: [0, 1] }, { filter: "mlp", value: 0.25 }, { value: 0.5 }];
    assert.equal(evaluateSetting(t, setting, "model.layers.3.self_attn.q_proj.weight", 0.5), 0.5);
    assert.equal(evaluateSetting(t, setting, "model.layers.3.self_attn.q_proj.weight", 1), 1);
    assert.equal(evaluateSetting(t, setting, "model.layers.3.mlp.up_proj.weight", 0.3), 0.25);
    assert.equal(evaluateSetting(t, setting, "model.layers.3.SELF_ATTN.q", 0.3), 0.5);
    assert.equal(evaluateSetting(t, setting, "lm_head.weight", 0), 0.5);
    assert.equal(evaluateSetting(t, [{ filter: "mlp", value: 1 }], "lm_head.weight", 0), undefined);
    // precedence: the most specific scope that resolves wins, then the default
    const w: ParamSpec = { name: "weight", kind: "float", scope: "input", default: 7 };
    assert.equal(
      resolveParameter(w, [{ weight: [{ filter: "mlp", value: 1 }] }, { weight: 2 }], "x.attn", 0),
      2,
    );
    assert.equal(resolveParameter(w, [undefined, {}], "x", 0), 7);
  });

  it("steps through non-numeric lists and reads YAML 1.1 booleans and numeric strings", () => {
    const b: ParamSpec = { name: "normalize", kind: "bool", scope: "shared" };
    assert.equal(evaluateSetting(b, [true, false, true], "x", 0.6), false);
    assert.equal(evaluateSetting(b, "yes", "x", 0), true);
    assert.equal(evaluateSetting(t, "1e-1", "x", 0), 0.1);
    assert.throws(() => evaluateSetting(t, 1.5, "x", 0), /t must be in \[0, 1\], got 1.5/);
    const cfgPath = fresh("c.yml");
    writeFileSync(
      cfgPath,
      "models:\n  - model: a\nmerge_method: linear\nparameters:\n  normalize: no\n  weight: 1\n",
    );
    const c = parseMergeConfig(cfgPath);
    assert.equal(c.parameters?.normalize, false);
  });
});

describe("bad input: clear errors before any output is written", () => {
  const seed = readFileSync(`${FIX}/configs/seed_slerp.yml`, "utf8");
  const cases: [string, (dir: string) => string, RegExp][] = [
    [
      "unknown method",
      () => seed.replace("merge_method: slerp", "merge_method: magic"),
      /unknown merge_method "magic" \(supported: slerp, linear/,
    ],
    [
      "unknown parameter",
      () => seed.replace("  t:\n", "  tt: 1\n  t:\n"),
      /unknown parameter "tt" for slerp/,
    ],
    [
      "t outside [0, 1]",
      () => seed.replace("- value: 0.5", "- value: 1.5"),
      /t must be in \[0, 1\], got 1\.5 \(tensor /,
    ],
    [
      "layer_range past the layers",
      () => seed.replaceAll("[0, 4]", "[0, 6]"),
      /layer_range \[0, 6\] is past the 4 layers of test\/fixtures\/merge\/model_a/,
    ],
    [
      "missing model folder",
      () => seed.replaceAll("model_b", "model_zz"),
      /model folder not found: test\/fixtures\/merge\/model_zz/,
    ],
    ["bad YAML", () => "slices: [\n", /invalid YAML/],
    ["union tokenizer", () => `${seed}tokenizer_source: union\n`, /tokenizer_source: union is not supported/],
    [
      "different shapes",
      (dir) => {
        // model_d: model_a with one tensor of a different shape
        const d = join(dir, "model_d");
        cpSync(`${FIX}/model_a`, d, { recursive: true });
        return seed.replaceAll("test/fixtures/merge/model_b", d);
      },
      /tensor model\.layers\.1\.mlp\.up_proj\.weight: shape \[32, 16\] in .*model_a.* but \[16, 32\] in .*model_d/,
    ],
  ];
  for (const [label, make, re] of cases) {
    it(label, async () => {
      const dir = join(root, `bad-${counter++}`);
      mkdirSync(dir);
      const text = make(dir);
      if (label === "different shapes") {
        const ck = await Checkpoint.open(join(dir, "model_d"));
        const ts = [];
        for (const n of ck.names) {
          const info = ck.info(n);
          const shape = n === "model.layers.1.mlp.up_proj.weight" ? [...info.shape].reverse() : info.shape;
          ts.push({ name: n, shape, data: await ck.readF32(n) });
        }
        await ck.close();
        await saveCheckpoint(join(dir, "model_d"), ts, { dtype: "BF16" });
      }
      writeFileSync(join(dir, "c.yml"), text);
      const out = join(dir, "out");
      await assert.rejects(runMerge(join(dir, "c.yml"), { out, progress: false }), re);
      assert.equal(existsSync(out), false);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes("ttrl-tmp")),
        [],
      );
    });
  }

  it("an existing --out without --overwrite; --overwrite replaces it", async () => {
    const out = fresh("exists");
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "x");
    await assert.rejects(
      runMerge(`${FIX}/configs/slerp_scalar.yml`, { out, progress: false }),
      /already exists \(use --overwrite/,
    );
    assert.deepEqual(readdirSync(out), ["keep.txt"]);
    await runMerge(`${FIX}/configs/slerp_scalar.yml`, { out, overwrite: true, progress: false });
    assert.ok(!existsSync(join(out, "keep.txt")));
    assert.ok(existsSync(join(out, "model.safetensors")));
  });
});

describe("ttrl merge CLI", () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ["bin/ttrl.mjs", "merge", ...args], {
      encoding: "utf8",
      env: { ...process.env, TTRL_QUIET: "1" },
    });
  it("merges, prints a summary, and exits 2 on usage errors", () => {
    const out = fresh("cli");
    const r = cli(
      `${FIX}/configs/slerp_scalar.yml`,
      "--out",
      out,
      "--out-shard-size",
      "10KB",
      "--no-copy-tokenizer",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /merged 39 tensors/);
    assert.ok(existsSync(join(out, "model.safetensors.index.json")));
    assert.ok(!existsSync(join(out, "tokenizer.json")));
    assert.equal(cli("--help").status, 0);
    assert.equal(
      cli(`${FIX}/configs/slerp_scalar.yml`, "--out", fresh("x"), "--out-shard-size", "5XB").status,
      2,
    );
    const bad = cli(join(root, "nope.yml"), "--out", fresh("y"));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /nope\.yml: file not found/);
    // a folder as the config: named, no stack trace
    const dir = cli(root, "--out", fresh("z"));
    assert.equal(dir.status, 1);
    assert.match(dir.stderr, /is a folder, expected a file/);
    assert.doesNotMatch(dir.stderr, /\n\s+at /);
  });
});

describe("mergekit's float32 statistics (torch CPU kernels)", () => {
  const hex = (x: number) => Buffer.from(new Float32Array([x]).buffer).toString("hex");
  // inputs of scripts/fixtures/make_slerp_large_fixture.py: bf16 patterns from a counter hash
  const hash32 = (i: number, seed: number) => {
    let x = (i + Math.imul(seed, 0x9e3779b9)) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  };
  const weight = (r: number) => ((r >>> 31) << 15) | ((113 + (r % 10)) << 7) | ((r >>> 8) & 0x7f);

  it("fma32 rounds once (where float64-then-float32 would round twice)", () => {
    const a = Math.fround(2 ** -12 * (1 + 2 ** -18));
    const b = Math.fround(2 ** -12 * (1 - 2 ** -18));
    const c = Math.fround(1 + 2 ** -23);
    assert.equal(Math.fround(a * b + c), 1 + 2 ** -22); // the double-rounded value
    assert.equal(fma32(a, b, c), 1 + 2 ** -23);
    assert.equal(fma32(3, 5, -15), 0);
    assert.equal(fma32(1.5, 2, 0.25), 3.25);
  });

  it("torch's two-pass split and cascade sum", () => {
    assert.deepEqual(torchSplit(32767, 2), [[0, 32767]]);
    assert.deepEqual(torchSplit(40003, 2), [
      [0, 20002],
      [20002, 40003],
    ]);
    assert.deepEqual(torchSplit(100000, 3), [
      [0, 33334],
      [33334, 66668],
      [66668, 100000],
    ]);
    assert.deepEqual(torchSplit(100000, 1), [[0, 100000]]);
    // small sums: rows of 4 (x0 + x4 + x5 + x6, then + x1, x2, x3); large: 8 lanes (exact values here)
    assert.equal(torchSum(Float32Array.from([1, 2, 3, 4, 5]), 0, 5), 15);
    const big = Float32Array.from({ length: 1000 }, (_, i) => i);
    assert.equal(torchSum(big, 0, 1000), 499500);
    // [1, 2^24, 0, 0, 1]: a sequential float32 sum loses both ones (2^24); torch adds x4 to x0 first
    assert.equal(torchSum(Float32Array.from([1, 2 ** 24, 0, 0, 1]), 0, 5), 2 ** 24 + 2);
  });

  it("norms, cosine and output equal mergekit's on large tensors (2^20 chunks, per-thread sums)", async () => {
    const { BufferPool, SlerpWorkers } = await import("../../src/merge/kernels/workers.ts");
    const fx = JSON.parse(readFileSync(`${FIX}/slerp_large.json`, "utf8"));
    const pool = new BufferPool();
    const workers = new SlerpWorkers(1);
    try {
      for (const c of fx.cases) {
        const a = pool.get(2 * c.n);
        const b = pool.get(2 * c.n);
        const d = pool.get(2 * c.n);
        const ha = new Uint16Array(a.buffer, a.byteOffset, c.n);
        const hb = new Uint16Array(b.buffer, b.byteOffset, c.n);
        for (let i = 0; i < c.n; i++) {
          ha[i] = weight(hash32(i, c.seed_a));
          hb[i] = c.correlated ? ha[i] ^ (hash32(i, c.seed_b) & 0x3f) : weight(hash32(i, c.seed_b));
        }
        const r = await workers.slerpBf16(a, b, c.t, d, fx.torch_threads);
        assert.deepEqual([hex(r.normA), hex(r.normB), hex(r.dot)], [c.norm_a, c.norm_b, c.dot], `n=${c.n}`);
        assert.equal(createHash("sha256").update(d).digest("hex"), c.sha256, `n=${c.n}`);
        if (c.n < 100000) {
          // buffers outside the kernel memory (a tensor too large for it) take the JavaScript path
          const plain = (x: Uint8Array) => new Uint8Array(x);
          const out = new Uint8Array(2 * c.n);
          await workers.slerpBf16(plain(a), plain(b), c.t, out, fx.torch_threads);
          assert.equal(createHash("sha256").update(out).digest("hex"), c.sha256, `n=${c.n} (outside)`);
        }
        const s = peerSlerpStats(bf16ToF32(ha), bf16ToF32(hb), fx.torch_threads);
        assert.deepEqual(
          [hex(s.normA), hex(s.normB), hex(s.dot)],
          [c.norm_a, c.norm_b, c.dot],
          `n=${c.n} (JS)`,
        );
        for (const x of [a, b, d]) pool.put(x);
      }
    } finally {
      await workers.close();
      pool.clear();
    }
  });
});

describe("worker threads and seeded DARE", () => {
  it("the bf16 SLERP split across worker threads equals the single-threaded kernel", async () => {
    const { BufferPool, SlerpWorkers } = await import("../../src/merge/kernels/workers.ts");
    const n = (1 << 21) + 3;
    const rng = new Rng(5);
    const a = Float32Array.from({ length: n }, () => rng.normal() * 0.02);
    const b = Float32Array.from(a, (x) => 0.7 * x + rng.normal() * 0.01);
    const pool = new BufferPool();
    const share = (x: Float32Array) => {
      const u = pool.get(n * 2);
      f32ToBf16(x, new Uint16Array(u.buffer, u.byteOffset, n));
      return u;
    };
    const sa = share(a);
    const sb = share(b);
    const dst = pool.get(n * 2);
    const workers = new SlerpWorkers(2);
    try {
      await workers.slerpBf16(sa, sb, 0.37, dst);
    } finally {
      await workers.close();
    }
    const single = slerpTensor({ raw: sa, dtype: "BF16" }, { raw: sb, dtype: "BF16" }, 0.37, "BF16", "BF16");
    assert.ok(
      Buffer.from(dst.buffer as SharedArrayBuffer, dst.byteOffset, dst.byteLength).equals(
        Buffer.from(single.buffer, single.byteOffset, single.byteLength),
      ),
    );
  });

  it("dare_ties masks are seeded: same seed same output, another seed another output", async () => {
    const dir = join(root, `dare-${counter++}`);
    mkdirSync(dir);
    const cfg = join(dir, "dare.yml");
    writeFileSync(
      cfg,
      readFileSync(`${FIX}/configs/ties.yml`, "utf8").replace(
        "merge_method: ties",
        "merge_method: dare_ties",
      ),
    );
    const run = async (seed: number) => {
      const out = join(dir, `out-${seed}-${counter++}`);
      await runMerge(cfg, { out, randomSeed: seed, progress: false });
      return readFileSync(join(out, "model.safetensors"));
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    assert.ok(a.equals(b));
    assert.ok(!a.equals(c));
  });
});

describe("dtypes and tokenizer_source", () => {
  it("dtype: bfloat16 rounds float32 inputs at load time (same result as merging pre-rounded bf16 inputs)", async () => {
    const dir = join(root, `f32-${counter++}`);
    mkdirSync(dir);
    const rng = new Rng(11);
    for (const m of ["model_a", "model_b"]) {
      const ck = await Checkpoint.open(`${FIX}/${m}`);
      const f32: { name: string; shape: number[]; data: Float32Array }[] = [];
      for (const n of ck.names) {
        const x = await ck.readF32(n);
        for (let i = 0; i < x.length; i++) x[i] += rng.normal() * 1e-4; // off the bf16 grid
        f32.push({ name: n, shape: ck.info(n).shape, data: x });
      }
      await ck.close();
      for (const [suffix, dtype] of [
        ["f32", "F32"],
        ["bf16", "BF16"],
      ] as const) {
        const d = join(dir, `${m}_${suffix}`);
        await saveCheckpoint(d, f32, { dtype });
        cpSync(`${FIX}/${m}/config.json`, join(d, "config.json"));
      }
    }
    const seed = readFileSync(`${FIX}/configs/seed_slerp.yml`, "utf8");
    const outs: Buffer[] = [];
    for (const suffix of ["f32", "bf16"]) {
      const cfg = join(dir, `${suffix}.yml`);
      writeFileSync(cfg, seed.replaceAll(/test\/fixtures\/merge\/(model_[ab])/g, `${dir}/$1_${suffix}`));
      const out = join(dir, `out_${suffix}`);
      await runMerge(cfg, { out, progress: false, copyTokenizer: false });
      const ck = await Checkpoint.open(out);
      assert.equal(ck.info("lm_head.weight").dtype, "BF16");
      await ck.close();
      outs.push(readFileSync(join(out, "model.safetensors")));
    }
    assert.ok(outs[0].equals(outs[1]));
  });

  it("tokenizer_source: a model path copies that model's tokenizer files", async () => {
    const dir = join(root, `tok-${counter++}`);
    mkdirSync(dir);
    const other = join(dir, "tok_model");
    cpSync(`${FIX}/model_c`, other, { recursive: true });
    writeFileSync(join(other, "tokenizer_config.json"), '{"marker": "from model_c copy"}\n');
    const cfg = join(dir, "c.yml");
    writeFileSync(
      cfg,
      `${readFileSync(`${FIX}/configs/slerp_scalar.yml`, "utf8")}tokenizer_source: ${other}\n`,
    );
    const out = join(dir, "out");
    await runMerge(cfg, { out, progress: false });
    assert.match(readFileSync(join(out, "tokenizer_config.json"), "utf8"), /from model_c copy/);
  });
});
