/**
 * The one sampler interface: what `generate` takes and returns, shared by the model engine (index.ts), the
 * trainers' `Policy` (src/train/policy.ts), the eval / serve `Engine` (src/eval/engine.ts) and the HTTP
 * backend. Types only (no engine import), so light modules can use it.
 */

/** Why a completion ended: a stop string, an EOS token, or the token limit. */
export type FinishReason = "stop" | "eos" | "length";

export interface SampleOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  /** 0 or absent: no top-k. */
  topK?: number;
  greedy?: boolean;
  /** One seed per prompt (default: the prompt's index). Same seed, same prompt, same options → same output. */
  seeds?: number[];
  /** Stop when the completion text contains one of these; the text ends with it. */
  stop?: string[];
}

/** What every sampler returns per prompt. */
export interface Completion {
  /** Completion token ids (including the EOS token when finishReason is "eos"). */
  tokens: number[];
  /** Decoded completion (special tokens skipped; ends with the stop string when finishReason is "stop"). */
  text: string;
  finishReason: FinishReason;
}

/** A completion with the log-prob of each sampled token (the model engine's, which trainers need). */
export interface Generation extends Completion {
  /** log softmax(logits / temperature) of each sampled token (temperature 1 when greedy), before top-k/p. */
  logprobs: number[];
}

export interface SamplerTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** `decode([])` is "" (a completion whose first token is EOS is empty). */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  applyChatTemplate?(
    messages: { role: string; content: string }[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
}

/** Batched sampling of completions for token-id prompts, one seed per prompt (never batch-dependent). */
export interface Sampler<G extends Completion = Generation> {
  tokenizer: SamplerTokenizer;
  /** Longest prompt + completion the model accepts, when known. */
  maxContext?: number;
  generate(prompts: number[][], opts: SampleOptions): Promise<G[]>;
}
