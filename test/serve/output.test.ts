/** Streamed text never sends what the final text will not contain: stop strings, partial stop strings. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { safeText } from "../../src/serve/output.ts";

describe("safeText (what a stream may send so far)", () => {
  it("every streamed prefix is a prefix of the final text and only grows; no stop string is ever sent", () => {
    const str = (max: number) =>
      fc.array(fc.constantFrom("a", "b", "<", "/", ">", "\uFFFD"), { maxLength: max }).map((a) => a.join(""));
    fc.assert(
      fc.property(
        str(40),
        fc.array(
          str(5).filter((s) => s.length > 0 && !s.includes("\uFFFD")),
          { maxLength: 3 },
        ),
        (g, stops) => {
          // The engine stops at the first stop string (the text ends with it); the server drops it.
          let end = g.length;
          let cut = g.length;
          for (const s of stops) {
            const at = g.indexOf(s);
            if (at >= 0 && at + s.length < end) {
              end = at + s.length;
              cut = at;
            }
          }
          const generated = g.slice(0, end);
          const final = generated.slice(0, cut);
          let sent = "";
          for (let L = 1; L <= generated.length; L++) {
            const safe = safeText(generated.slice(0, L), stops);
            assert.ok(final.startsWith(safe), `sent ${JSON.stringify(safe)}, final ${JSON.stringify(final)}`);
            if (safe.length > sent.length) {
              assert.ok(safe.startsWith(sent));
              sent = safe;
            }
          }
          for (const s of stops) assert.ok(!sent.includes(s));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("holds back a tail that may become a stop string, and an incomplete character", () => {
    assert.equal(safeText("x = 4 </ce", ["</cevap>"]), "x = 4 ");
    assert.equal(safeText("x = 4 </cevap> y", ["</cevap>"]), "x = 4 ");
    assert.equal(safeText("x = 4 <", ["</cevap>"]), "x = 4 ");
    assert.equal(safeText("x = 4 />", ["</cevap>"]), "x = 4 />");
    assert.equal(safeText("ab\uFFFD", []), "ab");
  });
});
