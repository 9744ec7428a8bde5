import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import {
  CHAR_TR_CHARS,
  charTrTokenizerFiles,
  charTrVocabSize,
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
