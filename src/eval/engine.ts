/**
 * The engine seam shared by `ttrl eval` (local backend) and `ttrl serve`: a tokenizer plus a batched
 * `generate` with one seed per sequence (so a sequence's output never depends on what it was batched with).
 * `loadEngine(dir)` adapts the real model engine (src/model); `fakeEngine()` is a deterministic stand-in
 * with a character tokenizer, used by tests of the HTTP plumbing.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { TtrlError } from "../util/errors.ts";
import { hashString, Rng } from "../util/rng.ts";

export interface EngineGenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  greedy?: boolean;
  seeds?: number[];
  stop?: string[];
  /** Streaming: after each decoding step, the token each running sequence sampled and its raw logits [V]. */
  onStep?: (sampled: { seq: number; token: number; logits: Float32Array }[]) => void | Promise<void>;
  /** Cancellation: a sequence for which this returns true stops early (its client went away). */
  cancelled?: (seq: number) => boolean;
}

export interface EngineGeneration {
  tokens: number[];
  text: string;
  finishReason: "stop" | "eos" | "length";
}

export interface EngineTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  applyChatTemplate(
    messages: { role: string; content: string }[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
}

export interface Engine {
  /** Model name reported by `serve` and recorded by `eval`. */
  name: string;
  /** Model folder, when loaded from disk. */
  dir?: string;
  tokenizer: EngineTokenizer;
  /** Longest prompt + completion the model accepts, when known. */
  maxContext?: number;
  generate(prompts: number[][], opts: EngineGenerateOptions): Promise<EngineGeneration[]>;
  /**
   * Per-token log-probs of whole sequences (entry i = log p(token i+1 | tokens ≤ i), as `ttrl logprob`)
   * with the `topN` most likely tokens at each position; absent on engines that cannot score.
   */
  score?(seqs: number[][], topN: number): Promise<{ logprobs: number[]; top: [number, number][][] }[]>;
}

/** Throw a clear error unless `dir` looks like a model folder (config + weights + tokenizer). */
export function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new TtrlError(`${dir}: model folder not found`);
  if (!statSync(dir).isDirectory()) throw new TtrlError(`${dir}: not a folder (expected a model folder)`);
  const missing: string[] = [];
  if (!existsSync(join(dir, "config.json"))) missing.push("config.json");
  if (!existsSync(join(dir, "model.safetensors")) && !existsSync(join(dir, "model.safetensors.index.json")))
    missing.push("model.safetensors (or model.safetensors.index.json)");
  if (!existsSync(join(dir, "tokenizer.json"))) missing.push("tokenizer.json");
  if (missing.length)
    throw new TtrlError(`${dir}: not a model folder (missing ${missing.join(", ")}; expected the HF layout)`);
}

/** Load a model folder through the model engine (src/model). */
export async function loadEngine(
  dir: string,
  opts: { name?: string; threads?: number } = {},
): Promise<Engine> {
  checkModelDir(dir);
  // Imported lazily: loading jax-js is only paid by commands that run a model.
  const runtime = await import("../runtime/jax.ts");
  const mod = await import("../model/index.ts");
  await runtime.initRuntime({ threads: opts.threads });
  let model: Awaited<ReturnType<typeof mod.loadModel>>;
  try {
    model = await mod.loadModel(dir);
  } catch (e) {
    if (e instanceof TtrlError) throw e;
    throw new TtrlError(`${dir}: cannot load model: ${(e as Error).message}`, { cause: e });
  }
  // Workaround (engine): the HF tokenizer throws on decode([]), which generate() hits when a sequence's
  // first token is EOS; an empty completion is a valid answer to serve and grade.
  const tok = model.tokenizer as { decode: (ids: number[], o?: { skipSpecialTokens?: boolean }) => string };
  const decode = tok.decode.bind(tok);
  try {
    tok.decode = (ids, o) => (ids.length === 0 ? "" : decode(ids, o));
  } catch {
    /* frozen tokenizer: leave as is */
  }
  const name = opts.name ?? dir.replace(/\/+$/, "").split("/").pop() ?? dir;
  return {
    name,
    dir,
    tokenizer: model.tokenizer,
    maxContext: model.config.maxPositionEmbeddings,
    async generate(prompts, o) {
      const gens = await mod.generate(model, prompts, o);
      return gens.map((g) => ({ tokens: g.tokens, text: g.text, finishReason: g.finishReason }));
    },
    async score(seqs, topN) {
      const { scoreWithTop } = await import("../model/top-logprobs.ts");
      return scoreWithTop(model, seqs, topN);
    },
  };
}

/**
 * A deterministic fake engine: characters are tokens; each sequence's completion depends only on its prompt,
 * its seed and the sampling options (never on the batch). Completions follow the mantık/cevap format with an
 * answer drawn from a few candidates, so grading sees a mix of right, wrong and invalid answers.
 */
export function fakeEngine(opts: { name?: string; delayMs?: number } = {}): Engine & { calls: number[] } {
  const calls: number[] = [];
  const tokenizer: EngineTokenizer = {
    encode: (text) => Array.from(text).map((c) => c.codePointAt(0)!),
    decode: (ids) => String.fromCodePoint(...ids),
    applyChatTemplate: (messages, o) =>
      messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join("") +
      (o?.addGenerationPrompt ? "<|assistant|>\n" : ""),
  };
  return {
    name: opts.name ?? "fake",
    tokenizer,
    maxContext: 4096,
    calls,
    async generate(prompts, o) {
      calls.push(prompts.length);
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      return prompts.map((p, i) => {
        const prompt = tokenizer.decode(p);
        const seed = o.greedy ? 0 : (o.seeds?.[i] ?? 0);
        const rng = new Rng(`${hashString(prompt)}:${seed}:${o.temperature ?? 1}:${o.topP ?? 1}`);
        const nums = Array.from(prompt.matchAll(/\d+/g)).map((m) => Number(m[0]));
        const base = nums.length ? nums.reduce((a, b) => a + b, 0) : 7;
        const r = o.greedy ? 0.1 : rng.next();
        let text: string;
        if (r < 0.5) text = `<mantık>\ntoplam\n</mantık>\n<cevap>\n${base}\n</cevap>`;
        else if (r < 0.75) text = `<mantık>\nyanlış\n</mantık>\n<cevap>\n${base + 1 + rng.int(3)}\n</cevap>`;
        else if (r < 0.9) text = `cevap ${base} galiba`;
        else text = `<cevap> ${base} </cevap> ek`;
        let finishReason: EngineGeneration["finishReason"] = "eos";
        for (const s of o.stop ?? []) {
          const at = text.indexOf(s);
          if (at >= 0) {
            text = text.slice(0, at + s.length);
            finishReason = "stop";
          }
        }
        let tokens = tokenizer.encode(text);
        if (tokens.length > o.maxNewTokens) {
          tokens = tokens.slice(0, o.maxNewTokens);
          text = tokenizer.decode(tokens);
          finishReason = "length";
        }
        return { tokens, text, finishReason };
      });
    },
  };
}
