/**
 * The reward service of the trl engine: ttrl's own rewards (the jax engine's `buildReward` over
 * `weightedRewards`, the same seeded tie-breaking per (step, prompt position), the same advantages) behind an
 * HTTP endpoint on 127.0.0.1 with a random port and a random bearer token. The Python side posts whole
 * groups of one step; every group is checked against ttrl's data order (prompt id at that step and position)
 * and must hold exactly num_generations completions — never a vote over part of a group.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { GrpoConfig } from "../../train/config.ts";
import type { TrainRow } from "../../train/data.ts";
import { advantages as groupAdvantages } from "../../train/loss.ts";
import { scoreGroups, scoreSettings } from "../../train/score.ts";
import { TtrlError } from "../../util/errors.ts";

export interface ScoreRequest {
  /** 0-based trainer step. */
  step: number;
  groups: { pi: number; prompt_id: string; completions: string[] }[];
}

export interface ScoredGroup {
  pi: number;
  prompt_id: string;
  prompt: string;
  label: string | number | null;
  /** Σ weight × reward of each rewarded completion. */
  total: number[];
  per_function: Record<string, number[]>;
  /** Which of the N completions are rewarded (and trained): all N unless rewarded_count M < N. */
  rewarded_indices: number[];
  /** Canonical answer of each of the N completions (null when invalid). */
  answers: (string | null)[];
  /** Accuracy against the label of each of the N completions (monitoring; null without a label). */
  accuracy: number[] | null;
  pseudo_label: string | null;
  majority_ratio: number | null;
  label_accuracy: number | null;
  reward_accuracy: number | null;
  /** The jax engine's group-relative advantages of the rewarded completions. */
  advantages: number[];
  zero_std: boolean;
}

export interface Scorer {
  score(req: ScoreRequest): { groups: ScoredGroup[] };
}

/**
 * Scoring of whole groups, exactly as the jax engine does it for step `step`, position `pi`: `rowAt(step,
 * pi)` is the row ttrl's data order puts there.
 */
export function createScorer(o: {
  config: GrpoConfig;
  rows: TrainRow[];
  prompts: string[];
  rowAt: (step: number, pi: number) => number;
}): Scorer {
  const c = o.config;
  const settings = scoreSettings(c);
  const N = c.num_generations;
  const P = c.prompts_per_step;
  return {
    score(req) {
      if (
        !req ||
        typeof req !== "object" ||
        !Number.isInteger(req.step) ||
        req.step < 0 ||
        !Array.isArray(req.groups)
      )
        throw new TtrlError("reward request: expected {step, groups[]}");
      const at = `reward request at step ${req.step + 1}`;
      const byPi = new Map<number, ScoreRequest["groups"][number]>();
      for (const g of req.groups) {
        if (!g || !Number.isInteger(g.pi) || g.pi < 0 || g.pi >= P || !Array.isArray(g.completions))
          throw new TtrlError(`${at}: malformed group ${JSON.stringify(g)?.slice(0, 200)}`);
        if (byPi.has(g.pi)) throw new TtrlError(`${at}: position ${g.pi} sent twice`);
        byPi.set(g.pi, g);
      }
      // A step is scored whole, in ttrl's order, as the jax engine scores it (its rng forks per position).
      const rowIdx: number[] = [];
      for (let pi = 0; pi < P; pi++) {
        const ri = o.rowAt(req.step, pi);
        const row = o.rows[ri];
        const g = byPi.get(pi);
        if (!g)
          throw new TtrlError(`${at}: no group for prompt id ${JSON.stringify(row.id)} (position ${pi})`);
        if (row.id !== String(g.prompt_id))
          throw new TtrlError(
            `${at}, position ${pi}: prompt id ${JSON.stringify(g.prompt_id)} but ttrl's data order has ${JSON.stringify(row.id)} there`,
          );
        if (g.completions.length !== N || g.completions.some((t) => typeof t !== "string"))
          throw new TtrlError(
            `incomplete group for prompt id ${JSON.stringify(row.id)} at step ${req.step + 1}: ${g.completions.length} of ${N} completions`,
          );
        rowIdx.push(ri);
      }
      const groups = rowIdx.map((ri, pi) => ({
        completions: (byPi.get(pi) as ScoreRequest["groups"][number]).completions,
        label: o.rows[ri].answer ?? null,
      }));
      const scored = scoreGroups(groups, settings, req.step);
      const adv = groupAdvantages(scored, c.scale_rewards);
      return {
        groups: scored.map((sg, pi) => {
          const ri = rowIdx[pi];
          const perFunction: Record<string, number[]> = {};
          for (const [k, v] of Object.entries(sg.perFunction)) perFunction[k] = sg.kept.map((i) => v[i]);
          return {
            pi,
            prompt_id: o.rows[ri].id,
            prompt: o.prompts[ri],
            label: o.rows[ri].answer ?? null,
            total: sg.kept.map((i) => sg.rewards[i]),
            per_function: perFunction,
            rewarded_indices: sg.kept,
            answers: sg.vote.answers,
            accuracy: sg.monitors.accuracy ?? null,
            pseudo_label: sg.vote.pseudoLabel,
            majority_ratio: sg.monitors.majorityRatio,
            label_accuracy: sg.monitors.labelAccuracy ?? null,
            reward_accuracy: sg.monitors.rewardAccuracy ?? null,
            advantages: adv.advantages[pi],
            zero_std: adv.zeroStd[pi],
          };
        }),
      };
    },
  };
}

export interface RewardService {
  url: string;
  token: string;
  /** Seconds spent scoring (inside the handler) and requests answered. */
  stats: { seconds: number; requests: number };
  /** The first scoring error, if any (the run stops with it). */
  error: Error | null;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage, limit = 256 * 2 ** 20): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const ch of req) {
    n += (ch as Buffer).length;
    if (n > limit) throw new TtrlError("reward request too large");
    chunks.push(ch as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Start the service on 127.0.0.1 (random port, random bearer token). */
export async function startRewardService(scorer: Scorer): Promise<RewardService> {
  const token = randomBytes(24).toString("hex");
  const expected = Buffer.from(`Bearer ${token}`);
  const svc: RewardService = {
    url: "",
    token,
    stats: { seconds: 0, requests: 0 },
    error: null,
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    const send = (code: number, body: unknown) => {
      const s = JSON.stringify(body);
      res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(s) });
      res.end(s);
    };
    const auth = Buffer.from(String(req.headers.authorization ?? ""));
    if (auth.length !== expected.length || !timingSafeEqual(auth, expected))
      return send(401, { error: "bad token" });
    if (req.method !== "POST" || req.url !== "/score") return send(404, { error: "POST /score only" });
    try {
      const body = JSON.parse(await readBody(req)) as ScoreRequest;
      const t0 = performance.now();
      const out = scorer.score(body);
      svc.stats.seconds += (performance.now() - t0) / 1000;
      svc.stats.requests++;
      send(200, out);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      svc.error ??= err;
      send(400, { error: err.message });
    }
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  svc.url = `http://127.0.0.1:${port}/score`;
  svc.close = () =>
    new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  return svc;
}
