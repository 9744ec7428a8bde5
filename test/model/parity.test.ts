import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { checkTiedHead } from "../../src/model/config.ts";
import { generate, loadModel, parseConfig, scoreSequences } from "../../src/model/index.ts";

const FIX = "test/fixtures/hf";
const expected = JSON.parse(readFileSync(`${FIX}/expected.json`, "utf8")) as Record<
  string,
  { sequences: number[][]; logprobs: number[][]; greedy: { prompt: number[]; tokens: number[] }[] }
>;

for (const kind of ["llama", "qwen2"]) {
  test(`${kind}: per-token log-probs match transformers within 1e-4`, async () => {
    const model = await loadModel(`${FIX}/${kind}`);
    const e = expected[kind];
    const got = await scoreSequences(model, e.sequences);
    let worst = 0;
    got.forEach((row, i) => {
      assert.equal(row.length, e.logprobs[i].length);
      row.forEach((x, j) => {
        worst = Math.max(worst, Math.abs(x - e.logprobs[i][j]));
      });
    });
    assert.ok(worst < 1e-4, `max |Δ| = ${worst}`);
    // The fixtures are not near-uniform (a test that cannot fail would be worthless).
    const spread = Math.max(...e.logprobs.flat()) - Math.min(...e.logprobs.flat());
    assert.ok(spread > 2, `fixture log-probs spread ${spread}`);
  });

  test(`${kind}: greedy continuations equal transformers' generate`, async () => {
    const model = await loadModel(`${FIX}/${kind}`);
    const e = expected[kind];
    const gens = await generate(
      model,
      e.greedy.map((g) => g.prompt),
      { maxNewTokens: 16, greedy: true },
    );
    for (const [i, g] of gens.entries()) assert.deepEqual(g.tokens, e.greedy[i].tokens, `prompt ${i}`);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Issue 15 item 1: tie_word_embeddings follows transformers' per-architecture default (false for both
// LlamaConfig and Qwen2Config), and a checkpoint that disagrees with the config is reported.

function fixtureCopy(kind: string, edit: (cfg: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), `ttrl-tie-${kind}-`));
  cpSync(`${FIX}/${kind}`, dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  edit(cfg);
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  return dir;
}

async function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; err: string }> {
  const orig = process.stderr.write.bind(process.stderr);
  let err = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: await fn(), err };
  } finally {
    process.stderr.write = orig;
  }
}

test("llama config.json without tie_word_embeddings is untied (LlamaConfig's default): lm_head.weight is used, log-probs match transformers", async () => {
  const dir = fixtureCopy("llama", (c) => delete c.tie_word_embeddings);
  try {
    const { value: model, err } = await captureStderr(() => loadModel(dir));
    assert.equal(model.config.tieWordEmbeddings, false);
    assert.ok(model.params["lm_head.weight"], "lm_head.weight loaded");
    assert.equal(err, "", "no warning for a consistent checkpoint");
    const e = expected.llama;
    const got = await scoreSequences(model, e.sequences);
    const worst = Math.max(...got.flatMap((row, i) => row.map((x, j) => Math.abs(x - e.logprobs[i][j]))));
    assert.ok(worst < 1e-4, `max |Δ| = ${worst}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("qwen2 config.json without tie_word_embeddings and a checkpoint without lm_head.weight: error naming both (Qwen2Config defaults to untied)", async () => {
  const dir = fixtureCopy("qwen2", (c) => delete c.tie_word_embeddings);
  try {
    await assert.rejects(loadModel(dir), (e: Error) => {
      assert.match(
        e.message,
        /config\.json: tie_word_embeddings is not set \(Qwen2ForCausalLM's default in transformers: false\)/,
      );
      assert.match(e.message, /no lm_head\.weight/);
      assert.match(e.message, /"tie_word_embeddings": true/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tied config.json with a checkpoint whose lm_head.weight differs from the embedding: warns naming the tensor, uses the embedding like transformers", async () => {
  const dir = fixtureCopy("llama", (c) => {
    c.tie_word_embeddings = true;
  });
  try {
    const { value: model, err } = await captureStderr(() => loadModel(dir));
    assert.equal(model.config.tieWordEmbeddings, true);
    assert.equal(model.params["lm_head.weight"], undefined);
    assert.match(
      err,
      /warning: .*config\.json: tie_word_embeddings is true but the checkpoint's lm_head\.weight differs from model\.embed_tokens\.weight/,
    );
    assert.match(err, /"tie_word_embeddings": false/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("parseConfig: tie_word_embeddings is the given boolean, else false for both architectures; a non-boolean is refused by name", () => {
  const base = JSON.parse(readFileSync(`${FIX}/llama/config.json`, "utf8")) as Record<string, unknown>;
  fc.assert(
    fc.property(
      fc.constantFrom("LlamaForCausalLM", "Qwen2ForCausalLM"),
      fc.oneof(
        fc.constant(undefined),
        fc.constant(null),
        fc.boolean(),
        fc.constantFrom("false", "true", 0, 1, ""),
      ),
      (arch, tie) => {
        const raw: Record<string, unknown> = { ...base, architectures: [arch] };
        if (tie === undefined) delete raw.tie_word_embeddings;
        else raw.tie_word_embeddings = tie;
        if (tie === undefined || tie === null || typeof tie === "boolean") {
          assert.equal(parseConfig(raw, "c.json").tieWordEmbeddings, tie === true);
        } else {
          assert.throws(
            () => parseConfig(raw, "c.json"),
            /c\.json: "tie_word_embeddings" must be true or false/,
          );
        }
      },
    ),
  );
});

test("checkTiedHead: the four combinations of config and checkpoint", () => {
  const raw = JSON.parse(readFileSync(`${FIX}/llama/config.json`, "utf8")) as Record<string, unknown>;
  const untied = parseConfig(raw, "c.json");
  const tied = parseConfig({ ...raw, tie_word_embeddings: true }, "c.json");
  assert.equal(checkTiedHead(untied, { hasLmHead: true }, "c.json"), null);
  assert.throws(() => checkTiedHead(untied, { hasLmHead: false }, "c.json"), /no lm_head\.weight/);
  assert.equal(checkTiedHead(tied, { hasLmHead: false }, "c.json"), null);
  assert.equal(checkTiedHead(tied, { hasLmHead: true, headDiffers: false }, "c.json"), null);
  assert.match(checkTiedHead(tied, { hasLmHead: true, headDiffers: true }, "c.json") ?? "", /is ignored/);
});
