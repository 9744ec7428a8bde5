/**
 * Prompt templates shared by SFT warm-up, GRPO training and evaluation, so a model is always asked the same
 * way it was taught. A template is data: either a plain text pattern or "use the tokenizer's chat template".
 */

export interface PromptTemplate {
  name: string;
  /** "plain": `text` with {system} and {question} substituted. "chat": the tokenizer's chat template. */
  kind: "plain" | "chat";
  system: string;
  /** For kind "plain". */
  text?: string;
}

/** The seed's instruction: answer in the <mantık>/<cevap> format. */
export const SYSTEM_PROMPT_TR =
  "Sana bir matematik problemi verilecek. Önce <mantık> ve </mantık> etiketleri arasında adım adım düşün, " +
  "sonra yalnızca sayısal cevabı <cevap> ve </cevap> etiketleri arasına yaz.\n" +
  "<mantık>\n...\n</mantık>\n<cevap>\n...\n</cevap>";

export const SYSTEM_PROMPT_EN =
  "You will be given a math problem. First think step by step between <reasoning> and </reasoning>, " +
  "then write only the numeric answer between <answer> and </answer>.\n" +
  "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>";

export const TEMPLATES: Record<string, PromptTemplate> = {
  /** The seed's setup for chat models: system prompt + question through the model's chat template. */
  "chat-tr": { name: "chat-tr", kind: "chat", system: SYSTEM_PROMPT_TR },
  "chat-en": { name: "chat-en", kind: "chat", system: SYSTEM_PROMPT_EN },
  /** Compact plain prompt for small models without a chat template (the shipped tiny model). */
  "plain-tr": { name: "plain-tr", kind: "plain", system: "", text: "Soru: {question}\n" },
  "plain-en": { name: "plain-en", kind: "plain", system: "", text: "Question: {question}\n" },
};

export interface ChatCapable {
  applyChatTemplate(
    messages: { role: string; content: string }[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
}

export function getTemplate(name: string): PromptTemplate {
  const t = TEMPLATES[name];
  if (!t) throw new Error(`unknown prompt template "${name}" (known: ${Object.keys(TEMPLATES).join(", ")})`);
  return t;
}

/** Render the prompt text for one question (the completion is generated right after it). */
export function renderPrompt(
  question: string,
  template: PromptTemplate | string,
  tokenizer?: ChatCapable,
): string {
  const t = typeof template === "string" ? getTemplate(template) : template;
  if (t.kind === "plain") {
    return (t.text ?? "{question}\n").replaceAll("{system}", t.system).replaceAll("{question}", question);
  }
  if (!tokenizer) throw new Error(`prompt template "${t.name}" needs a tokenizer with a chat template`);
  const messages = t.system ? [{ role: "system", content: t.system }] : [];
  messages.push({ role: "user", content: question });
  return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
}
