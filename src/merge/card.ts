/** The README.md model card that mergekit writes next to a merge (same template and wording). */
import { existsSync } from "node:fs";
import type { MergeConfig } from "./config.ts";
import type { MethodSpec } from "./methods/types.ts";

/** mergekit's test for a Hugging Face repo id, without the network: not a local path and not on disk. */
function isHf(path: string): boolean {
  if (path[0] === "/" || path[0] === "~" || path.split("/").length - 1 > 1) return false;
  return !existsSync(path);
}

function yamlString(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) && !/^[-.]/.test(s) ? s : JSON.stringify(s);
}

function referencedModels(cfg: MergeConfig): string[] {
  const out: string[] = [];
  const add = (m: string | undefined) => {
    if (m && !out.includes(m)) out.push(m);
  };
  add(cfg.baseModel);
  for (const m of cfg.models ?? []) add(m.model);
  for (const s of cfg.slices ?? []) for (const src of s.sources) add(src.model);
  return out;
}

export function generateCard(cfg: MergeConfig, name: string, method: MethodSpec): string {
  const refs = referencedModels(cfg);
  const hf = refs.filter(isHf);
  const link = (p: string) => (isHf(p) ? `[${p}](https://huggingface.co/${p})` : p);
  // mergekit never names a base for slerp
  const actualBase = cfg.mergeMethod === "slerp" ? undefined : cfg.baseModel;
  const baseText = actualBase ? ` using ${link(actualBase)} as a base` : "";
  const bullets = refs.filter((m) => m !== actualBase).map((m) => `* ${link(m)}`);
  const meta = [
    hf.length ? `base_model:\n${hf.map((h) => `- ${yamlString(h)}`).join("\n")}` : "base_model: []",
    "library_name: transformers",
    "tags:\n- mergekit\n- merge",
  ].join("\n");
  return `---
${meta}

---
# ${name || "Untitled Model (1)"}

This is a merge of pre-trained language models created using [mergekit](https://github.com/cg123/mergekit).

## Merge Details
### Merge Method

This model was merged using the [${method.prettyName}](${method.referenceUrl}) merge method${baseText}.

### Models Merged

The following models were included in the merge:
${bullets.join("\n")}

### Configuration

The following YAML configuration was used to produce this model:

\`\`\`yaml
${cfg.text}
\`\`\`
`;
}
