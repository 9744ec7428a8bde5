// The shipped base model models/tr-math-base/: it loads, it is the small char-level LLaMA its card
// describes, its tokenizer covers the shipped data, and it has learned the answer format.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createGrader } from "../../src/answers/index.ts";
import type { Model } from "../../src/model/index.ts";
import { renderPrompt } from "../../src/prompts/index.ts";

const DIR = "models/tr-math-base";
const DATA = ["data/tr-math/train.jsonl", "data/tr-math/test.jsonl"];

// One engine thread: with a worker pool the test process does not exit (the model engine's workers keep
// it alive), and the thread count is fixed when the engine is first imported, hence the dynamic import.
process.env.TTRL_THREADS ??= "1";
const engine = import("../../src/model/index.ts");

let model: Model | null = null;
async function base(): Promise<Model> {
  model ??= await (await engine).loadModel(DIR);
  return model;
}

function rows(file: string): { id: string; question: string; answer: string; solution: string }[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

test("HF layout, small enough to ship", () => {
  for (const f of [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
  ])
    assert.ok(statSync(join(DIR, f)).isFile(), `${DIR}/${f} missing`);
  const bytes = statSync(join(DIR, "model.safetensors")).size;
  assert.ok(bytes < 10 * 1024 * 1024, `model.safetensors is ${bytes} bytes`);
  const cfg = JSON.parse(readFileSync(join(DIR, "config.json"), "utf8"));
  assert.deepEqual(cfg.architectures, ["LlamaForCausalLM"]);
  assert.equal(cfg.model_type, "llama");
});

test("loads as a LLaMA model with the parameter count of its card", async () => {
  const m = await base();
  assert.equal(m.config.architecture, "LlamaForCausalLM");
  let n = 0;
  for (const a of Object.values(m.params)) n += a.shape.reduce((x: number, y: number) => x * y, 1);
  const card = readFileSync(join(DIR, "README.md"), "utf8");
  const stated = /Parameters: \*\*([\d,]+)\*\*/.exec(card);
  assert.ok(stated, "model card states the parameter count");
  assert.equal(n, Number(stated[1].replaceAll(",", "")));
  assert.equal(m.config.vocabSize, m.tokenizer.vocabSize);
});

test("tokenizer covers every character of data/tr-math (no <unk>, exact round trip)", async () => {
  const tok = (await base()).tokenizer;
  const unk = tok.encode("<unk>", { addSpecialTokens: false });
  assert.equal(unk.length, 1, "<unk> is one special token");
  const chars = new Set<string>();
  for (const f of DATA)
    for (const r of rows(f)) for (const ch of `${r.question}\n${r.solution}`) chars.add(ch);
  assert.ok(chars.size > 40, `only ${chars.size} distinct characters read`);
  for (const ch of chars) {
    const ids = tok.encode(ch, { addSpecialTokens: false });
    assert.equal(ids.length, 1, `${JSON.stringify(ch)} → ${ids.length} tokens`);
    assert.notEqual(ids[0], unk[0], `${JSON.stringify(ch)} maps to <unk>`);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), ch);
  }
  const text = rows(DATA[1])[0].question;
  assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false }), { skipSpecialTokens: true }), text);
});

test("greedy completions of training-like prompts use the answer tags", async () => {
  const m = await base();
  const qs = rows(DATA[0]).slice(0, 8);
  const prompts = qs.map((r) =>
    m.tokenizer.encode(renderPrompt(r.question, "plain-tr"), { addSpecialTokens: true }),
  );
  const gens = await (await engine).generate(m, prompts, {
    maxNewTokens: 128,
    greedy: true,
    stop: ["</cevap>"],
  });
  const grader = createGrader({ format: "mantik-cevap", locale: "tr-TR" });
  let tagged = 0;
  let answered = 0;
  for (const [i, g] of gens.entries()) {
    const text = g.text;
    if (text.includes("<mantık>") && text.includes("<cevap>")) tagged++;
    if (grader.extractAnswer(text, "flexible").valid) answered++;
    assert.ok(g.tokens.length > 0, `question ${qs[i].id}: empty completion`);
  }
  assert.ok(tagged >= 6, `only ${tagged}/8 greedy completions have <mantık> and <cevap>`);
  assert.ok(answered >= 6, `only ${answered}/8 greedy completions have an answer`);
});
