/**
 * Finding the Python interpreter of the trl engine and checking its imports before any work: `--python`,
 * then TTRL_PYTHON, then the repo's `.venv`. A missing interpreter or module is one message naming it and the
 * setup command (exit 2).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../../util/errors.ts";

export const SETUP_COMMAND = "npm run setup:python";

/** The repository root (this file is src/engines/trl/python.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const PYTHON_PACKAGE_DIR = join(REPO_ROOT, "python");

export function venvPython(root = REPO_ROOT): string {
  return process.platform === "win32"
    ? join(root, ".venv", "Scripts", "python.exe")
    : join(root, ".venv", "bin", "python");
}

export function findPython(explicit?: string | null): { python: string; source: string } {
  if (explicit) return { python: explicit, source: "--python" };
  if (process.env.TTRL_PYTHON) return { python: process.env.TTRL_PYTHON, source: "TTRL_PYTHON" };
  const v = venvPython();
  if (existsSync(v)) return { python: v, source: ".venv" };
  throw new UsageError(
    `engine trl needs Python with TRL: no --python, no TTRL_PYTHON and no ${v}. Set it up with: ${SETUP_COMMAND}`,
  );
}

/** Environment for every Python process of the engine: the package on PYTHONPATH, never a download. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const pp = process.env.PYTHONPATH ? `${PYTHON_PACKAGE_DIR}:${process.env.PYTHONPATH}` : PYTHON_PACKAGE_DIR;
  return {
    ...process.env,
    PYTHONPATH: pp,
    PYTHONUNBUFFERED: "1",
    HF_HUB_OFFLINE: "1",
    TRANSFORMERS_OFFLINE: "1",
    HF_DATASETS_OFFLINE: "1",
    HF_HUB_DISABLE_TELEMETRY: "1",
    TOKENIZERS_PARALLELISM: "false",
    TRANSFORMERS_VERBOSITY: process.env.TRANSFORMERS_VERBOSITY ?? "error",
    ...extra,
  };
}

/** Check that `python` runs and imports the engine's modules; UsageError (exit 2) naming what is missing. */
export function checkPython(python: string, source: string): Record<string, string> {
  const r = spawnSync(python, ["-m", "ttrl_trl.check"], {
    encoding: "utf8",
    env: pythonEnv(),
    timeout: 180_000,
  });
  if (r.error || r.status === null) {
    const why =
      (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
        ? "not found"
        : String(r.error ?? "killed");
    throw new UsageError(
      `engine trl: Python ${python} (from ${source}) ${why}. Set it up with: ${SETUP_COMMAND}`,
    );
  }
  const line = r.stdout.trim().split("\n").pop() ?? "";
  let parsed: { missing: string[]; versions: Record<string, string> } | null = null;
  try {
    parsed = JSON.parse(line);
  } catch {
    parsed = null;
  }
  if (!parsed) {
    const err = r.stderr.trim().split("\n").slice(-1)[0] ?? "";
    throw new UsageError(
      `engine trl: ${python} (from ${source}) cannot run ttrl's Python package (${err || `exit ${r.status}`}). Set it up with: ${SETUP_COMMAND}`,
    );
  }
  if (parsed.missing.length)
    throw new UsageError(
      `engine trl: Python module${parsed.missing.length > 1 ? "s" : ""} ${parsed.missing.join(", ")} not importable by ${python} (from ${source}). Set it up with: ${SETUP_COMMAND}`,
    );
  return parsed.versions;
}
