/**
 * A test double of the eval / serve `Engine` (src/eval/engine.ts): deterministic, a character tokenizer,
 * no model. Used by the tests of the HTTP plumbing (serve) and of eval's bookkeeping.
 */
import type { Engine, EngineGeneration, EngineTokenizer } from "../../src/eval/engine.ts";
import { hashString, Rng } from "../../src/util/rng.ts";

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
