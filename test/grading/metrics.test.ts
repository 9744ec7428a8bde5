import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  binomial,
  bootstrapCI,
  computeMetrics,
  consAtK,
  consAtKFirst,
  MetricsAccumulator,
  passAtK,
} from "../../src/metrics/index.ts";
import { Rng } from "../../src/util/rng.ts";

/** All k-subsets of [0, n). */
function* subsets(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc.slice();
    return;
  }
  for (let i = start; i <= n - (k - acc.length); i++) {
    acc.push(i);
    yield* subsets(n, k, i + 1, acc);
    acc.pop();
  }
}

function bruteConsScore(answers: (string | null)[], label: string): number {
  const counts = new Map<string, number>();
  for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
  if (counts.size === 0) return 0;
  const top = Math.max(...counts.values());
  const tied = [...counts].filter(([, c]) => c === top).map(([v]) => v);
  return tied.includes(label) ? 1 / tied.length : 0;
}

function bruteCons(answers: (string | null)[], label: string, k: number): number {
  let s = 0;
  let t = 0;
  for (const sub of subsets(answers.length, k)) {
    s += bruteConsScore(
      sub.map((i) => answers[i]),
      label,
    );
    t++;
  }
  return s / t;
}

describe("passAtK", () => {
  it("matches brute-force enumeration of k-subsets", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 10 })
          .chain((n) =>
            fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n }), fc.integer({ min: 1, max: n })),
          ),
        ([n, c, k]) => {
          let hit = 0;
          let tot = 0;
          for (const s of subsets(n, k)) {
            tot++;
            if (s.some((i) => i < c)) hit++;
          }
          const p = passAtK(n, c, k);
          assert.ok(Math.abs(p - hit / tot) < 1e-12, `n=${n} c=${c} k=${k}: ${p} vs ${hit / tot}`);
        },
      ),
      { numRuns: 200 },
    );
  });
  it("is stable for large n (no overflowing binomials)", () => {
    const p = passAtK(10000, 3, 500);
    const exact = 1 - (9500 * 9499 * 9498) / (10000 * 9999 * 9998);
    assert.ok(Math.abs(p - exact) < 1e-12);
    assert.equal(passAtK(2000, 0, 1000), 0);
    assert.equal(passAtK(2000, 1500, 1000), 1);
    assert.equal(passAtK(16, 4, 1), 0.25);
    const q = passAtK(5000, 2500, 1200);
    assert.ok(q > 0.999 && q <= 1);
  });
  it("rejects bad arguments", () => {
    assert.throws(() => passAtK(4, 1, 5), /exceeds/);
    assert.throws(() => passAtK(4, 5, 1), /c must be/);
    assert.throws(() => passAtK(4, 1, 0), /positive/);
  });
  it("binomial", () => {
    assert.equal(binomial(16, 8), 12870);
    assert.equal(binomial(64, 1), 64);
    assert.ok(binomial(64, 8, 10000) > 10000);
  });
});

describe("consAtK", () => {
  const valueArb = fc.option(fc.constantFrom("1", "2", "3", "4"), { freq: 4 });
  it("matches brute force for small n (all subsets, ties 1/|tied|)", () => {
    fc.assert(
      fc.property(
        fc
          .array(valueArb, { minLength: 1, maxLength: 9 })
          .chain((a) =>
            fc.tuple(fc.constant(a), fc.integer({ min: 1, max: a.length }), fc.constantFrom("1", "2", "5")),
          ),
        ([answers, k, label]) => {
          const got = consAtK(answers, label, k, new Rng(1));
          const want = bruteCons(answers, label, k);
          assert.ok(
            Math.abs(got - want) < 1e-12,
            `${JSON.stringify(answers)} k=${k} label=${label}: ${got} vs ${want}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
  it("hand-computed cases", () => {
    assert.equal(consAtK(["1", "2"], "1", 2, new Rng(0)), 0.5);
    assert.equal(consAtK([null, null, "1"], "1", 3, new Rng(0)), 1);
    assert.equal(consAtK([null, null], "1", 2, new Rng(0)), 0);
    assert.equal(consAtK(["2", "2", "1"], "1", 3, new Rng(0)), 0);
    // k=1 is plain accuracy
    assert.equal(consAtK(["1", "2", null, "1"], "1", 1, new Rng(0)), 0.5);
    assert.equal(consAtKFirst(["1", "2", "2", "2"], "1", 2), 0.5);
    assert.equal(consAtKFirst(["2", "1", "1", "1"], "1", 1), 0);
  });
  it("samples 10,000 seeded subsets when C(n,k) > 10,000, close to the exact value", () => {
    const rng = new Rng(123);
    const pool = ["1", "1", "1", "2", "2", "3", null];
    const answers = Array.from({ length: 20 }, () => pool[rng.int(pool.length)]);
    const k = 9; // C(20, 9) = 167,960
    const a = consAtK(answers, "1", k, new Rng(7));
    const b = consAtK(answers, "1", k, new Rng(7));
    assert.equal(a, b);
    const exact = bruteCons(answers, "1", k);
    assert.ok(Math.abs(a - exact) < 0.02, `${a} vs ${exact}`);
  });
});

describe("bootstrapCI", () => {
  it("is seeded, brackets the estimate, and narrows with more questions", () => {
    const rng = new Rng(5);
    const correct = Array.from({ length: 200 }, () => rng.int(9));
    const totals = correct.map(() => 8);
    const mean = correct.reduce((a, b) => a + Math.min(b, 8), 0) / 1600;
    const c = correct.map((x) => Math.min(x, 8));
    const ci = bootstrapCI(c, totals, new Rng(1)) as [number, number];
    assert.deepEqual(bootstrapCI(c, totals, new Rng(1)), ci);
    assert.ok(ci[0] < mean && mean < ci[1], `${ci} vs ${mean}`);
    const ci4 = bootstrapCI(
      [...c, ...c, ...c, ...c],
      [...totals, ...totals, ...totals, ...totals],
      new Rng(1),
    ) as [number, number];
    assert.ok(ci4[1] - ci4[0] < ci[1] - ci[0]);
    assert.equal(bootstrapCI([], [], new Rng(1)), null);
  });
});

const c = (ans: string) => `<mantık>x</mantık><cevap>${ans}</cevap>`;

describe("computeMetrics", () => {
  it("computes every metric per mode (hand-checked)", async () => {
    const rows = [
      // strict: 7, 7, invalid(flexible 7), 3 ; label 7
      { id: "a", label: "7", completions: [c("7"), c("7,0"), `önce ${c("7")}`, c("3")] },
      // strict: 2, 2, 5, 5 ; label 5 → tie
      { id: "b", label: 5, completions: [c("2"), c("2"), c("5"), c("5")] },
      // unlabelled: counts in valid_ratio only
      { id: "c", completions: [c("1"), "bozuk", "bozuk", c("1")] },
    ];
    const m = await computeMetrics(rows, { ks: [1, 2, 4] });
    assert.equal(m.n_questions, 3);
    assert.equal(m.n_completions, 12);
    assert.equal(m.n_labelled, 2);
    assert.equal(m.strict.valid_ratio, 9 / 12);
    assert.equal(m.flexible.valid_ratio, 10 / 12);
    assert.equal(m.strict.accuracy, 4 / 8);
    assert.equal(m.flexible.accuracy, 5 / 8);
    assert.equal(m.strict["pass@k"]["1"], (2 / 4 + 2 / 4) / 2);
    assert.equal(m.strict["pass@k"]["4"], 1);
    assert.equal(m.strict["pass@k_first"]["1"], (1 + 0) / 2);
    assert.equal(m.strict["pass@k_first"]["2"], (1 + 0) / 2);
    assert.equal(m.strict["cons@k_first"]["4"], (1 + 0.5) / 2);
    assert.equal(m.flexible["cons@k_first"]["4"], (1 + 0.5) / 2);
    assert.equal(m.strict["cons@k_first"]["2"], (1 + 0) / 2);
    // cons@2 for "a" strict: subsets of [7,7,null,3]: {7,7}1 {7,n}1 {7,3}.5 {7,n}1 {7,3}.5 {n,3}0 → 4/6
    // cons@2 for "b": {2,2}0 {2,5}.5 ×4 {5,5}1 → 3/6
    assert.ok(Math.abs((m.strict["cons@k"]["2"] as number) - (4 / 6 + 3 / 6) / 2) < 1e-12);
    const ci = m.strict.ci95.accuracy as [number, number];
    assert.ok(ci[0] <= 0.5 && 0.5 <= ci[1]);
    assert.deepEqual(Object.keys(m.strict).sort(), [
      "accuracy",
      "ci95",
      "cons@k",
      "cons@k_first",
      "pass@k",
      "pass@k_first",
      "valid_ratio",
    ]);
  });
  it("non-tag extractors give identical strict and flexible sections", async () => {
    const rows = [{ id: "1", label: 4, completions: ["2+2 = 4", "bence 5", "4", "yok"] }];
    const m = await computeMetrics(rows, { ks: [1, 2], extract: "last-number" });
    assert.deepEqual(m.strict, m.flexible);
    assert.equal(m.strict.accuracy, 0.5);
  });
  it("is deterministic and rejects malformed rows and k > n without counting them", async () => {
    const acc = new MetricsAccumulator({ ks: [1, 4] });
    assert.throws(() => acc.add({ id: "x", completions: [c("1")] }), /fewer than k=4/);
    assert.throws(() => acc.add({ id: "x", completions: "no" } as never), /completions/);
    assert.throws(() => acc.add({ id: "x", label: "yedi", completions: [c("1")] }), /label/);
    assert.equal(acc.nQuestions, 0);
    const rng = new Rng(3);
    const rows = Array.from({ length: 30 }, (_, q) => ({
      id: String(q),
      label: String(rng.int(3)),
      completions: Array.from({ length: 16 }, () => c(String(rng.int(3)))),
    }));
    const a = await computeMetrics(rows, { ks: [1, 8], seed: 9 });
    const b = await computeMetrics(
      (async function* () {
        yield* rows;
      })(),
      { ks: [8, 1], seed: 9 },
    );
    assert.deepEqual(a, b);
  });
});
