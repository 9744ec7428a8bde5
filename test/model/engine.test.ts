import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  generate,
  loadModel,
  type Model,
  modelSampler,
  saveModel,
  scoreSequences,
  tokenLogprobs,
} from "../../src/model/index.ts";
import { initPresetModel } from "../../src/model/presets.ts";
import { grad, jit, numpy as np, tree } from "../../src/runtime/jax.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-model-"));
let tiny: Model | null = null;
async function getTiny(): Promise<Model> {
  tiny ??= await initPresetModel("tiny", 3);
  return tiny;
}

test("KV-cache decoding equals full recomputation (sampled and greedy)", async () => {
  const m = await getTiny();
  const prompts = [m.tokenizer.encode("Soru: 2 + 3 kaç?\n"), m.tokenizer.encode("Merhaba"), [1]];
  for (const greedy of [false, true]) {
    const gens = await generate(m, prompts, { maxNewTokens: 24, greedy, seeds: [5, 6, 7], temperature: 1 });
    const seqs = gens.map((g, i) => [...prompts[i], ...g.tokens]);
    const full = await scoreSequences(m, seqs);
    gens.forEach((g, i) => {
      const ref = full[i].slice(prompts[i].length - 1);
      assert.equal(ref.length, g.logprobs.length);
      for (const [j, x] of g.logprobs.entries())
        assert.ok(Math.abs(x - ref[j]) < 1e-4, `row ${i} token ${j}: ${x} vs ${ref[j]}`);
    });
  }
});

test("repeated prompts (prefilled once) sample as if each row were prefilled alone", async () => {
  const m = await getTiny();
  const p1 = m.tokenizer.encode("Soru: 2 + 3 kaç?\n");
  const p2 = m.tokenizer.encode("Merhaba dünya");
  const opts = { maxNewTokens: 20, temperature: 1 };
  const rep = await generate(m, [p1, p2, p1, p1, p2], { ...opts, seeds: [1, 2, 3, 4, 5] });
  const alone = await Promise.all(
    [p1, p2, p1, p1, p2].map(async (p, i) => (await generate(m, [p], { ...opts, seeds: [i + 1] }))[0]),
  );
  assert.deepEqual(
    rep.map((g) => g.tokens),
    alone.map((g) => g.tokens),
  );
  rep.forEach((g, i) => {
    for (const [j, x] of g.logprobs.entries()) assert.ok(Math.abs(x - alone[i].logprobs[j]) < 1e-5);
  });
  assert.notDeepEqual(rep[0].tokens, rep[2].tokens, "same prompt, different seeds");
});

test("sampling is reproducible per seed and independent of the other rows' seeds", async () => {
  const m = await getTiny();
  const p = m.tokenizer.encode("Soru: ");
  const opts = { maxNewTokens: 16, temperature: 1.5, topP: 0.95, topK: 50 };
  const a = await generate(m, [p, p, p, p], { ...opts, seeds: [1, 2, 3, 4] });
  const b = await generate(m, [p, p, p, p], { ...opts, seeds: [4, 3, 2, 1] });
  assert.deepEqual(
    a.map((g) => g.tokens),
    b.map((g) => g.tokens).reverse(),
  );
  assert.notDeepEqual(a[0].tokens, a[1].tokens, "different seeds give different samples");
  const c = await generate(m, [p, p, p, p], { ...opts, seeds: [1, 2, 3, 4] });
  assert.deepEqual(
    c.map((g) => [g.tokens, g.text, g.logprobs]),
    a.map((g) => [g.tokens, g.text, g.logprobs]),
  );
});

test("finish reasons: length, eos, stop strings (text ends with the stop string)", async () => {
  const m0 = await getTiny();
  const m: Model = { ...m0, tokenizer: { ...m0.tokenizer, eosTokenIds: [] } };
  const p = m.tokenizer.encode("a");
  const g = await generate(m, [p], { maxNewTokens: 7, seeds: [0] });
  assert.equal(g[0].finishReason, "length");
  assert.equal(g[0].tokens.length, 7);
  // Stop at whatever character the sample starts with: the stop string is the first sampled char.
  const first = m.tokenizer.decode(g[0].tokens.slice(0, 2));
  const s = await generate(m, [p], { maxNewTokens: 7, seeds: [0], stop: [first] });
  assert.equal(s[0].finishReason, "stop");
  assert.ok(s[0].text.endsWith(first));
  assert.equal(s[0].text, first);
  // EOS: declare the first greedy token an EOS token; generation stops there, EOS kept in tokens only.
  const gg = await generate(m, [p], { maxNewTokens: 5, greedy: true });
  const eosModel: Model = { ...m, tokenizer: { ...m.tokenizer, eosTokenIds: [gg[0].tokens[1]] } };
  const e = await generate(eosModel, [p], { maxNewTokens: 5, greedy: true });
  assert.equal(e[0].finishReason, "eos");
  assert.deepEqual(e[0].tokens, gg[0].tokens.slice(0, 2));
  assert.equal(e[0].text, m.tokenizer.decode(gg[0].tokens.slice(0, 1)));
});

test("a completion whose first token is EOS is empty, through the model's Sampler (no decode([]) patch)", async () => {
  const m = await getTiny();
  const p = m.tokenizer.encode("a");
  const gg = await generate(m, [p], { maxNewTokens: 3, greedy: true });
  const eosFirst: Model = { ...m, tokenizer: { ...m.tokenizer, eosTokenIds: [gg[0].tokens[0]] } };
  assert.equal(eosFirst.tokenizer.decode([]), "");
  const [g] = await modelSampler(eosFirst).generate([p], { maxNewTokens: 3, greedy: true });
  assert.deepEqual(g, {
    tokens: [gg[0].tokens[0]],
    text: "",
    logprobs: [gg[0].logprobs[0]],
    finishReason: "eos",
  });
});

test("save/load round trip (F32 exact, BF16 close) and tokenLogprobs under jit(grad)", async () => {
  const m = await getTiny();
  const dir = join(tmp, "rt");
  await saveModel(m, dir);
  const back = await loadModel(dir);
  const seq = [m.tokenizer.encode("Ölçü: 1.250,5 km")];
  const [a] = await scoreSequences(m, seq);
  const [b] = await scoreSequences(back, seq);
  assert.deepEqual(a, b);
  await saveModel(m, join(tmp, "bf16"), { dtype: "BF16" });
  const bf = await loadModel(join(tmp, "bf16"));
  const [c] = await scoreSequences(bf, seq);
  for (const [i, x] of c.entries()) assert.ok(Math.abs(x - a[i]) < 0.05);
  // Differentiable: gradient of the summed log-probs w.r.t. the params, inside jit.
  const ids = np.array([seq[0].slice(0, -1)], { dtype: np.int32 });
  const tg = np.array([seq[0].slice(1)], { dtype: np.int32 });
  const f = jit(
    grad((p: Record<string, np.Array>, x: np.Array, y: np.Array) => tokenLogprobs(p, m.config, x, y).sum()),
  );
  const g = f(tree.ref(m.params), ids, tg) as Record<string, np.Array>;
  const ge = (await g["model.embed_tokens.weight"].ref.data()) as Float32Array;
  assert.ok(ge.some((x) => x !== 0) && ge.every(Number.isFinite));
  tree.dispose(g);
  tree.dispose(back.params);
  tree.dispose(bf.params);
});

function writeJson(path: string, v: unknown) {
  writeFileSync(path, JSON.stringify(v));
}

test("bad checkpoints and inputs give clear errors", async () => {
  const fix = "test/fixtures/hf/llama";
  const mk = (name: string) => {
    const d = join(tmp, name);
    spawnSync("cp", ["-r", fix, d]);
    return d;
  };
  await assert.rejects(loadModel(join(tmp, "nope")), /model folder not found/);
  const noCfg = mk("nocfg");
  spawnSync("rm", [join(noCfg, "config.json")]);
  await assert.rejects(loadModel(noCfg), /missing config\.json/);
  const arch = mk("arch");
  const cfg = JSON.parse(readFileSync(join(fix, "config.json"), "utf8"));
  writeJson(join(arch, "config.json"), { ...cfg, architectures: ["GPT2LMHeadModel"] });
  await assert.rejects(
    loadModel(arch),
    /unsupported architecture "GPT2LMHeadModel".*LlamaForCausalLM, Qwen2ForCausalLM/,
  );
  const shape = mk("shape");
  writeJson(join(shape, "config.json"), { ...cfg, intermediate_size: 40 });
  await assert.rejects(
    loadModel(shape),
    /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[48, 32\] but config\.json implies \[40, 32\]/,
  );
  const layers = mk("layers");
  writeJson(join(layers, "config.json"), { ...cfg, num_hidden_layers: 3 });
  await assert.rejects(loadModel(layers), /missing \d+ tensor\(s\).*model\.layers\.2\./);
  const noWeights = mk("noweights");
  spawnSync("rm", [join(noWeights, "model.safetensors")]);
  await assert.rejects(loadModel(noWeights), /no model\.safetensors/);
  const trunc = mk("trunc");
  const buf = readFileSync(join(trunc, "model.safetensors"));
  writeFileSync(join(trunc, "model.safetensors"), buf.subarray(0, buf.length - 100));
  await assert.rejects(loadModel(trunc));
  const m = await loadModel(fix);
  await assert.rejects(generate(m, [new Array(256).fill(5)], { maxNewTokens: 4 }), /context of 256 tokens/);
  await assert.rejects(scoreSequences(m, [new Array(300).fill(5)]), /more than the model's context \(256\)/);
  await assert.rejects(
    generate(m, [[1, 999]], { maxNewTokens: 4 }),
    /token id 999 is outside the vocabulary/,
  );
});

test("the worker pool (main thread + worker threads) samples exactly as a single thread does", () => {
  const dir = join(tmp, "threads");
  const run = (threads: string, ...args: string[]) =>
    spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
      encoding: "utf8",
      env: { ...process.env, TTRL_THREADS: threads },
    });
  let r = run("1", "init-model", "--preset", "tiny", "--out", dir, "--seed", "4");
  assert.equal(r.status, 0, r.stderr);
  const gen = (threads: string) => {
    // 24 samples of 24 tokens: kernels large enough to be split across the pool's workers.
    r = run(
      threads,
      "generate",
      "--model",
      dir,
      "--prompt",
      "Soru: ",
      "--num",
      "24",
      "--max-new-tokens",
      "24",
      "--json",
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  };
  const one = gen("1");
  const two = gen("2");
  assert.equal(one.length, 24);
  assert.ok(one.some((g) => g.tokens.length > 1));
  assert.deepEqual(two, one);
});

test("ttrl init-model, generate and logprob from the command line", () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
      encoding: "utf8",
      env: { ...process.env, TTRL_THREADS: "1" },
    });
  const dir = join(tmp, "cli");
  let r = run("init-model", "--preset", "tiny", "--tokenizer", "char-tr", "--out", dir);
  assert.equal(r.status, 0, r.stderr);
  r = run("generate", "--model", dir, "--prompt", "Soru: ", "--greedy", "--max-new-tokens", "8", "--json");
  assert.equal(r.status, 0, r.stderr);
  const g = JSON.parse(r.stdout.trim());
  assert.equal(g.tokens.length, 8);
  const input = join(tmp, "in.jsonl");
  writeFileSync(
    input,
    `${JSON.stringify({ id: "a", text: "Merhaba" })}\n${JSON.stringify({ id: "b", input_ids: [1, 5, 6] })}\n`,
  );
  r = run("logprob", "--model", dir, "--input", input, "--out", join(tmp, "out.jsonl"));
  assert.equal(r.status, 0, r.stderr);
  const rows = readFileSync(join(tmp, "out.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    rows.map((x) => [x.id, x.token_logprobs.length]),
    [
      ["a", 7],
      ["b", 2],
    ],
  );
  writeFileSync(input, '{"id": "x", "input_ids": [1, 99999]}\n');
  r = run("logprob", "--model", dir, "--input", input, "--out", join(tmp, "out2.jsonl"));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /in\.jsonl:1: input_ids must be integers/);
  r = run("generate", "--model", dir, "--prompt", "x", "--max-new-tokens", "zero");
  assert.equal(r.status, 2);
});
