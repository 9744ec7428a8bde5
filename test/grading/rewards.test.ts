import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  accuracyReward,
  formatReward,
  groupVoter,
  majorityReward,
  majorityVote,
  REWARD_NAMES,
  REWARDS,
  voteMonitors,
  weightedRewards,
} from "../../src/rewards/index.ts";
import { Rng } from "../../src/util/rng.ts";

const c = (ans: string) => `<mantık>\nhesap\n</mantık>\n<cevap>\n${ans}\n</cevap>`;
const ctx = (seed = 1) => ({ rng: new Rng(seed) });
/** The vote the majority reward takes (strict, tie random unless given) and its monitors. */
const vote = (
  g: { completions: string[]; label?: string | number | null },
  tie = "random" as const,
  seed = 1,
) => groupVoter({ tie })(g, new Rng(seed));
const monitors = (g: { completions: string[]; label?: string | number | null }) =>
  voteMonitors(vote(g), g.label);

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
    assert.equal(vote(g).pseudoLabel, "40");
    assert.deepEqual(monitors(g), { majorityRatio: 3 / 7 });
    assert.deepEqual(monitors({ ...g, label: "" }), { majorityRatio: 3 / 7 });
  });
  it("invalid answers never win even when they are the most common", () => {
    const g = { completions: ["x", "y", "z", c("7")] };
    const r = majorityReward()(g, ctx());
    assert.deepEqual(r.rewards, [0, 0, 0, 1]);
    assert.equal(vote(g).pseudoLabel, "7");
    assert.equal(monitors(g).majorityRatio, 1 / 4);
  });
  it("no valid answer: no pseudo-label, all 0", () => {
    const g = { completions: ["a", "b"], label: "3" };
    assert.deepEqual(majorityReward()(g, ctx()).rewards, [0, 0]);
    assert.equal(vote(g).pseudoLabel, null);
    // no pseudo-label: wrong; both majority rewards (0) equal both accuracies (0)
    assert.deepEqual(monitors(g), { majorityRatio: 0, labelAccuracy: 0, rewardAccuracy: 1 });
  });
  it("tie policies: first, none, random (seeded, uniform over tied values)", () => {
    const g = { completions: [c("2"), c("1"), c("1"), c("2"), c("3")] };
    assert.deepEqual(majorityReward({ tie: "first" })(g, ctx()).rewards, [1, 0, 0, 1, 0]);
    const none = majorityReward({ tie: "none" })(g, ctx());
    assert.deepEqual(none.rewards, [0, 0, 0, 0, 0]);
    assert.equal(groupVoter({ tie: "none" })(g).pseudoLabel, null);
    const rnd = majorityReward({ tie: "random" });
    assert.deepEqual(rnd(g, ctx(5)).rewards, rnd(g, ctx(5)).rewards);
    const seen: Record<string, number> = {};
    const rng = new Rng(9);
    for (let i = 0; i < 2000; i++) {
      const p = String(rnd(g, { rng }).rewards.indexOf(1) === 0 ? "2" : "1");
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
  it("monitors with a label: pseudo-label accuracy and reward accuracy (over the given completions)", () => {
    const g = { completions: [c("5"), c("5"), c("6"), "x"], label: 6 };
    assert.equal(vote(g).pseudoLabel, "5");
    // majority rewards [1,1,0,0] vs accuracy [0,0,1,0] → agree only on the invalid one
    assert.deepEqual(monitors(g), { majorityRatio: 2 / 4, labelAccuracy: 0, rewardAccuracy: 1 / 4 });
    assert.deepEqual(monitors({ ...g, label: "5" }), {
      majorityRatio: 2 / 4,
      labelAccuracy: 1,
      rewardAccuracy: 1,
    });
    // over completions 2 and 3 only: agree on 3 (invalid) but not on 2 (accurate, not rewarded)
    assert.equal(voteMonitors(vote(g), g.label, [2, 3]).rewardAccuracy, 1 / 2);
  });
  it("the majority reward follows a vote handed to it (the trainer's), else votes itself", () => {
    const g = { completions: [c("1"), c("2"), c("2")] };
    const given = majorityVote(
      ["1", "2", "2"].map(() => "1"),
      "first",
    );
    assert.deepEqual(majorityReward()(g, { ...ctx(), vote: given }).rewards, [1, 1, 1]);
    assert.deepEqual(majorityReward()(g, ctx()).rewards, [0, 1, 1]);
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
          const v1 = groupVoter({ tie })({ completions }, new Rng(seed));
          const v2 = groupVoter({ tie })({ completions: perm.map((i) => completions[i]) }, new Rng(seed));
          assert.equal(v2.pseudoLabel, v1.pseudoLabel);
          assert.equal(v2.topCount, v1.topCount);
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
  });
  it("rejects a reward named twice and a reward that returns the wrong count", () => {
    assert.throws(
      () =>
        weightedRewards([{ name: "short", fn: () => ({ rewards: [1] }), weight: 1 }])(
          { completions: ["a", "b"] },
          ctx(),
        ),
      /reward "short" returned 1 rewards for a group of 2/,
    );
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

describe("reward registry", () => {
  it("names every reward once, with the label rule of each", () => {
    assert.deepEqual(REWARD_NAMES, ["accuracy", "format", "majority"]);
    assert.deepEqual(
      REWARD_NAMES.map((n) => REWARDS[n].needsLabel),
      [true, false, false],
    );
    const g = { completions: [c("3"), c("3"), c("4")], label: "4" };
    const s = { tie: "first" as const };
    assert.deepEqual(REWARDS.accuracy.make(s)(g, ctx()).rewards, [0, 0, 1]);
    assert.deepEqual(REWARDS.format.make(s)(g, ctx()).rewards, [1, 1, 1]);
    assert.deepEqual(REWARDS.majority.make(s)(g, ctx()).rewards, [1, 1, 0]);
  });
});
