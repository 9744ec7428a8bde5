/**
 * Reading whole files with errors that name them: missing, a folder, unreadable, invalid UTF-8 (with the
 * line), invalid JSON. The text reader is io/jsonl.ts's strict `readUtf8File`; this adds JSON documents.
 */
import { InputError } from "../util/errors.ts";
import { readUtf8File } from "./jsonl.ts";

export { readUtf8File };

/** A JSON file whose top level must be an object (config.json, tokenizer_config.json, …). */
export function readJsonObject(file: string): Record<string, unknown> {
  const text = readUtf8File(file);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, undefined, `invalid JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new InputError(file, undefined, "invalid JSON (expected a JSON object)");
  return v as Record<string, unknown>;
}
