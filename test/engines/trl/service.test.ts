/** The trl engine's reward service (no Python needed): auth, whole groups in ttrl's order, jax scoring. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createScorer, type RewardService, startRewardService } from "../../../src/engines/trl/service.ts";
import { resolveGrpoConfig } from "../../../src/train/config.ts";
import { DataOrder, type TrainRow } from "../../../src/train/data.ts";
import { advantages } from "../../../src/train/loss.ts";
import { scoreGroups, scoreSettings } from "../../../src/train/score.ts";

const rows: TrainRow[] = Array.from({ length: 6 }, (_, i) => ({
  id: `q${i}`,
  question: `${i} + 1?`,
  answer: String(i + 1),
  line: i + 1,
}));
const config = resolveGrpoConfig([
  {
    where: "test",
    values: {
      model: "m",
      data: "d",
      reward: "majority",
      prompts_per_step: 2,
      num_generations: 4,
      tie: "random",
    },
  },
]);
const order = new DataOrder(rows.length, config.seed, config.shuffle_dataset);
const rowAt = (step: number, pi: number) => order.index(step * 2 + pi);
const ans = (x: string) => `<mantık>\nx\n</mantık>\n<cevap>\n${x}\n</cevap>`;

let svc: RewardService;
before(async () => {
  svc = await startRewardService(createScorer({ config, rows, prompts: rows.map((r) => r.question), rowAt }));
});
after(() => svc.close());

async function post(body: unknown, token = svc.token) {
  const r = await fetch(svc.url, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe("trl engine reward service", () => {
  it("listens on 127.0.0.1 and refuses a wrong token", async () => {
    assert.match(svc.url, /^http:\/\/127\.0\.0\.1:\d+\/score$/);
    const r = await post({ step: 0, groups: [] }, "nope");
    assert.equal(r.status, 401);
  });

  it("scores a whole step exactly as the jax engine's scoreGroups (tie-break rng per step and position)", async () => {
    const step = 3;
    const ids = [rowAt(step, 0), rowAt(step, 1)];
    // Group 0 ties 2-2 (random tie-break), group 1 has a clear majority.
    const comps = [
      [ans("1"), ans("1"), ans("2"), ans("2")],
      [ans("5"), ans("5"), ans("5"), "no answer"],
    ];
    const r = await post({
      step,
      groups: ids.map((ri, pi) => ({ pi, prompt_id: rows[ri].id, completions: comps[pi] })),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const want = scoreGroups(
      ids.map((ri, pi) => ({ completions: comps[pi], label: rows[ri].answer })),
      scoreSettings(config),
      step,
    );
    const adv = advantages(want, config.scale_rewards);
    const got = r.body.groups as Record<string, unknown>[];
    got.forEach((g, pi) => {
      assert.deepEqual(g.total, want[pi].rewards);
      assert.equal(g.pseudo_label, want[pi].vote.pseudoLabel);
      assert.deepEqual(g.advantages, adv.advantages[pi]);
      assert.deepEqual(g.rewarded_indices, [0, 1, 2, 3]);
    });
    assert.deepEqual(got[1].total, [1, 1, 1, 0]);
  });

  it("refuses an incomplete group, naming the prompt id, and a prompt out of ttrl's order", async () => {
    const ri0 = rowAt(0, 0);
    const ri1 = rowAt(0, 1);
    const a = await post({
      step: 0,
      groups: [
        { pi: 0, prompt_id: rows[ri0].id, completions: [ans("1"), ans("1")] },
        { pi: 1, prompt_id: rows[ri1].id, completions: [ans("1"), ans("1"), ans("1"), ans("1")] },
      ],
    });
    assert.equal(a.status, 400);
    assert.match(
      String(a.body.error),
      new RegExp(`incomplete group for prompt id "${rows[ri0].id}" at step 1: 2 of 4`),
    );
    const wrong = rows.find((_, i) => i !== ri0 && i !== ri1) as TrainRow;
    const b = await post({
      step: 0,
      groups: [
        { pi: 0, prompt_id: wrong.id, completions: [ans("1"), ans("1"), ans("1"), ans("1")] },
        { pi: 1, prompt_id: rows[ri1].id, completions: [ans("1"), ans("1"), ans("1"), ans("1")] },
      ],
    });
    assert.equal(b.status, 400);
    assert.match(
      String(b.body.error),
      new RegExp(`prompt id "${wrong.id}" but ttrl's data order has "${rows[ri0].id}"`),
    );
    const c = await post({ step: 0, groups: [{ pi: 1, prompt_id: rows[ri1].id, completions: [] }] });
    assert.equal(c.status, 400);
    assert.ok(svc.error, "the first scoring error is kept for the run's message");
  });
});
