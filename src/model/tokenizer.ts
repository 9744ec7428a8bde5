/**
 * Tokenizers: Hugging Face `tokenizer.json` through @huggingface/tokenizers, chat templates from
 * `tokenizer_config.json` through @huggingface/jinja, and the `char-tr` character tokenizer (written as an
 * ordinary `tokenizer.json`, so transformers loads it too).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { readJsonObject } from "../io/files.ts";
import { TtrlError } from "../util/errors.ts";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface Tokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  vocabSize: number;
  /** Longest token string in the vocabulary (UTF-16 units): a text of n characters needs ≥ n / this tokens. */
  maxTokenChars?: number;
  eosTokenIds: number[];
  bosTokenId: number | null;
  padTokenId: number;
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

function tokenContent(t: unknown): string | null {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { content?: unknown }).content === "string")
    return (t as { content: string }).content;
  return null;
}

/** Build a Tokenizer from parsed tokenizer.json and tokenizer_config.json objects. */
export function tokenizerFromJson(
  tokJson: Record<string, unknown>,
  tokConfig: Record<string, unknown> = {},
  opts: { eosTokenIds?: number[]; bosTokenId?: number | null; file?: string } = {},
): Tokenizer {
  const file = opts.file ?? "tokenizer.json";
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokJson, tokConfig);
  } catch (e) {
    throw new TtrlError(`${file}: cannot build tokenizer (${(e as Error).message})`);
  }
  if (hf.get_vocab(false).size === 0)
    throw new TtrlError(`${file}: the tokenizer's vocabulary is empty (model.vocab has no tokens)`);
  const vocab = hf.get_vocab(true);
  let vocabSize = 0;
  let maxTokenChars = 1;
  for (const [tok, id] of vocab) {
    vocabSize = Math.max(vocabSize, id + 1);
    maxTokenChars = Math.max(maxTokenChars, tok.length);
  }
  // a BPE with fuse_unk turns any run of unknown characters into one token: no bound from the vocabulary
  if ((tokJson.model as { fuse_unk?: unknown } | undefined)?.fuse_unk === true) maxTokenChars = Infinity;
  const idOf = (key: string): number | null => {
    const tok = tokenContent(tokConfig[key]);
    if (tok === null) return null;
    return hf.token_to_id(tok) ?? null;
  };
  const eosFromConfig = idOf("eos_token");
  const eosTokenIds = [
    ...new Set([...(opts.eosTokenIds ?? []), ...(eosFromConfig !== null ? [eosFromConfig] : [])]),
  ];
  const bosTokenId = opts.bosTokenId !== undefined ? opts.bosTokenId : idOf("bos_token");
  const padTokenId = idOf("pad_token") ?? eosTokenIds[0] ?? 0;
  const templateSrc = tokConfig.chat_template;
  let template: Template | null = null;
  const templateText =
    typeof templateSrc === "string"
      ? templateSrc
      : Array.isArray(templateSrc)
        ? (templateSrc as { name?: string; template?: string }[]).find((t) => t.name === "default")?.template
        : undefined;
  const specialStrings: Record<string, string> = {};
  for (const k of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    const c = tokenContent(tokConfig[k]);
    if (c !== null) specialStrings[k] = c;
  }
  return {
    vocabSize,
    maxTokenChars,
    eosTokenIds,
    bosTokenId,
    padTokenId,
    encode(text, o) {
      return hf.encode(text, { add_special_tokens: o?.addSpecialTokens ?? true }).ids;
    },
    decode(ids, o) {
      if (ids.length === 0) return ""; // @huggingface/tokenizers rejects an empty array
      return hf.decode(ids, { skip_special_tokens: o?.skipSpecialTokens ?? true });
    },
    applyChatTemplate(messages, o) {
      if (!templateText) throw new TtrlError(`${file}: the tokenizer has no chat_template`);
      if (!template) template = new Template(templateText);
      return template.render({
        messages,
        add_generation_prompt: o?.addGenerationPrompt ?? true,
        ...specialStrings,
      });
    },
  };
}

export { encodeWithin } from "./prompt-fit.ts";

/** Load `tokenizer.json` (+ optional `tokenizer_config.json`) from a model folder. */
export function loadTokenizer(
  dir: string,
  opts: { eosTokenIds?: number[]; bosTokenId?: number | null } = {},
): Tokenizer {
  const tj = join(dir, "tokenizer.json");
  if (!existsSync(tj)) throw new TtrlError(`${dir}: missing tokenizer.json`);
  const tc = join(dir, "tokenizer_config.json");
  const config = existsSync(tc) ? readJsonObject(tc) : {};
  return tokenizerFromJson(readJsonObject(tj), config, { ...opts, file: tj });
}

// ---------------------------------------------------------------------------------------------------------
// char-tr: one token per character (Turkish letters, digits, punctuation), plus four special tokens.

export const CHAR_TR_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"] as const;

export const CHAR_TR_CHARS: string[] = (() => {
  const letters = "abcçdefgğhıijklmnoöprsştuüvyzqwx";
  const upper = "ABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZQWX";
  const extra = "âîûÂÎÛ";
  const digits = "0123456789";
  const punct = " \n\t.,:;!?'\"()[]{}<>+-*/=%^_&#@$|~\\`€₺×÷·–—“”‘’…°²³½¼¾";
  const set = new Set<string>();
  for (const s of [punct, digits, letters, upper, extra]) for (const ch of s) set.add(ch);
  return [...set];
})();

export const CHAR_TR_CHAT_TEMPLATE =
  "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/** The char-tr tokenizer as `tokenizer.json` and `tokenizer_config.json` objects. */
export function charTrTokenizerFiles(maxLength = 1024): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
} {
  const vocab: Record<string, number> = {};
  const addedTokens = CHAR_TR_SPECIALS.map((content, id) => {
    vocab[content] = id;
    return {
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    };
  });
  for (const ch of CHAR_TR_CHARS) vocab[ch] = Object.keys(vocab).length;
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: "NFC" },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    chat_template: CHAR_TR_CHAT_TEMPLATE,
  };
  return { tokenizerJson, tokenizerConfig };
}

/** Vocabulary size of char-tr (specials + characters). */
export function charTrVocabSize(): number {
  return CHAR_TR_SPECIALS.length + CHAR_TR_CHARS.length;
}
