import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { SafetensorsFile } from "../../src/io/safetensors.ts";
import { checkModelSize, paramCount, paramCountOf, parseConfig } from "../../src/model/config.ts";
import { loadModel, saveModel } from "../../src/model/index.ts";
import { numpy as np } from "../../src/runtime/jax.ts";

const LLAMA = JSON.parse(readFileSync("test/fixtures/hf/llama/config.json", "utf8")) as Record<
  string,
  unknown
>;

// Issue 15 item 3: impossible numbers in config.json are refused on load, naming the field.
test("config.json: rms_norm_eps ≤ 0 and rope_theta ≤ 0 are refused naming the field (were NaN models)", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.constant(0), fc.constant(-1), fc.double({ max: 0, noNaN: true, noDefaultInfinity: true })),
      (bad) => {
        assert.throws(
          () => parseConfig({ ...LLAMA, rms_norm_eps: bad }, "m/config.json"),
          (e: Error) => /^m\/config\.json: "rms_norm_eps" must be > 0/.test(e.message),
        );
        const noRp = { ...LLAMA, rope_parameters: undefined, rope_theta: bad };
        assert.throws(
          () => parseConfig(noRp, "m/config.json"),
          /: m\/config\.json: "rope_theta" must be a positive number/,
        );
        const inRp = { ...LLAMA, rope_parameters: { rope_type: "default", rope_theta: bad } };
        assert.throws(() => parseConfig(inRp, "m/config.json"), /"rope_theta" must be a positive number/);
      },
    ),
  );
  // the fixture's own values are fine
  assert.equal(parseConfig(LLAMA).rmsNormEps, 1e-5);
});

test("loadModel refuses rms_norm_eps: -1 and rope_theta: 0 before reading any weight", async () => {
  for (const [k, v] of [
    ["rms_norm_eps", -1],
    ["rope_theta", 0],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-cfg-"));
    try {
      cpSync("test/fixtures/hf/llama", dir, { recursive: true });
      const cfg: Record<string, unknown> = { ...LLAMA, [k]: v };
      if (k === "rope_theta") delete cfg.rope_parameters;
      writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
      await assert.rejects(loadModel(dir), new RegExp(`config\\.json: "${k}" must be`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

// Issue 15 item 16: sizes are checked against memory before anything is allocated.
test("num_hidden_layers: 1000000000 is refused at once, naming the field and the computed size", async () => {
  const t0 = performance.now();
  assert.throws(
    () => parseConfig({ ...LLAMA, num_hidden_layers: 1_000_000_000 }, "m/config.json"),
    (e: Error) => {
      assert.match(e.message, /^m\/config\.json: the model is too large: num_hidden_layers \(1000000000\)/);
      assert.match(
        e.message,
        /parameters in all, [\d.]+ TB as float32, more than the .* this machine's memory allows/,
      );
      return true;
    },
  );
  assert.throws(
    () => parseConfig({ ...LLAMA, vocab_size: 2 ** 40 }),
    /too large: vocab_size \(1099511627776\)/,
  );
  // loadModel too (it used to build a billion-entry tensor list, then allocate until killed)
  const dir = mkdtempSync(join(tmpdir(), "ttrl-cfg-"));
  try {
    cpSync("test/fixtures/hf/llama", dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...LLAMA, num_hidden_layers: 1_000_000_000 }));
    await assert.rejects(loadModel(dir), /too large: num_hidden_layers/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(performance.now() - t0 < 5000, "refused without allocating");
});

test("paramCountOf equals the per-tensor count, and checkModelSize accepts exactly the configs that fit", () => {
  fc.assert(
    fc.property(
      fc.record({
        arch: fc.constantFrom("LlamaForCausalLM", "Qwen2ForCausalLM"),
        heads: fc.integer({ min: 1, max: 4 }),
        group: fc.integer({ min: 1, max: 3 }),
        headDim: fc.integer({ min: 1, max: 8 }).map((x) => 2 * x),
        layers: fc.integer({ min: 1, max: 4 }),
        inter: fc.integer({ min: 1, max: 64 }),
        vocab: fc.integer({ min: 1, max: 300 }),
        tie: fc.boolean(),
        attnBias: fc.boolean(),
        mlpBias: fc.boolean(),
        budget: fc.integer({ min: 1, max: 400_000 }),
      }),
      (r) => {
        const raw = {
          architectures: [r.arch],
          vocab_size: r.vocab,
          hidden_size: r.heads * r.group * r.headDim,
          num_attention_heads: r.heads * r.group,
          num_key_value_heads: r.heads,
          head_dim: r.headDim,
          intermediate_size: r.inter,
          num_hidden_layers: r.layers,
          tie_word_embeddings: r.tie,
          attention_bias: r.attnBias,
          mlp_bias: r.mlpBias,
        };
        const c = parseConfig(raw);
        const n = paramCount(c);
        assert.equal(paramCountOf(c).total, n);
        if (n * 4 <= r.budget) checkModelSize(c, "c.json", r.budget);
        else assert.throws(() => checkModelSize(c, "c.json", r.budget), /c\.json: the model is too large/);
      },
    ),
  );
});

// Issue 15 item 2: a saved config.json states the dtype of the tensors saved with it, under both keys.
test("saveModel writes dtype and torch_dtype equal to the saved tensors' dtype (a transformers-5 model kept a stale dtype)", async () => {
  const model = await loadModel("test/fixtures/hf/llama");
  // as saved by transformers 5 in bfloat16: only `dtype`
  model.config.raw = { ...model.config.raw, dtype: "bfloat16" };
  delete model.config.raw.torch_dtype;
  for (const [d, name] of [
    ["F32", "float32"],
    ["BF16", "bfloat16"],
    ["F16", "float16"],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), "ttrl-save-"));
    try {
      await saveModel(model, dir, { dtype: d });
      const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      assert.equal(cfg.dtype, name);
      assert.equal(cfg.torch_dtype, name);
      const f = await SafetensorsFile.open(join(dir, "model.safetensors"));
      assert.deepEqual(new Set([...f.tensors.values()].map((t) => t.dtype)), new Set([d]));
      await f.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

// Issue 15 item 3: a model whose update went non-finite is never saved (the writer names the tensor).
test("saveModel refuses a model with a NaN weight, naming the tensor, and writes no model.safetensors", async () => {
  const model = await loadModel("test/fixtures/hf/llama");
  const name = "model.layers.1.mlp.up_proj.weight";
  const shape = model.params[name].shape;
  const data = (await model.params[name].ref.data()) as Float32Array;
  data[5] = Number.NaN;
  model.params[name].dispose();
  model.params[name] = np.array(data).reshape(shape);
  const dir = mkdtempSync(join(tmpdir(), "ttrl-save-"));
  try {
    await assert.rejects(
      saveModel(model, dir),
      /model\.safetensors: tensor "model\.layers\.1\.mlp\.up_proj\.weight" \[48, 32\] has a non-finite value \(NaN\) at element 5/,
    );
    assert.ok(!existsSync(join(dir, "model.safetensors")));
    assert.ok(!existsSync(join(dir, "config.json")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
