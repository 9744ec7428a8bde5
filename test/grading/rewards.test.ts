import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  accuracyReward,
  formatReward,
  majorityReward,
  majorityVote,
  weightedRewards,
} from "../../src/rewards/index.ts";
import { Rng } from "../../src/util/rng.ts";

const c = (ans: string) => `<mantık>\nhesap\n</mantık>\n<cevap>\n${ans}\n</cevap>`;
const ctx = (seed = 1) => ({ rng: new Rng(seed) });

describe("format and accuracy rewards", () => {
  it("format reward: strict/flexible with configurable values", () => {
    const group = { completions: [c("5"), `önsöz ${c("5")}`, c("beş")] };
    assert.deepEqual(formatReward()(group, ctx()).rewards, [1, 0, 0]);
    assert.deepEqual(formatReward({ mode: "flexible" })(group, ctx()).rewards, [1, 1, 0]);
    assert.deepEqual(formatReward({ value: 0.5, otherwise: -1 })(group, ctx()).rewards, [0.5, -1, -1]);
  });
  it("accuracy reward compares exactly and needs a label", () => {
    const group = { completions: [c("40"), c("40,0"), c("41"), c("40.0")], label: "40" };
    assert.deepEqual(accuracyReward()(group, ctx()).rewards, [1, 1, 0, 0]);
    assert.deepEqual(accuracyReward()({ ...group, label: 40 }, ctx()).rewards, [1, 1, 0, 0]);
    assert.throws(() => accuracyReward()({ completions: [c("1")] }, ctx()), /needs a label/);
    assert.throws(() => accuracyReward()({ completions: [c("1")], label: "" }, ctx()), /needs a label/);
  });
});

describe("majority reward", () => {
  it("rewards agreement with the most frequent value; 40 and 40,0 are one vote; invalid do not vote", () => {
    const g = { completions: [c("40"), c("40,0"), c("12"), c("12"), "bozuk", c("12 elma"), c("40")] };
    const r = majorityReward()(g, ctx());
    assert.deepEqual(r.rewards, [1, 1, 0, 0, 0, 0, 1]);
    assert.equal(r.diagnostics?.pseudo_label, "40");
    assert.equal(r.diagnostics?.majority_ratio, 3 / 7);
    assert.equal(r.diagnostics?.label_accuracy, undefined);
    assert.equal(r.diagnostics?.reward_accuracy, undefined);
    const blank = majorityReward()({ ...g, label: "" }, ctx()).diagnostics;
    assert.equal(blank?.label_accuracy, undefined);
  });
  it("invalid answers never win even when they are the most common", () => {
    const g = { completions: ["x", "y", "z", c("7")] };
    const r = majorityReward()(g, ctx());
    assert.deepEqual(r.rewards, [0, 0, 0, 1]);
    assert.equal(r.diagnostics?.pseudo_label, "7");
    assert.equal(r.diagnostics?.majority_ratio, 1 / 4);
  });
  it("no valid answer: no pseudo-label, all 0", () => {
    const r = majorityReward()({ completions: ["a", "b"], label: "3" }, ctx());
    assert.deepEqual(r.rewards, [0, 0]);
    assert.equal(r.diagnostics?.pseudo_label, null);
    assert.equal(r.diagnostics?.majority_ratio, 0);
    assert.equal(r.diagnostics?.label_accuracy, 0);
  });
  it("tie policies: first, none, random (seeded, uniform over tied values)", () => {
    const g = { completions: [c("2"), c("1"), c("1"), c("2"), c("3")] };
    assert.deepEqual(majorityReward({ tie: "first" })(g, ctx()).rewards, [1, 0, 0, 1, 0]);
    const none = majorityReward({ tie: "none" })(g, ctx());
    assert.deepEqual(none.rewards, [0, 0, 0, 0, 0]);
    assert.equal(none.diagnostics?.pseudo_label, null);
    const rnd = majorityReward({ tie: "random" });
    assert.deepEqual(rnd(g, ctx(5)).rewards, rnd(g, ctx(5)).rewards);
    const seen: Record<string, number> = {};
    const rng = new Rng(9);
    for (let i = 0; i < 2000; i++) {
      const p = rnd(g, { rng }).diagnostics?.pseudo_label as string;
      seen[p] = (seen[p] ?? 0) + 1;
    }
    assert.deepEqual(Object.keys(seen).sort(), ["1", "2"]);
    assert.ok(seen["1"] > 850 && seen["2"] > 850, JSON.stringify(seen));
    // all different is a tie too
    assert.deepEqual(
      majorityReward({ tie: "none" })({ completions: [c("1"), c("2")] }, ctx()).rewards,
      [0, 0],
    );
    assert.deepEqual(
      majorityReward({ tie: "first" })({ completions: [c("1"), c("2")] }, ctx()).rewards,
      [1, 0],
    );
  });
  it("diagnostics with a label: label accuracy and reward accuracy", () => {
    const g = { completions: [c("5"), c("5"), c("6"), "x"], label: 6 };
    const d = majorityReward()(g, ctx()).diagnostics;
    assert.equal(d?.pseudo_label, "5");
    assert.equal(d?.label_accuracy, 0);
    // majority rewards [1,1,0,0] vs accuracy [0,0,1,0] → agree only on the invalid one
    assert.equal(d?.reward_accuracy, 1 / 4);
    const d2 = majorityReward()({ ...g, label: "5" }, ctx()).diagnostics;
    assert.equal(d2?.label_accuracy, 1);
    assert.equal(d2?.reward_accuracy, 1);
  });
  it("M of N: all vote, M rewarded (first or random, seeded)", () => {
    const g = { completions: [c("1"), c("2"), c("2"), c("2"), c("1"), c("2")] };
    const first = majorityReward({ rewardedCount: 3 })(g, ctx());
    assert.deepEqual(first.rewards, [0, 1, 1]);
    assert.deepEqual(first.diagnostics?.rewarded_indices, [0, 1, 2]);
    assert.equal(first.diagnostics?.majority_ratio, 4 / 6);
    const f = majorityReward({ rewardedCount: 4, rewardedPick: "random" });
    const a = f(g, ctx(3));
    const b = f(g, ctx(3));
    assert.deepEqual(a, b);
    const idx = a.diagnostics?.rewarded_indices as number[];
    assert.equal(idx.length, 4);
    assert.deepEqual(
      a.rewards,
      idx.map((i) => (i === 0 || i === 4 ? 0 : 1)),
    );
    assert.throws(() => majorityReward({ rewardedCount: 7 })(g, ctx()), /exceeds/);
    assert.throws(() => majorityReward({ rewardedCount: 0 }), /positive/);
  });
  it("property: permuting a group permutes its rewards (random and none tie policies)", () => {
    const answerArb = fc.oneof(
      fc.constantFrom("1", "2", "3", "40", "40,0", "1.000", "1000"),
      fc.constant(null),
    );
    fc.assert(
      fc.property(
        fc.array(answerArb, { minLength: 1, maxLength: 12 }),
        fc.integer(),
        fc.constantFrom("random" as const, "none" as const),
        fc.nat(),
        (answers, shuffleSeed, tie, seed) => {
          const completions = answers.map((a) => (a === null ? "bozuk" : c(a)));
          const perm = new Rng(shuffleSeed).shuffle(completions.map((_, i) => i));
          const f = majorityReward({ tie });
          const r1 = f({ completions }, { rng: new Rng(seed) });
          const r2 = f({ completions: perm.map((i) => completions[i]) }, { rng: new Rng(seed) });
          assert.deepEqual(
            r2.rewards,
            perm.map((i) => r1.rewards[i]),
          );
          assert.equal(r2.diagnostics?.pseudo_label, r1.diagnostics?.pseudo_label);
          assert.equal(r2.diagnostics?.majority_ratio, r1.diagnostics?.majority_ratio);
        },
      ),
      { numRuns: 300 },
    );
  });
  it("property: the pseudo-label has the top count and rewards mark exactly its voters", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.constantFrom("1", "2", "3", "4")), { maxLength: 10 }),
        fc.nat(),
        (answers, seed) => {
          const v = majorityVote(answers, "random", new Rng(seed));
          const counts = new Map<string, number>();
          for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
          const top = Math.max(0, ...counts.values());
          assert.equal(v.topCount, top);
          if (top === 0) assert.equal(v.pseudoLabel, null);
          else assert.equal(counts.get(v.pseudoLabel as string), top);
        },
      ),
    );
  });
});

describe("weightedRewards", () => {
  it("sums weighted rewards like TRL's reward_weights", () => {
    const w = weightedRewards([
      { name: "format", fn: formatReward(), weight: 0.5 },
      { name: "majority", fn: majorityReward({ tie: "first" }), weight: 1 },
    ]);
    const r = w({ completions: [c("3"), c("3"), "bozuk <cevap>4</cevap>"] }, ctx());
    assert.deepEqual(r.perFunction.format, [1, 1, 0]);
    assert.deepEqual(r.perFunction.majority, [1, 1, 0]);
    assert.deepEqual(r.total, [1.5, 1.5, 0]);
    assert.equal(r.diagnostics["majority/pseudo_label"], "3");
  });
  it("restricts other rewards to the majority reward's rewarded subset", () => {
    const w = weightedRewards([
      { name: "format", fn: formatReward({ mode: "flexible" }), weight: 2 },
      { name: "majority", fn: majorityReward({ rewardedCount: 2 }), weight: 1 },
    ]);
    const r = w({ completions: ["x", c("3"), c("3"), c("3")] }, ctx());
    assert.deepEqual(r.diagnostics.rewarded_indices, [0, 1]);
    assert.deepEqual(r.perFunction.format, [0, 1]);
    assert.deepEqual(r.total, [0, 3]);
    assert.throws(
      () =>
        weightedRewards([
          { name: "a", fn: formatReward(), weight: 1 },
          { name: "a", fn: formatReward(), weight: 1 },
        ]),
      /twice/,
    );
  });
});
