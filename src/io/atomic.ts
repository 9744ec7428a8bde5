/** Atomic file output: write to a temp file beside the target, then rename over it. */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, promises as fsp, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/** Write a whole file atomically (creates the parent folder). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** JSON with a trailing newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown, indent = 2): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, indent)}\n`);
}

/**
 * A streaming writer whose output appears at `path` only when `commit()` is called; `abort()` (or a crash)
 * leaves the previous file, if any, untouched.
 */
export class AtomicWriter {
  readonly path: string;
  private readonly tmp: string;
  private readonly stream: ReturnType<typeof createWriteStream>;
  private done = false;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.tmp = tempPathFor(path);
    this.stream = createWriteStream(this.tmp);
  }

  /** Write a chunk, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (!this.stream.write(chunk)) await once(this.stream, "drain");
  }

  async commit(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await new Promise<void>((res, rej) => this.stream.end((err?: Error | null) => (err ? rej(err) : res())));
    await fsp.rename(this.tmp, this.path);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stream.destroy();
    await fsp.rm(this.tmp, { force: true });
  }
}
