/**
 * Safetensors reading and writing, single files and sharded Hugging Face checkpoints.
 *
 * Reads are positional (`FileHandle.read` at an offset): a tensor is read when asked for, never the whole
 * file. Headers are validated before anything is read: length bound, JSON shape, known dtypes, offsets
 * contiguous from 0, `end − begin = numel × itemsize`, no trailing bytes. Every error names the file and,
 * where one is involved, the tensor.
 *
 * Writes stream tensor by tensor into a temp file beside the target that is renamed over it on `close()`.
 */
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { InputError, TtrlError } from "../util/errors.ts";
import {
  bytesToF32,
  DTYPE_SIZES,
  type DType,
  dtypeSize,
  f32ToBytes,
  firstNonFinite,
  isFloatDType,
} from "./dtype.ts";

/** Largest header accepted (the reference implementation's bound). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Chunk size of positional reads and writes (a single read must stay below 2 GiB). */
const IO_CHUNK = 1 << 24;

export interface TensorInfo {
  name: string;
  dtype: DType | string;
  shape: number[];
  /** Byte offsets relative to the start of the data section (after the header). */
  begin: number;
  end: number;
}

if (endianness() !== "LE") throw new TtrlError("ttrl's safetensors reader needs a little-endian machine");

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Read exactly `length` bytes at `position` into `buf` (at `offset`); a short file is an error. */
async function readExactly(
  fh: FileHandle,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
  what: () => string,
): Promise<void> {
  // all pieces at once: the thread pool reads them while the main thread is busy computing
  const pieces: Promise<void>[] = [];
  for (let start = 0; start < length; start += IO_CHUNK) {
    const end = Math.min(length, start + IO_CHUNK);
    pieces.push(
      (async () => {
        let done = start;
        while (done < end) {
          const { bytesRead } = await fh.read(buf, offset + done, end - done, position + done);
          if (bytesRead === 0)
            throw new TtrlError(`${what()}: file ended early (${length} bytes wanted at offset ${position})`);
          done += bytesRead;
        }
      })(),
    );
  }
  await Promise.all(pieces);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parse and validate a safetensors header (the JSON text) against the size of the data section.
 * Exported for tests; `SafetensorsFile.open` is the normal entry point.
 */
export function parseHeader(
  file: string,
  headerText: string,
  dataBytes: number,
): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  const fail = (msg: string): never => {
    throw new InputError(file, undefined, msg);
  };
  if (!headerText.startsWith("{")) fail("safetensors header is not a JSON object");
  let json: unknown;
  try {
    json = JSON.parse(headerText);
  } catch (e) {
    fail(`safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) return fail("safetensors header is not a JSON object");
  const metadata: Record<string, string> = {};
  const list: TensorInfo[] = [];
  for (const [name, v] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(v)) fail("__metadata__ is not an object of strings");
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== "string") fail(`__metadata__ entry ${JSON.stringify(k)} is not a string`);
        metadata[k] = s as string;
      }
      continue;
    }
    const t = (msg: string): never => fail(`tensor ${JSON.stringify(name)}: ${msg}`);
    if (!isPlainObject(v)) t("entry is not an object");
    const o = v as Record<string, unknown>;
    const dtype = o.dtype;
    if (typeof dtype !== "string") t("missing dtype");
    if (!Object.hasOwn(DTYPE_SIZES, dtype as string)) t(`unknown dtype ${JSON.stringify(dtype)}`);
    const shape = o.shape;
    if (!Array.isArray(shape)) t("shape is not an array");
    for (const d of shape as unknown[]) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) t(`bad shape ${JSON.stringify(shape)}`);
    }
    const offs = o.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2) t("data_offsets is not a pair");
    const [begin, end] = offs as unknown[];
    for (const x of [begin, end]) {
      if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0)
        t(`bad data_offsets ${JSON.stringify(offs)}`);
    }
    const b = begin as number;
    const e = end as number;
    if (e < b) t(`data_offsets end ${e} < begin ${b}`);
    const numel = numelOf(shape as number[]);
    const nbytes = numel * dtypeSize(dtype as string);
    if (!Number.isSafeInteger(nbytes)) t(`shape ${fmtShape(shape as number[])} is too large`);
    if (e - b !== nbytes) {
      t(
        `data_offsets [${b}, ${e}] hold ${e - b} bytes but ${dtype} ${fmtShape(shape as number[])} needs ${nbytes}`,
      );
    }
    list.push({ name, dtype: dtype as string, shape: [...(shape as number[])], begin: b, end: e });
  }
  const sorted = [...list].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const ti of sorted) {
    if (ti.begin !== expected) {
      fail(
        ti.begin < expected
          ? `tensor ${JSON.stringify(ti.name)}: data_offsets [${ti.begin}, ${ti.end}] overlap the previous tensor (ends at ${expected})`
          : `tensor ${JSON.stringify(ti.name)}: data_offsets [${ti.begin}, ${ti.end}] leave a gap after byte ${expected}`,
      );
    }
    expected = ti.end;
  }
  if (expected !== dataBytes) {
    const last = sorted.length ? ` (last tensor ${JSON.stringify(sorted[sorted.length - 1].name)})` : "";
    fail(
      expected > dataBytes
        ? `file is truncated: tensors need ${expected} data bytes but the file has ${dataBytes}${last}`
        : `${dataBytes - expected} trailing bytes after the last tensor${last}`,
    );
  }
  return { metadata, tensors: new Map(sorted.map((ti) => [ti.name, ti])) };
}

/** One `.safetensors` file, opened with a validated header. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Tensors in file (offset) order. */
  readonly tensors: Map<string, TensorInfo>;
  /** Byte position in the file where the data section starts (8 + header length). */
  readonly dataStart: number;
  private fh: FileHandle | null;

  private constructor(
    path: string,
    fh: FileHandle,
    dataStart: number,
    metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>,
  ) {
    this.path = path;
    this.fh = fh;
    this.dataStart = dataStart;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(path, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InputError(
        path,
        undefined,
        code === "ENOENT" ? "file not found" : `cannot open (${code ?? e})`,
      );
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new InputError(path, undefined, "not a regular file");
      const size = st.size;
      if (size < 8) throw new InputError(path, undefined, `too short for a safetensors file (${size} bytes)`);
      const lenBuf = new Uint8Array(8);
      await readExactly(fh, lenBuf, 0, 8, 0, () => path);
      const n = Buffer.from(lenBuf.buffer).readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new InputError(
          path,
          undefined,
          `safetensors header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte bound`,
        );
      }
      const hlen = Number(n);
      if (8 + hlen > size) {
        throw new InputError(
          path,
          undefined,
          `file is truncated: header needs ${hlen} bytes, file has ${size - 8}`,
        );
      }
      const hbuf = new Uint8Array(hlen);
      await readExactly(fh, hbuf, 0, hlen, 8, () => path);
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(hbuf);
      } catch {
        throw new InputError(path, undefined, "safetensors header is not valid UTF-8");
      }
      const { metadata, tensors } = parseHeader(path, text, size - 8 - hlen);
      return new SafetensorsFile(path, fh, 8 + hlen, metadata, tensors);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const ti = this.tensors.get(name);
    if (!ti) throw new InputError(this.path, undefined, `no tensor ${JSON.stringify(name)}`);
    return ti;
  }

  /** The tensor's bytes as stored (little-endian). `out`, if given, must be exactly the tensor's byte size. */
  async readRaw(name: string, out?: Uint8Array): Promise<Uint8Array> {
    const ti = this.info(name);
    const fh = this.fh;
    if (!fh) throw new TtrlError(`${this.path}: file is closed`);
    const len = ti.end - ti.begin;
    if (out && out.byteLength !== len) {
      throw new TtrlError(
        `${this.path}: tensor ${JSON.stringify(name)}: buffer of ${out.byteLength} bytes, need ${len}`,
      );
    }
    const buf = out ?? new Uint8Array(len);
    await readExactly(
      fh,
      buf,
      0,
      len,
      this.dataStart + ti.begin,
      () => `${this.path}: tensor ${JSON.stringify(name)}`,
    );
    return buf;
  }

  /** The tensor converted to float32 (F32, F16 and BF16 tensors). */
  async readF32(name: string): Promise<Float32Array> {
    const ti = this.info(name);
    if (!isFloatDType(ti.dtype)) {
      throw new InputError(
        this.path,
        undefined,
        `tensor ${JSON.stringify(name)}: unsupported dtype ${ti.dtype} (need F32, F16 or BF16)`,
      );
    }
    const raw = await this.readRaw(name);
    return ti.dtype === "F32"
      ? new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
      : bytesToF32(raw, ti.dtype);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close();
  }
}

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/** A model folder: `model.safetensors`, or shards listed by `model.safetensors.index.json`. */
export class Checkpoint {
  readonly dir: string;
  /** Tensor names, file by file in offset order. */
  readonly names: string[];
  /** The index's `metadata` (sharded checkpoints), else the single file's header metadata. */
  readonly metadata: Record<string, unknown>;
  private readonly files: SafetensorsFile[];
  private readonly where: Map<string, SafetensorsFile>;

  private constructor(
    dir: string,
    files: SafetensorsFile[],
    where: Map<string, SafetensorsFile>,
    metadata: Record<string, unknown>,
  ) {
    this.dir = dir;
    this.files = files;
    this.where = where;
    this.metadata = metadata;
    this.names = [];
    for (const f of files) for (const n of f.tensors.keys()) if (where.get(n) === f) this.names.push(n);
  }

  /** True when `dir` holds a safetensors checkpoint. */
  static async exists(dir: string): Promise<boolean> {
    for (const f of [INDEX_FILE, SINGLE_FILE]) {
      try {
        await fsp.access(join(dir, f));
        return true;
      } catch {}
    }
    return false;
  }

  static async open(dir: string): Promise<Checkpoint> {
    let st: Awaited<ReturnType<typeof fsp.stat>>;
    try {
      st = await fsp.stat(dir);
    } catch {
      throw new InputError(dir, undefined, "model folder not found");
    }
    if (!st.isDirectory()) throw new InputError(dir, undefined, "not a folder (expected a model folder)");
    const indexPath = join(dir, INDEX_FILE);
    let indexText: string | null = null;
    try {
      indexText = await fsp.readFile(indexPath, "utf8");
    } catch {}
    if (indexText === null) {
      const single = join(dir, SINGLE_FILE);
      try {
        await fsp.access(single);
      } catch {
        let hint = "";
        try {
          const names = await fsp.readdir(dir);
          if (names.some((n) => n.endsWith(".bin") || n.endsWith(".pt")))
            hint = " (PyTorch .bin checkpoints are not supported: convert to safetensors)";
        } catch {}
        throw new InputError(dir, undefined, `no ${SINGLE_FILE} or ${INDEX_FILE} in the model folder${hint}`);
      }
      const f = await SafetensorsFile.open(single);
      return new Checkpoint(dir, [f], new Map([...f.tensors.keys()].map((n) => [n, f])), { ...f.metadata });
    }
    let index: unknown;
    try {
      index = JSON.parse(indexText);
    } catch (e) {
      throw new InputError(indexPath, undefined, `not valid JSON (${(e as Error).message})`);
    }
    if (!isPlainObject(index) || !isPlainObject(index.weight_map)) {
      throw new InputError(indexPath, undefined, "expected an object with a weight_map object");
    }
    const metadata = isPlainObject(index.metadata) ? index.metadata : {};
    const byFile = new Map<string, string[]>();
    for (const [name, file] of Object.entries(index.weight_map)) {
      if (
        typeof file !== "string" ||
        file === "" ||
        file.includes("..") ||
        file.startsWith("/") ||
        file.includes("\\")
      ) {
        throw new InputError(
          indexPath,
          undefined,
          `weight_map entry for tensor ${JSON.stringify(name)} is not a shard file name: ${JSON.stringify(file)}`,
        );
      }
      const l = byFile.get(file);
      if (l) l.push(name);
      else byFile.set(file, [name]);
    }
    if (byFile.size === 0) throw new InputError(indexPath, undefined, "weight_map is empty");
    const files: SafetensorsFile[] = [];
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const file of [...byFile.keys()].sort()) {
        const f = await SafetensorsFile.open(join(dir, file));
        files.push(f);
        for (const name of byFile.get(file) ?? []) {
          if (!f.tensors.has(name)) {
            throw new InputError(
              f.path,
              undefined,
              `tensor ${JSON.stringify(name)} is listed in ${INDEX_FILE} but missing from this shard`,
            );
          }
          where.set(name, f);
        }
      }
    } catch (e) {
      for (const f of files) await f.close();
      throw e;
    }
    return new Checkpoint(dir, files, where, metadata);
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new InputError(this.dir, undefined, `checkpoint has no tensor ${JSON.stringify(name)}`);
    return f;
  }

  info(name: string): TensorInfo & { file: string } {
    const f = this.fileOf(name);
    return { ...f.info(name), file: f.path };
  }

  readRaw(name: string, out?: Uint8Array): Promise<Uint8Array> {
    return this.fileOf(name).readRaw(name, out);
  }

  readF32(name: string): Promise<Float32Array> {
    return this.fileOf(name).readF32(name);
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.close();
  }
}

/** A tensor with a NaN or ±Inf about to be written: nothing is saved (the file being written is removed). */
export class NonFiniteTensorError extends TtrlError {
  readonly tensor: string;
  constructor(path: string, tensor: string, index: number, value: number, shape: readonly number[]) {
    super(
      `${path}: tensor ${JSON.stringify(tensor)} ${fmtShape(shape)} has a non-finite value (${value}) at element ${index}; refusing to save non-finite weights (the run diverged, or a setting such as the learning rate or adam_epsilon is unusable)`,
    );
    this.name = "NonFiniteTensorError";
    this.tensor = tensor;
  }
}

function valueAt(bytes: Uint8Array, dtype: string, i: number): number {
  const size = dtypeSize(dtype);
  const one = bytes.slice(i * size, (i + 1) * size);
  const view = new DataView(one.buffer);
  if (dtype === "F64") return view.getFloat64(0, true);
  if (dtype === "F32") return view.getFloat32(0, true);
  return bytesToF32(one, dtype)[0];
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/** Header bytes (8-byte length + JSON padded with spaces to a multiple of 8, as the reference writer does). */
export function encodeHeader(
  tensors: readonly { name: string; dtype: string; shape: readonly number[] }[],
  metadata?: Record<string, string>,
): { header: Uint8Array; infos: TensorInfo[]; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  const infos: TensorInfo[] = [];
  let off = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__") throw new TtrlError(`tensor name "__metadata__" is reserved`);
    if (seen.has(t.name)) throw new TtrlError(`tensor ${JSON.stringify(t.name)} is declared twice`);
    seen.add(t.name);
    const size = DTYPE_SIZES[t.dtype];
    if (size === undefined) throw new TtrlError(`tensor ${JSON.stringify(t.name)}: unknown dtype ${t.dtype}`);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new TtrlError(`tensor ${JSON.stringify(t.name)}: bad shape ${fmtShape(t.shape)}`);
    }
    const nbytes = numelOf(t.shape) * size;
    infos.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], begin: off, end: off + nbytes });
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + nbytes] };
    off += nbytes;
  }
  const json = Buffer.from(JSON.stringify(obj), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header: new Uint8Array(header.buffer, header.byteOffset, header.length), infos, dataBytes: off };
}

/**
 * Streaming writer of one safetensors file. All tensors are declared up front (the header comes first);
 * `write` them in the declared order. Output appears at `path` only on `close()` (temp file + rename).
 */
export class SafetensorsWriter {
  readonly path: string;
  private readonly infos: TensorInfo[];
  private readonly header: Uint8Array;
  private readonly tmp: string;
  private fh: Promise<FileHandle> | null = null;
  private next = 0;
  private pos: number;
  private done = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    path: string,
    tensors: { name: string; dtype: DType; shape: number[] }[],
    metadata?: Record<string, string>,
  ) {
    this.path = path;
    const { header, infos } = encodeHeader(tensors, metadata);
    this.header = header;
    this.infos = infos;
    this.pos = header.byteLength;
    this.tmp = tempPathFor(path);
  }

  private async handle(): Promise<FileHandle> {
    if (!this.fh) {
      this.fh = (async () => {
        await fsp.mkdir(dirname(this.path), { recursive: true });
        const fh = await fsp.open(this.tmp, "w");
        await writeAll(fh, this.header, 0);
        return fh;
      })();
    }
    return this.fh;
  }

  /** Write the next declared tensor: float32 data (converted to the declared dtype) or raw bytes as stored. */
  async write(name: string, data: Float32Array | Uint8Array): Promise<void> {
    if (this.done) throw new TtrlError(`${this.path}: writer is closed`);
    const ti = this.infos[this.next];
    if (!ti)
      throw new TtrlError(
        `${this.path}: tensor ${JSON.stringify(name)} was not declared (all ${this.infos.length} written)`,
      );
    if (ti.name !== name)
      throw new TtrlError(
        `${this.path}: expected tensor ${JSON.stringify(ti.name)} next, got ${JSON.stringify(name)}`,
      );
    let bytes: Uint8Array;
    if (data instanceof Float32Array) {
      if (data.length !== numelOf(ti.shape)) {
        throw new TtrlError(
          `${this.path}: tensor ${JSON.stringify(name)}: ${data.length} values for shape ${fmtShape(ti.shape)}`,
        );
      }
      bytes = f32ToBytes(data, ti.dtype as DType);
    } else {
      bytes = data;
    }
    if (bytes.byteLength !== ti.end - ti.begin) {
      throw new TtrlError(
        `${this.path}: tensor ${JSON.stringify(name)}: ${bytes.byteLength} bytes, ${ti.dtype} ${fmtShape(ti.shape)} needs ${ti.end - ti.begin}`,
      );
    }
    // Every model, checkpoint, merge and optimizer state is written here: never let a NaN/Inf reach a file.
    const bad = firstNonFinite(bytes, String(ti.dtype));
    if (bad >= 0) {
      await this.abort();
      throw new NonFiniteTensorError(this.path, name, bad, valueAt(bytes, String(ti.dtype), bad), ti.shape);
    }
    // the position is taken synchronously, so several writes may be in flight (they land in order on disk)
    this.next++;
    const pos = this.pos;
    this.pos += bytes.byteLength;
    const p = this.handle().then((fh) => writeAll(fh, bytes, pos));
    this.inflight.add(p);
    try {
      await p;
    } finally {
      this.inflight.delete(p);
    }
  }

  /** Finish: every declared tensor must have been written; then the file is renamed into place. */
  async close(): Promise<void> {
    if (this.done) return;
    if (this.next !== this.infos.length) {
      await this.abort();
      throw new TtrlError(
        `${this.path}: closed after ${this.next} of ${this.infos.length} tensors (next: ${JSON.stringify(this.infos[this.next].name)})`,
      );
    }
    this.done = true;
    const fh = await this.handle();
    try {
      await Promise.all(this.inflight);
      await fh.close();
      await fsp.rename(this.tmp, this.path);
    } catch (e) {
      await fsp.rm(this.tmp, { force: true });
      throw e;
    }
  }

  /** Drop the temp file; the target is left untouched. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await Promise.allSettled(this.inflight);
    if (this.fh) {
      try {
        await (await this.fh).close();
      } catch {}
    }
    await fsp.rm(this.tmp, { force: true });
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const pieces: Promise<void>[] = [];
  for (let start = 0; start < bytes.byteLength; start += IO_CHUNK) {
    const end = Math.min(bytes.byteLength, start + IO_CHUNK);
    pieces.push(
      (async () => {
        let done = start;
        while (done < end) {
          const { bytesWritten } = await fh.write(bytes, done, end - done, position + done);
          done += bytesWritten;
        }
      })(),
    );
  }
  await Promise.all(pieces);
}

/** `model-00001-of-00003.safetensors` */
export function shardFileName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;
}

/**
 * Split tensors into shards the way Hugging Face does: in order, a new shard starts when adding the next
 * tensor would pass `maxShardBytes`; a tensor larger than the limit gets a shard of its own.
 */
export function planShards<T extends { dtype: string; shape: readonly number[] }>(
  tensors: readonly T[],
  maxShardBytes?: number,
): T[][] {
  if (maxShardBytes === undefined || !Number.isFinite(maxShardBytes)) return [tensors.slice()];
  if (!(maxShardBytes > 0)) throw new TtrlError(`shard size must be positive, got ${maxShardBytes}`);
  const shards: T[][] = [];
  let cur: T[] = [];
  let curBytes = 0;
  for (const t of tensors) {
    const b = numelOf(t.shape) * dtypeSize(t.dtype);
    if (cur.length && curBytes + b > maxShardBytes) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(t);
    curBytes += b;
  }
  if (cur.length || shards.length === 0) shards.push(cur);
  return shards;
}

/**
 * Streaming writer of a whole checkpoint folder: `model.safetensors`, or shards plus
 * `model.safetensors.index.json` (`metadata.total_size`, `weight_map`). Declare all tensors up front,
 * `write` them in order, then `close()`. Model files left over from an earlier checkpoint in `dir` are
 * removed once the new ones are in place.
 */
export class CheckpointWriter {
  readonly dir: string;
  readonly files: string[];
  private readonly shards: { file: string; tensors: { name: string; dtype: DType; shape: number[] }[] }[];
  private readonly metadata: Record<string, string>;
  private readonly indexMetadata: Record<string, unknown>;
  private readonly totalSize: number;
  private shardIdx = -1;
  private inShard = 0;
  private written = 0;
  private writer: SafetensorsWriter | null = null;
  /** Shards of this checkpoint already renamed into place (removed again by `abort`). */
  private readonly finished: string[] = [];
  private done = false;

  constructor(
    dir: string,
    tensors: { name: string; dtype: DType; shape: number[] }[],
    opts: {
      maxShardBytes?: number;
      metadata?: Record<string, string>;
      indexMetadata?: Record<string, unknown>;
    } = {},
  ) {
    this.dir = dir;
    this.metadata = opts.metadata ?? { format: "pt" };
    this.indexMetadata = opts.indexMetadata ?? {};
    const plan = planShards(tensors, opts.maxShardBytes);
    const n = plan.length;
    this.shards = plan.map((ts, i) => ({ file: n === 1 ? SINGLE_FILE : shardFileName(i, n), tensors: ts }));
    this.files = this.shards.map((s) => s.file);
    this.totalSize = tensors.reduce((a, t) => a + numelOf(t.shape) * dtypeSize(t.dtype), 0);
  }

  /**
   * Write the next declared tensor. Calls may overlap (several tensors in flight); they are dispatched in
   * call order, and a shard is closed only after all of its writes finished.
   */
  async write(name: string, data: Float32Array | Uint8Array): Promise<void> {
    const dispatched = this.queue.then(() => this.dispatch(name, data));
    this.queue = dispatched.then(
      () => {},
      () => {},
    );
    const { done } = await dispatched;
    await done;
  }

  private queue: Promise<void> = Promise.resolve();

  private async dispatch(name: string, data: Float32Array | Uint8Array): Promise<{ done: Promise<void> }> {
    if (this.done) throw new TtrlError(`${this.dir}: checkpoint writer is closed`);
    while (!this.writer || this.inShard >= this.shards[this.shardIdx].tensors.length) {
      if (this.writer) {
        await this.writer.close();
        this.finished.push(this.writer.path);
      }
      this.shardIdx++;
      const s = this.shards[this.shardIdx];
      if (!s) throw new TtrlError(`${this.dir}: tensor ${JSON.stringify(name)} was not declared`);
      this.writer = new SafetensorsWriter(join(this.dir, s.file), s.tensors, this.metadata);
      this.inShard = 0;
    }
    const done = this.writer.write(name, data);
    done.catch(() => {}); // observed by the caller
    this.inShard++;
    this.written++;
    return { done };
  }

  async close(): Promise<void> {
    if (this.done) return;
    await this.queue;
    const all = this.shards.flatMap((s) => s.tensors);
    if (this.written !== all.length) {
      const missing = all[this.written].name;
      await this.abort();
      throw new TtrlError(`${this.dir}: closed before tensor ${JSON.stringify(missing)} was written`);
    }
    // an empty checkpoint still gets its (empty) file
    if (!this.writer)
      this.writer = new SafetensorsWriter(join(this.dir, this.shards[0].file), [], this.metadata);
    if (this.writer) await this.writer.close();
    this.done = true;
    const keep = new Set(this.files);
    if (this.shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const names: [string, string][] = [];
      for (const s of this.shards) for (const t of s.tensors) names.push([t.name, s.file]);
      names.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      for (const [n, f] of names) weightMap[n] = f;
      const index = {
        metadata: { ...this.indexMetadata, total_size: this.totalSize },
        weight_map: weightMap,
      };
      const path = join(this.dir, INDEX_FILE);
      const tmp = tempPathFor(path);
      await fsp.writeFile(tmp, `${JSON.stringify(index, null, 2)}\n`);
      await fsp.rename(tmp, path);
      keep.add(INDEX_FILE);
    }
    let existing: string[] = [];
    try {
      existing = await fsp.readdir(this.dir);
    } catch {}
    for (const f of existing) {
      if (!keep.has(f) && (f === INDEX_FILE || /^model(-\d{5}-of-\d{5})?\.safetensors$/.test(f))) {
        await fsp.rm(join(this.dir, f), { force: true });
      }
    }
  }

  /** Stop: the shard being written is dropped, and so are the shards of this checkpoint already in place. */
  async abort(): Promise<void> {
    this.done = true;
    if (this.writer) await this.writer.abort();
    for (const f of this.finished.splice(0)) await fsp.rm(f, { force: true });
  }
}

/** Save float32 tensors as a checkpoint folder in `dtype` (sharded past `maxShardBytes`), `{"format":"pt"}` metadata. */
export async function saveCheckpoint(
  dir: string,
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  opts: { dtype: DType; maxShardBytes?: number; metadata?: Record<string, string> },
): Promise<void> {
  await fsp.mkdir(resolve(dir), { recursive: true });
  const w = new CheckpointWriter(
    dir,
    tensors.map((t) => ({ name: t.name, dtype: opts.dtype, shape: t.shape })),
    { maxShardBytes: opts.maxShardBytes, metadata: opts.metadata ?? { format: "pt" } },
  );
  try {
    for (const t of tensors) await w.write(t.name, t.data);
    await w.close();
  } catch (e) {
    await w.abort();
    throw e;
  }
}
