/**
 * A test engine that decodes one character token per step with a delay, calling `onStep` and honouring
 * `cancelled` like the model engine: for streaming and disconnect tests (a real model's EOS would end a
 * generation at an unpredictable point).
 */
import type { Engine } from "../../src/eval/engine.ts";

export interface SlowEngine extends Engine {
  /** Per generate call: how many decoding steps ran. */
  steps: number[];
  /** Sequences that were stopped by `cancelled`. */
  cancelledSeqs: number;
}

export function slowEngine(opts: { stepMs: number; name?: string }): SlowEngine {
  const tokenizer: Engine["tokenizer"] = {
    encode: (text) => Array.from(text).map((c) => c.codePointAt(0)!),
    decode: (ids) => String.fromCodePoint(...ids),
    applyChatTemplate: (messages, o) =>
      messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join("") +
      (o?.addGenerationPrompt ? "<|assistant|>\n" : ""),
  };
  const alphabet = "abcdefghij ";
  const e: SlowEngine = {
    name: opts.name ?? "slow",
    tokenizer,
    maxContext: 100_000,
    steps: [],
    cancelledSeqs: 0,
    async generate(prompts, o) {
      const out = prompts.map(() => ({ tokens: [] as number[], done: false, cancelled: false }));
      let step = 0;
      for (; out.some((x) => !x.done); step++) {
        await new Promise((r) => setTimeout(r, opts.stepMs));
        const sampled: { seq: number; token: number; logits: Float32Array }[] = [];
        out.forEach((x, i) => {
          if (x.done) return;
          if (o.cancelled?.(i)) {
            x.done = x.cancelled = true;
            e.cancelledSeqs++;
            return;
          }
          const token = alphabet.codePointAt((step + (o.seeds?.[i] ?? 0)) % alphabet.length)!;
          x.tokens.push(token);
          sampled.push({ seq: i, token, logits: new Float32Array(0x80) });
          if (x.tokens.length >= o.maxNewTokens) x.done = true;
        });
        if (sampled.length) await o.onStep?.(sampled);
      }
      e.steps.push(step);
      return out.map((x) => ({
        tokens: x.tokens,
        text: tokenizer.decode(x.tokens),
        finishReason: "length" as const,
      }));
    },
  };
  return e;
}
