// Eval data may carry extra fields, but a misspelt known key ("anwser", "lable", "qestion") must not leave
// a question silently unlabelled or unread (issue 15 item 6, the eval side of grade's unknown-key check).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { loadQuestions } from "../../src/eval/index.ts";
import { likelyTypo } from "../../src/io/jsonl.ts";
import { InputError } from "../../src/util/errors.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-keys-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (rows: unknown[]) => {
  const f = join(tmp, `${n++}.jsonl`);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join("\n"));
  return f;
};

/** One edit of `s`: a letter dropped, added, changed, or two neighbours swapped. */
const oneEdit = (s: string) =>
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom("drop", "add", "change", "swap"),
      fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz_"),
    )
    .map(([at, how, c]) => {
      const i = at % s.length;
      if (how === "drop") return s.slice(0, i) + s.slice(i + 1);
      if (how === "add") return s.slice(0, i) + c + s.slice(i);
      if (how === "change") return s.slice(0, i) + (s[i] === c ? "z" : c) + s.slice(i + 1);
      const j = Math.min(i, s.length - 2);
      return s.slice(0, j) + s[j + 1] + s[j] + s.slice(j + 2);
    })
    .filter((t) => t !== s && t.length >= 4);

describe("eval question keys", () => {
  it("property: one edit away from answer/label/question is refused naming file, line, key and the match", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("answer", "label", "question").chain((k) => fc.tuple(fc.constant(k), oneEdit(k))),
        fc.nat({ max: 3 }),
        async ([meant, typo], at) => {
          fc.pre(
            likelyTypo(typo, [
              "id",
              "question",
              "prompt",
              "answer",
              "label",
              "solution",
              "source",
              "meta",
            ]) === meant,
          );
          const rows: Record<string, unknown>[] = Array.from({ length: 4 }, (_, i) => ({
            id: `q${i}`,
            question: "1+1?",
            answer: "2",
          }));
          rows[at][typo] = "3";
          const f = file(rows);
          await assert.rejects(loadQuestions(f), (e: unknown) => {
            assert.ok(e instanceof InputError, String(e));
            assert.equal(e.line, at + 1);
            assert.equal(
              e.message,
              `${f}:${at + 1}: unknown key ${JSON.stringify(typo)} (did you mean "${meant}"?)`,
            );
            return true;
          });
        },
      ),
      { numRuns: 80 },
    );
  });

  it("the reported typos are caught; a dataset's own extra fields are kept out of the way", async () => {
    for (const typo of ["anwser", "lable", "qestion", "Answer", "ID"]) {
      const f = file([{ id: "a", question: "1+1?", [typo]: "2" }]);
      await assert.rejects(loadQuestions(f), /unknown key/, typo);
    }
    const ok = file([
      { id: "a", question: "1+1?", answer: "2", difficulty: "easy", grade_level: 3, meta: {} },
    ]);
    assert.deepEqual(await loadQuestions(ok), [{ id: "a", question: "1+1?", label: "2" }]);
  });
});
