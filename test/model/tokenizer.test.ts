import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { localBackend } from "../../src/eval/backends.ts";
import {
  CHAR_TR_CHARS,
  charTrTokenizerFiles,
  charTrVocabSize,
  encodeWithin,
  loadTokenizer,
  tokenizerFromJson,
} from "../../src/model/tokenizer.ts";

const expected = JSON.parse(readFileSync("test/fixtures/hf/expected.json", "utf8")).bytelevel as {
  texts: string[];
  ids: number[][];
  chat: string;
};

test("byte-level BPE: same ids as the Rust tokenizer on Turkish text, and decode round trip", () => {
  const tok = loadTokenizer("test/fixtures/hf/bytelevel");
  expected.texts.forEach((t, i) => {
    assert.deepEqual(tok.encode(t), expected.ids[i], t);
    assert.equal(tok.decode(expected.ids[i]), t);
  });
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "Kaç?" }]), expected.chat);
  assert.deepEqual(tok.eosTokenIds, [0]);
});

test("char-tr: one token per character, BOS first, round trip on any text over its alphabet", () => {
  const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles();
  const tok = tokenizerFromJson(tokenizerJson, tokenizerConfig);
  assert.equal(tok.vocabSize, charTrVocabSize());
  assert.equal(tok.bosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [2]);
  assert.equal(tok.padTokenId, 0);
  const s =
    "Soru: Ayşe'nin 12 elması var. İĞÜŞÇÖ ığüşçö?\n<mantık>\n12 - 3 = 9\n</mantık>\n<cevap>\n9\n</cevap>";
  const ids = tok.encode(s);
  assert.equal(ids.length, [...s].length + 1);
  assert.equal(ids[0], 1);
  assert.equal(tok.decode(ids), s);
  assert.equal(tok.decode([...ids, 2]), s);
  assert.equal(tok.encode("ä")[1], 3, "unknown characters map to <unk>");
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...CHAR_TR_CHARS), { maxLength: 60 }), (chars) => {
      const text = chars.join("");
      const e = tok.encode(text, { addSpecialTokens: false });
      assert.equal(e.length, chars.length);
      assert.equal(tok.decode(e), text);
    }),
    { numRuns: 200 },
  );
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "Merhaba" }]),
    "<|user|>\nMerhaba\n<|assistant|>\n",
  );
});

// Issue 15 item 3: a tokenizer with an empty vocabulary encoded every text to <unk> or to undefined ids.
test("a tokenizer.json with an empty vocabulary is refused, naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ttrl-tok-"));
  try {
    const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles();
    for (const keepAdded of [true, false]) {
      const tj = structuredClone(tokenizerJson) as { model: { vocab: object }; added_tokens: unknown[] };
      tj.model.vocab = {};
      if (!keepAdded) tj.added_tokens = [];
      writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tj));
      writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(keepAdded ? tokenizerConfig : {}));
      assert.throws(
        () => loadTokenizer(dir),
        (e: Error) =>
          e.message ===
          `${join(dir, "tokenizer.json")}: the tokenizer's vocabulary is empty (model.vocab has no tokens)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 15 item 16: prompt length is checked against the context before a huge text is tokenized.
test("encodeWithin: a 30-million-character prompt is refused at once, naming where it came from", () => {
  const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles();
  const tok = tokenizerFromJson(tokenizerJson, tokenizerConfig);
  const huge = "a".repeat(30_000_000);
  const t0 = performance.now();
  assert.throws(
    () => encodeWithin(tok, huge, 512, 'data/q.jsonl:7 (question "q7")'),
    /^TtrlError: data\/q\.jsonl:7 \(question "q7"\): the prompt has 30000000 characters, at least \d+ tokens, more than the 512 the model's context allows$/,
  );
  assert.ok(performance.now() - t0 < 500, `took ${performance.now() - t0} ms`);
  // just past the limit after tokenizing: the token count is named
  assert.throws(
    () => encodeWithin(tok, "a".repeat(512), 512, "x:1"),
    /x:1: the prompt has 513 tokens, more than the 512/,
  );
  assert.deepEqual(encodeWithin(tok, "a".repeat(511), 512, "x:1"), tok.encode("a".repeat(511)));
});

test("encodeWithin never refuses a prompt that fits, for char-tr and a byte-level BPE (the pre-check is a sound bound)", () => {
  const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles();
  const toks = [
    tokenizerFromJson(tokenizerJson, tokenizerConfig),
    loadTokenizer("test/fixtures/hf/bytelevel"),
  ];
  const piece = fc.oneof(
    fc.constantFrom(...CHAR_TR_CHARS),
    fc.constantFrom("    ", "\n\n", "ğüşıöç", "İstanbul", "================", "1234567890"),
    fc.string({ unit: "grapheme", maxLength: 4 }),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1),
      fc.array(piece, { maxLength: 80 }),
      fc.integer({ min: 1, max: 120 }),
      (k, parts, limit) => {
        const tok = toks[k];
        const text = parts.join("");
        const n = tok.encode(text).length;
        if (n <= limit) assert.deepEqual(encodeWithin(tok, text, limit, "w"), tok.encode(text));
        else assert.throws(() => encodeWithin(tok, text, limit, "w"), /^TtrlError: w: the prompt has/);
      },
    ),
    { numRuns: 300 },
  );
});

test("eval's local backend refuses a 30-million-character question before tokenizing or generating, naming the question", async () => {
  const { tokenizerJson, tokenizerConfig } = charTrTokenizerFiles();
  const tokenizer = tokenizerFromJson(tokenizerJson, tokenizerConfig);
  let generated = 0;
  const engine = {
    name: "m",
    tokenizer,
    maxContext: 512,
    async generate() {
      generated++;
      return [];
    },
  };
  const t0 = performance.now();
  await assert.rejects(
    localBackend(engine).run(
      [{ prompt: "x".repeat(30_000_000), label: 'question "q7" sample 0', seed: 0, greedy: false }],
      { temperature: 1, topP: 1, maxTokens: 8, stop: [] },
      async () => {},
    ),
    /question "q7" sample 0: the prompt has 30000000 characters, at least \d+ tokens, more than the 511 the model's context allows/,
  );
  assert.equal(generated, 0);
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});
