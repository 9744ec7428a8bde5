import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  answersEqual,
  canonicalLabel,
  createGrader,
  extractAnswer,
  FORMATS,
  gradeCompletion,
  type Locale,
  parseLocaleNumber,
} from "../../src/answers/index.ts";
import { readJsonl } from "../../src/io/jsonl.ts";

const tr = (s: string) => parseLocaleNumber(s, "tr-TR");
const en = (s: string) => parseLocaleNumber(s, "en-US");

describe("parseLocaleNumber tr-TR", () => {
  it("accepts ungrouped, grouped by threes, and decimals", () => {
    assert.equal(tr("1234"), "1234");
    assert.equal(tr("1.234"), "1234");
    assert.equal(tr("12.345.678"), "12345678");
    assert.equal(tr("1.250,5"), "1250.5");
    assert.equal(tr("1,234"), "1.234");
    assert.equal(tr("-1.250,50"), "-1250.5");
    assert.equal(tr("  40 \n"), "40");
    assert.equal(tr("40,0"), "40");
    assert.equal(tr("0,5"), "0.5");
    assert.equal(tr("007"), "7");
  });
  for (const bad of ["1.23", "1.2345", "1 234", "12,", ",5", "40 elma", "₺40", "%40", "1e3"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(tr(bad), null));
  }
  it("rejects other malformed numbers", () => {
    for (const bad of [
      "",
      "-",
      "+5",
      "1.234.56",
      "1234.567",
      "0.123",
      "1..234",
      "1.234,",
      "1,2,3",
      "- 5",
      "−5",
      "٤٠",
      "1_000",
      "40.",
      "Infinity",
      "NaN",
      "0x10",
    ])
      assert.equal(tr(bad), null, bad);
  });
  it("zero and negative zero are canonical 0", () => {
    assert.equal(tr("-0"), "0");
    assert.equal(tr("-0,000"), "0");
    assert.equal(tr("000,000"), "0");
  });
});

describe("parseLocaleNumber en-US", () => {
  it("swaps the separators", () => {
    assert.equal(en("1,234"), "1234");
    assert.equal(en("1.234"), "1.234");
    assert.equal(en("12,345,678.25"), "12345678.25");
    assert.equal(en("1,080"), "1080");
    for (const bad of ["1,23", "1,2345", "1.250,5", "12.", ".5", "$40", "40%", "1 234"])
      assert.equal(en(bad), null, bad);
  });
});

// Random exact decimals as strings: sign, up to 25 integer digits, up to 12 fraction digits.
const decimalArb = fc
  .tuple(fc.boolean(), fc.stringMatching(/^[1-9][0-9]{0,24}$|^0$/), fc.stringMatching(/^[0-9]{0,12}$/))
  .map(([neg, i, f]) => `${neg ? "-" : ""}${i}${f ? `.${f}` : ""}`);

describe("property: Intl.NumberFormat round trips", () => {
  for (const locale of ["tr-TR", "en-US"] as Locale[]) {
    for (const useGrouping of [true, false]) {
      it(`${locale} grouping=${useGrouping}`, () => {
        const fmt = new Intl.NumberFormat(locale, {
          maximumFractionDigits: 20,
          useGrouping,
        });
        fc.assert(
          fc.property(decimalArb, (d) => {
            // Intl accepts decimal strings exactly (no float rounding).
            const text = fmt.format(d as unknown as number);
            assert.equal(parseLocaleNumber(text, locale), canonicalLabel(d), `${d} → ${text}`);
          }),
          { numRuns: 400 },
        );
      });
    }
  }
  it("float doubles formatted by Intl parse to the same decimal as their plain form", () => {
    const trFmt = new Intl.NumberFormat("tr-TR", { maximumFractionDigits: 6 });
    const plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6, useGrouping: false });
    fc.assert(
      fc.property(fc.double({ min: -1e12, max: 1e12, noNaN: true }), (x) => {
        assert.equal(tr(trFmt.format(x)), canonicalLabel(plain.format(x).replace(/^-0$/, "0")));
      }),
      { numRuns: 300 },
    );
  });
  it("a grouped string with a wrong group size never parses", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[1-9][0-9]{0,2}$/),
        fc.array(fc.stringMatching(/^[0-9]{1,5}$/), { minLength: 1, maxLength: 4 }),
        (head, groups) => {
          const s = `${head}.${groups.join(".")}`;
          const ok = groups.every((g) => g.length === 3);
          assert.equal(tr(s) !== null, ok, s);
        },
      ),
    );
  });
});

describe("canonicalLabel and answersEqual", () => {
  it("canonicalises strings and numbers", () => {
    assert.equal(canonicalLabel("40"), "40");
    assert.equal(canonicalLabel(" 040.500 "), "40.5");
    assert.equal(canonicalLabel(40), "40");
    assert.equal(canonicalLabel(-12.5), "-12.5");
    assert.equal(canonicalLabel(-0), "0");
    assert.equal(canonicalLabel(1e21), "1000000000000000000000");
    assert.equal(canonicalLabel(1.5e-7), "0.00000015");
    assert.equal(canonicalLabel("-0.0"), "0");
  });
  it("throws on non-numbers", () => {
    for (const bad of ["", "abc", "1,5", "1e3", "4O", " "]) assert.throws(() => canonicalLabel(bad), /label/);
    assert.throws(() => canonicalLabel(Number.NaN), /finite/);
    assert.throws(() => canonicalLabel(Number.POSITIVE_INFINITY), /finite/);
  });
  it("compares exact decimals, never floats", () => {
    assert.ok(answersEqual("40", "40.0"));
    assert.ok(answersEqual("-0", "0"));
    assert.ok(answersEqual("007", "7"));
    assert.ok(!answersEqual("0.1", "0.10000000000000001"));
    assert.ok(!answersEqual("9007199254740993", "9007199254740992"));
    assert.ok(!answersEqual("abc", "abd"));
  });
  it("property: equality ignores leading zeros, trailing fraction zeros and the sign of zero", () => {
    fc.assert(
      fc.property(decimalArb, fc.nat(3), fc.nat(3), (d, lz, tz) => {
        const neg = d.startsWith("-");
        const body = neg ? d.slice(1) : d;
        const padded = `${neg ? "-" : ""}${"0".repeat(lz)}${body}${tz ? (body.includes(".") ? "" : ".") + "0".repeat(tz) : ""}`;
        assert.ok(answersEqual(d, padded), `${d} vs ${padded}`);
        assert.equal(canonicalLabel(padded), canonicalLabel(d));
      }),
    );
  });
});

const good =
  "<mantık>\nElif'in 3 elması var, 4 tane daha alıyor: 3 + 4 = 7.\n</mantık>\n<cevap>\n7\n</cevap>";

describe("tag extraction", () => {
  it("strict accepts the exact format, with whitespace and multi-line reasoning", () => {
    assert.deepEqual(extractAnswer(good, "strict"), { valid: true, answer: "7" });
    assert.deepEqual(extractAnswer(`  \n${good}\n\n`, "strict"), { valid: true, answer: "7" });
    assert.deepEqual(extractAnswer("<mantık></mantık><cevap>1.250,5</cevap>", "strict"), {
      valid: true,
      answer: "1250.5",
    });
  });
  it("strict rejects text around, second answers, tags in reasoning, wrong tags", () => {
    const bad = [
      `Cevap: ${good}`,
      `${good} teşekkürler`,
      `${good}<cevap>8</cevap>`,
      "<mantık>a</mantık><cevap>7</cevap><cevap>8</cevap>",
      "<mantık>a</mantık><cevap>7<cevap>8</cevap>",
      "<mantık>a <cevap>5</cevap></mantık><cevap>7</cevap>",
      "<mantık>a <mantık></mantık><cevap>7</cevap>",
      "<mantik>a</mantik><cevap>7</cevap>", // dotted i
      "<Mantık>a</Mantık><cevap>7</cevap>", // case-sensitive
      "<mantık>a</mantık> x <cevap>7</cevap>",
      "<mantık>a</mantık><cevap>7</Cevap>",
      "<cevap>7</cevap>",
      "<mantık>a</mantık><cevap>7",
      "<mantık>a</mantık><cevap></cevap>",
      "<mantık>a</mantık><cevap>7 elma</cevap>",
      "<mantık>a</mantık><cevap>1.23</cevap>",
      "<mantık>a<cevap>7</cevap>",
      "",
    ];
    for (const b of bad) assert.deepEqual(extractAnswer(b, "strict"), { valid: false, answer: null }, b);
  });
  it("flexible takes the last closed answer pair anywhere", () => {
    const f = (s: string) => extractAnswer(s, "flexible").answer;
    assert.equal(f(good), "7");
    assert.equal(f(`Cevap: ${good} teşekkürler`), "7");
    assert.equal(f("<cevap>5</cevap> düzeltme: <cevap>1.080</cevap>"), "1080");
    assert.equal(f("<cevap>5</cevap> <cevap>6"), "5");
    assert.equal(f("<cevap>1 <cevap>2</cevap>"), "2");
    assert.equal(f("<cevap>5</cevap> x </cevap>"), "5");
    assert.equal(f("<cevap>yedi</cevap>"), null);
    assert.equal(f("<cevap>5</cevap><cevap>beş</cevap>"), null);
    assert.equal(f("</cevap>5<cevap>"), null);
    assert.equal(f("no tags 5"), null);
    assert.equal(f("<mantik>x</mantik><answer>5</answer>"), null);
  });
  it("formats are data", () => {
    const s = "<reasoning>2+2</reasoning>\n<answer>4</answer>";
    assert.equal(extractAnswer(s, "strict", { format: "reasoning-answer" }).answer, "4");
    assert.equal(extractAnswer(s, "strict", { format: FORMATS["reasoning-answer"] }).answer, "4");
    assert.equal(extractAnswer(s, "strict").answer, null);
    const custom = { name: "think", reasoningTag: "think", answerTag: "final" };
    assert.equal(
      extractAnswer("<think>x</think><final>1,5</final>", "strict", { format: custom }).answer,
      "1.5",
    );
    assert.throws(() => extractAnswer(s, "strict", { format: "nope" }), /unknown answer format/);
    assert.equal(
      extractAnswer("<think>x</think><answer>12</answer>", "strict", { format: "think/answer" }).answer,
      "12",
    );
    assert.throws(() => extractAnswer(s, "strict", { format: "a b/c" }), /unknown answer format/);
    assert.throws(
      () => extractAnswer(s, "strict", { format: { name: "x", reasoningTag: "", answerTag: "a" } }),
      /needs/,
    );
  });
  it("en-US locale with tags", () => {
    const s = "<mantık>x</mantık><cevap>1,250.5</cevap>";
    assert.equal(extractAnswer(s, "strict", { locale: "en-US" }).answer, "1250.5");
    assert.equal(extractAnswer(s, "strict").answer, null);
  });
});

describe("other extractors", () => {
  it("gsm8k reads the #### line", () => {
    const g = (s: string, locale: Locale = "en-US") =>
      extractAnswer(s, "strict", { extract: "gsm8k", locale }).answer;
    assert.equal(g("She makes 9 * 2 = $18.\n#### 18"), "18");
    assert.equal(g("...\n#### 1,080\n"), "1080");
    assert.equal(g("#### -3.5"), "-3.5");
    assert.equal(g("#### 1.080", "tr-TR"), "1080");
    assert.equal(g("no marker 18"), null);
    assert.equal(g("#### 18 dollars"), null);
  });
  it("last-number is locale-aware", () => {
    const l = (s: string, locale: Locale = "tr-TR") =>
      extractAnswer(s, "flexible", { extract: "last-number", locale }).answer;
    assert.equal(l("Toplam 3 + 4 = 7."), "7");
    assert.equal(l("Fiyat 1.250,50 TL oldu."), "1250.5");
    assert.equal(l("Price 1,250.50 dollars.", "en-US"), "1250.5");
    assert.equal(l("Sıcaklık -12,5 derece"), "-12.5");
    assert.equal(l("3-5 arası 4"), "4");
    assert.equal(l("aralık 3-5"), "5");
    assert.equal(l("sayı yok"), null);
    assert.equal(l("yanlış 1.23"), null);
  });
  it("property: en-US last-number agrees with lm-evaluation-harness's flexible-extract + gsm8k normalisation", () => {
    // lm-eval gsm8k: regex (-?[$0-9.,]{2,})|(-?[0-9]+), last match; then ",", "$" and a trailing "." ignored.
    const lmEval = (text: string): string | null => {
      const ms = [...text.matchAll(/(-?[$0-9.,]{2,})|(-?[0-9]+)/g)];
      if (ms.length === 0) return null;
      const m = ms[ms.length - 1];
      return (m[1] ?? m[2]).replace(/[,$]/g, "").replace(/\.$/, "");
    };
    const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
    const word = fc.constantFrom(
      "The",
      "answer",
      "is",
      "so",
      "she",
      "pays",
      "dollars",
      "in",
      "total",
      "=",
      "+",
      "x",
    );
    const num = fc
      .tuple(fc.integer({ min: -99_999_999, max: 99_999_999 }), fc.nat(99), fc.boolean(), fc.boolean())
      .map(([i, f, dec, dollar]) => `${dollar ? "$" : ""}${fmt.format(dec ? i + f / 100 : i)}`);
    fc.assert(
      fc.property(
        fc.array(fc.oneof(word, num), { minLength: 1, maxLength: 12 }),
        fc.constantFrom("", ".", "!"),
        (toks, end) => {
          const text = `${toks.join(" ")}${end}`;
          const ours = extractAnswer(text, "flexible", { extract: "last-number", locale: "en-US" }).answer;
          const theirs = lmEval(text);
          assert.equal(ours, theirs === null ? null : canonicalLabel(theirs), text);
        },
      ),
      { numRuns: 500 },
    );
  });
  it("regex takes the first group of the last match", () => {
    const r = (s: string, p: string) => extractAnswer(s, "strict", { extract: `regex:${p}` }).answer;
    assert.equal(r("Cevap: 5. Cevap: 1.200", "Cevap: ([\\d.,]+)"), "1200");
    assert.equal(r("x=12", "\\d+"), "12");
    assert.equal(r("none", "Cevap: (\\d+)"), null);
    assert.throws(() => r("x", "("), /invalid regex/);
    // lm-evaluation-harness's gsm8k strict-match pattern (with `\,` escapes) works as written
    assert.equal(
      extractAnswer("The answer is 5.\n#### 1,080", "strict", {
        extract: "regex:#### (\\-?[0-9\\.\\,]+)",
        locale: "en-US",
      }).answer,
      "1080",
    );
  });
  it("non-tag extractors give the same result in both modes", () => {
    const g = createGrader({ extract: "last-number" });
    const r = g.grade("<cevap>5</cevap> aslında 6", "6");
    assert.deepEqual(r.strict, r.flexible);
    assert.equal(r.strict.correct, true);
  });
});

describe("gradeCompletion", () => {
  it("compares with the label exactly", () => {
    assert.deepEqual(gradeCompletion("<mantık>x</mantık><cevap>40,0</cevap>", "40"), {
      strict: { valid: true, answer: "40", correct: true },
      flexible: { valid: true, answer: "40", correct: true },
    });
    assert.deepEqual(gradeCompletion("sonuç <cevap>-0</cevap>", 0), {
      strict: { valid: false, answer: null, correct: false },
      flexible: { valid: true, answer: "0", correct: true },
    });
    assert.deepEqual(gradeCompletion(good, null).strict, { valid: true, answer: "7", correct: null });
    assert.equal(gradeCompletion(good, undefined).flexible.correct, null);
    assert.equal(gradeCompletion(good, 8).strict.correct, false);
    assert.throws(() => gradeCompletion(good, "yedi"), /label/);
    // a blank label means "no label"
    assert.equal(gradeCompletion(good, "").strict.correct, null);
    assert.equal(gradeCompletion(good, "  ").flexible.correct, null);
  });
});

describe("real data: GSM8K labels", () => {
  const dir = resolve(process.cwd(), "../shared/datasets/gsm8k");
  const present = existsSync(resolve(dir, "train.jsonl")) && existsSync(resolve(dir, "test.jsonl"));
  if (!present) console.log(`# SKIP real-data GSM8K test: ${dir} is absent`);
  it("extracts all 8,792 labels as integers with gsm8k extraction in en-US", { skip: !present }, async () => {
    let n = 0;
    let withComma = 0;
    for (const split of ["train", "test"]) {
      for await (const { line, value } of readJsonl<{ answer: string }>(resolve(dir, `${split}.jsonl`))) {
        const a = extractAnswer(value.answer, "strict", { extract: "gsm8k", locale: "en-US" });
        assert.ok(a.valid, `${split}:${line}: ${value.answer.slice(-40)}`);
        assert.match(a.answer as string, /^-?\d+$/, `${split}:${line}`);
        if (/####.*,/.test(value.answer)) withComma++;
        n++;
      }
    }
    assert.equal(n, 8792);
    assert.ok(withComma > 0, "expected some en-US thousands separators");
  });
});
