// scoreGroups: whole groups are voted on and rewarded; the trainer keeps M of N; monitors in every run.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GRPO_DEFAULTS, type GrpoConfig } from "../../src/train/config.ts";
import { scoreGroups, scoreSettings } from "../../src/train/score.ts";

const c = (ans: string) => `<mantık>\nhesap\n</mantık>\n<cevap>\n${ans}\n</cevap>`;
const cfg = (over: Partial<GrpoConfig>): GrpoConfig => ({ ...GRPO_DEFAULTS, ...over });

describe("scoreGroups", () => {
  const group = { completions: [c("1"), c("2"), c("2"), c("2"), "bozuk", c("2")], label: "1" };

  it("N vote, M kept: rewards of all N, the first M kept, monitors over the kept", () => {
    const s = scoreSettings(
      cfg({
        reward: "majority",
        reward_funcs: ["format", "majority"],
        reward_weights: [0.5, 1],
        rewarded_count: 3,
      }),
    );
    const [g] = scoreGroups([group], s, 0);
    assert.deepEqual(g.kept, [0, 1, 2]);
    assert.deepEqual(g.perFunction.majority, [0, 1, 1, 1, 0, 1]);
    assert.deepEqual(g.perFunction.format, [1, 1, 1, 1, 0, 1]);
    assert.deepEqual(g.rewards, [0.5, 1.5, 1.5, 1.5, 0, 1.5]);
    assert.equal(g.vote.pseudoLabel, "2");
    assert.equal(g.monitors.majorityRatio, 4 / 6);
    assert.equal(g.monitors.labelAccuracy, 0);
    // kept 0..2: majority rewards [0,1,1] vs accuracy [1,0,0] → no agreement
    assert.equal(g.monitors.rewardAccuracy, 0);
    assert.deepEqual(g.monitors.accuracy, [1, 0, 0, 0, 0, 0]);
  });

  it("random M is seeded by (seed, step, group): repeatable, and differs across steps", () => {
    const s = scoreSettings(cfg({ reward: "majority", rewarded_count: 4, rewarded_pick: "random", seed: 3 }));
    const a = scoreGroups([group, group], s, 5);
    assert.deepEqual(scoreGroups([group, group], s, 5), a);
    for (const g of a) {
      assert.equal(g.kept.length, 4);
      assert.deepEqual(
        [...g.kept].sort((x, y) => x - y),
        g.kept,
      );
    }
    const picks = new Set(
      Array.from({ length: 20 }, (_, step) => scoreGroups([group], s, step)[0].kept.join(",")),
    );
    assert.ok(picks.size > 3, `only ${picks.size} different picks in 20 steps`);
    assert.throws(
      () => scoreGroups([group], scoreSettings(cfg({ reward: "majority", rewarded_count: 7 })), 0),
      /rewarded_count 7 exceeds the group size 6/,
    );
  });

  it("an accuracy run has the label-free monitors too (majority ratio, pseudo-label accuracy)", () => {
    const [g] = scoreGroups([group], scoreSettings(cfg({ reward: "accuracy" })), 0);
    assert.deepEqual(g.perFunction.accuracy, [1, 0, 0, 0, 0, 0]);
    assert.equal(g.vote.pseudoLabel, "2");
    assert.deepEqual(
      { ...g.monitors, accuracy: undefined },
      { majorityRatio: 4 / 6, labelAccuracy: 0, rewardAccuracy: 1 / 6, accuracy: undefined },
    );
  });

  it("unlabeled rows: no label monitors, the majority reward still works", () => {
    const [g] = scoreGroups(
      [{ completions: group.completions }],
      scoreSettings(cfg({ reward: "majority" })),
      0,
    );
    assert.deepEqual(g.rewards, [0, 1, 1, 1, 0, 1]);
    assert.deepEqual(g.monitors, { majorityRatio: 4 / 6 });
  });
});
