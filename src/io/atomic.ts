/** Atomic file output: write to a temp file beside the target, then rename over it. */
import { randomBytes } from "node:crypto";
import { createWriteStream, promises as fsp, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { TtrlError } from "../util/errors.ts";

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/**
 * An output path that cannot be written (a folder where the file should go, a file where a folder should
 * be, no permission) as a TtrlError naming the path; other errors pass through.
 */
function outputError(path: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === "EISDIR" || code === "ENOTEMPTY" || code === "EEXIST")
    return new TtrlError(`${path}: is a folder; cannot write a file there`, { cause: e });
  if (code === "ENOTDIR")
    return new TtrlError(`${path}: a part of the path is a file, not a folder`, { cause: e });
  if (code === "EACCES" || code === "EPERM" || code === "EROFS")
    return new TtrlError(`${path}: cannot write (${code})`, { cause: e });
  return e;
}

function mkdirFor(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === "EEXIST" || code === "ENOTDIR")
      throw new TtrlError(`${path}: a part of the path is a file, not a folder`, { cause: e });
    throw outputError(path, e);
  }
}

/** Write a whole file atomically (creates the parent folder). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  mkdirFor(path);
  const tmp = tempPathFor(path);
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw outputError(path, e);
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  mkdirFor(path);
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw outputError(path, e);
  }
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
    mkdirFor(path);
    this.tmp = tempPathFor(path);
    this.stream = createWriteStream(this.tmp);
    // Errors surface through write()/commit(); after abort() late errors (pending writes) are ignored.
    this.stream.on("error", (e) => {
      if (!this.done) this.error = e;
    });
  }

  private error: Error | null = null;

  /** Write a chunk, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (this.error) throw this.error;
    if (this.done) throw new Error(`AtomicWriter: write after commit/abort (${this.path})`);
    if (!this.stream.write(chunk)) await this.drained();
  }

  /** Resolves on 'drain', or on 'close' (after abort); rejects on a stream error. */
  private drained(): Promise<void> {
    const st = this.stream;
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        st.off("drain", ok);
        st.off("close", ok);
        st.off("error", fail);
      };
      const ok = () => {
        cleanup();
        resolve();
      };
      const fail = (e: Error) => {
        cleanup();
        reject(e);
      };
      st.on("drain", ok);
      st.on("close", ok);
      st.on("error", fail);
    });
  }

  async commit(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await new Promise<void>((res, rej) => this.stream.end((err?: Error | null) => (err ? rej(err) : res())));
    try {
      await fsp.rename(this.tmp, this.path);
    } catch (e) {
      await fsp.rm(this.tmp, { force: true });
      throw outputError(this.path, e);
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await new Promise<void>((res) => {
      this.stream.once("close", () => res());
      this.stream.destroy();
    });
    await fsp.rm(this.tmp, { force: true });
  }
}
