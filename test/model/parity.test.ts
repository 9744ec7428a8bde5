import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { generate, loadModel, scoreSequences } from "../../src/model/index.ts";

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
