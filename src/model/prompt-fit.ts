/**
 * Prompt length against the model's context, checked before tokenizing where possible. Kept apart from
 * ./tokenizer.ts (no tokenizer library imports) so eval's HTTP path can import it cheaply.
 */
import { TtrlError } from "../util/errors.ts";

/** Characters per token assumed beyond the longest token, for normalizers that shorten text (NFC). */
const NORMALIZER_SLACK = 4;

/**
 * Tokenize a prompt that must fit in `maxTokens`, refusing a text that cannot fit before tokenizing it (a
 * 30-million-character question took 42 s and 3.2 GB before failing) and after, naming `where` (the
 * question's file, line and id). A text longer than maxTokens × longest token × NORMALIZER_SLACK characters
 * is certainly too long: every token covers at most that many characters.
 */
export function encodeWithin(
  tok: {
    encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
    maxTokenChars?: number;
  },
  text: string,
  maxTokens: number,
  where: string,
  opts?: { addSpecialTokens?: boolean },
): number[] {
  const perToken = Math.max(1, tok.maxTokenChars ?? Number.POSITIVE_INFINITY) * NORMALIZER_SLACK;
  if (text.length > maxTokens * perToken)
    throw new TtrlError(
      `${where}: the prompt has ${text.length} characters, at least ${Math.ceil(text.length / perToken)} tokens, more than the ${maxTokens} the model's context allows`,
    );
  const ids = tok.encode(text, opts);
  if (ids.length > maxTokens)
    throw new TtrlError(
      `${where}: the prompt has ${ids.length} tokens, more than the ${maxTokens} the model's context allows`,
    );
  return ids;
}
