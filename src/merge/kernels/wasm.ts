/**
 * WebAssembly SIMD kernels of the bf16 SLERP, assembled here from a few opcodes (no toolchain, no binary
 * blob in the repo), over one shared `WebAssembly.Memory` that the main thread and the workers all use, so
 * tensors are read from disk straight into it and never copied.
 *
 * Every float32 operation is the same IEEE operation, in the same order, as the peer's kernels (see
 * `torchSum`, `torchSquares` in torch.ts for the scalar reference the tests compare against):
 * - `sq(p, n)`: Σx² of n bf16 values as torch's vectorised `vector_norm` lastdim kernel on AVX2 does it:
 *   8 float32 lanes, lane k accumulating elements ≡ k (mod 8), lanes then added in order 0..7, then the
 *   < 8 tail elements one by one. (x² of a bf16 value is exact in float32, so fused or not is the same.)
 * - `dot(pa, pb, n, ra, rb, scratch)`: torch's `cascade_sum` (SumKernel.cpp, `vectorized_inner_sum` with
 *   8-lane vectors, ilp 4, 4 levels of 2^4 rows) of the products (a/ra)·(b/rb), each operation rounded to
 *   float32. `scratch` is 384 bytes of the caller's own (levels 1..3).
 * - `mix(pa, pb, pd, n, c0, c1)`: d = bf16(c0·a + c1·b) (products and sum rounded to float32, then round to
 *   nearest even, NaN → 0x7FC0), n a multiple of 8.
 */

// The project's TypeScript lib has no DOM types, so the little of the WebAssembly API used here is typed here.
export interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
export type WasmModule = object;
interface WasmApi {
  Module: { new (bytes: Uint8Array): WasmModule; exports(m: WasmModule): { name: string }[] };
  Instance: new (m: WasmModule, imports: object) => { exports: object };
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

// ---- a minimal binary writer -------------------------------------------------------------------------

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(v: number): number[] {
  const out: number[] = [];
  let x = v >>> 0;
  do {
    let b = x & 0x7f;
    x >>>= 7;
    if (x !== 0) b |= 0x80;
    out.push(b);
  } while (x !== 0);
  return out;
}

function sleb(v: number): number[] {
  const out: number[] = [];
  let x = v | 0;
  for (;;) {
    const b = x & 0x7f;
    x >>= 7;
    if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function f32Bytes(v: number): number[] {
  return [...new Uint8Array(new Float32Array([v]).buffer)];
}

const vec = (bytes: number[]): number[] => [...uleb(bytes.length), ...bytes];

/** Instruction helpers (each returns the bytes). */
const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  f32: (v: number) => [0x43, ...f32Bytes(v)],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  call: (f: number) => [0x10, ...uleb(f)],
  eqz: [0x45],
  ltU: [0x49],
  gtU: [0x4b],
  geU: [0x4f],
  add: [0x6a],
  sub: [0x6b],
  and: [0x71],
  shl: [0x74],
  shrU: [0x76],
  fadd: [0x92],
  fmul: [0x94],
  mul32: [0x6c],
  fdiv: [0x95],
  load16u: (off = 0) => [0x2f, 0x01, ...uleb(off)],
  reinterpret: [0xbe],
  // SIMD (0xfd prefix)
  vload: (off = 0) => [0xfd, ...uleb(0x00), 0x00, ...uleb(off)],
  vload16x4u: (off = 0) => [0xfd, ...uleb(0x04), 0x00, ...uleb(off)],
  vstore: (off = 0) => [0xfd, ...uleb(0x0b), 0x00, ...uleb(off)],
  vconst: (lanes: number[]) => [0xfd, ...uleb(0x0c), ...new Uint8Array(new Uint32Array(lanes).buffer)],
  fsplat: [0xfd, ...uleb(0x13)],
  fextract: (lane: number) => [0xfd, ...uleb(0x1f), lane],
  vand: [0xfd, ...uleb(0x4e)],
  bitselect: [0xfd, ...uleb(0x52)],
  narrowU: [0xfd, ...uleb(0x86)],
  igtS: [0xfd, ...uleb(0x3b)],
  ishl: [0xfd, ...uleb(0xab)],
  ishrU: [0xfd, ...uleb(0xad)],
  iadd: [0xfd, ...uleb(0xae)],
  vfadd: [0xfd, ...uleb(0xe4)],
  vfmul: [0xfd, ...uleb(0xe6)],
  vfdiv: [0xfd, ...uleb(0xe7)],
};

interface Fn {
  params: number[];
  results: number[];
  locals: number[];
  body: number[];
}

function moduleBytes(fns: { name: string; fn: Fn }[]): Uint8Array {
  const section = (id: number, payload: number[]) => [id, ...vec(payload)];
  const types = fns.map(({ fn }) => [0x60, ...vec(fn.params), ...vec(fn.results)]);
  const typeSec = section(1, [...uleb(types.length), ...types.flat()]);
  // import env.mem: shared memory, min 1 page, max 65536 pages (4 GiB)
  const name = (s: string) => vec([...new TextEncoder().encode(s)]);
  const importSec = section(2, [
    ...uleb(1),
    ...name("env"),
    ...name("mem"),
    0x02,
    0x03,
    ...uleb(1),
    ...uleb(65536),
  ]);
  const funcSec = section(3, [...uleb(fns.length), ...fns.flatMap((_, i) => uleb(i))]);
  const exportSec = section(7, [
    ...uleb(fns.length),
    ...fns.flatMap(({ name: n }, i) => [...name(n), 0x00, ...uleb(i)]),
  ]);
  const bodies = fns.map(({ fn }) => {
    // locals: one run per local (simple, fine for a handful)
    const runs = fn.locals.map((t) => [...uleb(1), t]);
    return vec([...uleb(runs.length), ...runs.flat(), ...fn.body, 0x0b]);
  });
  const codeSec = section(10, [...uleb(bodies.length), ...bodies.flat()]);
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...typeSec,
    ...importSec,
    ...funcSec,
    ...exportSec,
    ...codeSec,
  ]);
}

// ---- kernels ----------------------------------------------------------------------------------------

/** bf16 → f32x4 from 4 halfwords at the address on the stack (+off bytes). */
const decode4 = (off: number) => [...op.vload16x4u(off), ...op.i32(16), ...op.ishl];
/** bf16 → f32 from the halfword at the address on the stack (+off bytes). */
const decode1 = (off: number) => [...op.load16u(off), ...op.i32(16), ...op.shl, ...op.reinterpret];
const whileLt = (a: number[], b: number[], body: number[]) => [
  ...op.block,
  ...op.loop,
  ...a,
  ...b,
  ...op.geU,
  ...op.brIf(1),
  ...body,
  ...op.br(0),
  ...op.end,
  ...op.end,
];
const incr = (l: number, by: number) => [...op.get(l), ...op.i32(by), ...op.add, ...op.set(l)];
/** `while (count !== 0) { body; count-- }` over the i32 local `count`. */
const countDown = (count: number, body: number[]) => [
  ...op.block,
  ...op.loop,
  ...[...op.get(count), ...op.eqz, ...op.brIf(1)],
  ...body,
  ...incr(count, -1),
  ...op.br(0),
  ...op.end,
  ...op.end,
];
const laneSum = (acc: number[], lo: number, hi: number) => [
  ...acc,
  ...[0, 1, 2, 3].flatMap((l) => [...op.get(lo), ...op.fextract(l), ...op.fadd]),
  ...[0, 1, 2, 3].flatMap((l) => [...op.get(hi), ...op.fextract(l), ...op.fadd]),
];

/** sq(p, n) -> f32: params 0 p, 1 n; locals 2 end, 3 tailEnd, 4 lo, 5 hi, 6 x, 7 s, 8 t. */
function sqFn(): Fn {
  const [P, N, END, TEND, LO, HI, X, S, T] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const step = (acc: number, off: number) => [
    ...op.get(acc),
    ...op.get(P),
    ...decode4(off),
    ...op.tee(X),
    ...op.get(X),
    ...op.vfmul,
    ...op.vfadd,
    ...op.set(acc),
  ];
  return {
    params: [I32, I32],
    results: [F32],
    locals: [I32, I32, V128, V128, V128, F32, F32],
    body: [
      ...[
        ...op.get(P),
        ...op.get(N),
        ...op.i32(-8),
        ...op.and,
        ...op.i32(1),
        ...op.shl,
        ...op.add,
        ...op.set(END),
      ],
      ...[...op.get(P), ...op.get(N), ...op.i32(1), ...op.shl, ...op.add, ...op.set(TEND)],
      ...whileLt(op.get(P), op.get(END), [...step(LO, 0), ...step(HI, 8), ...incr(P, 16)]),
      // lanes in order from 0.0 (buffer[0] = lane 0, then += lanes 1..7)
      ...laneSum(op.f32(0), LO, HI),
      ...op.set(S),
      ...whileLt(op.get(P), op.get(TEND), [
        ...op.get(S),
        ...op.get(P),
        ...decode1(0),
        ...op.tee(T),
        ...op.get(T),
        ...op.fmul,
        ...op.fadd,
        ...op.set(S),
        ...incr(P, 2),
      ]),
      ...op.get(S),
    ],
  };
}

/**
 * dot(pa, pb, n, ra, rb, scratch, lp) -> f32.
 * params 0 pa, 1 pb, 2 n, 3 ra, 4 rb, 5 scratch, 6 lp (level power)
 * locals 7 vra, 8 vrb, 9..16 acc0[k], 17 i, 18 sizeIlp, 19 step, 20 jj, 21 fa, 22 mask, 23 left
 */
function dotFn(): Fn {
  const [PA, PB, N, RA, RB, SCR, LP] = [0, 1, 2, 3, 4, 5, 6];
  const [VRA, VRB] = [7, 8];
  const ACC = (k: number) => 9 + k;
  const [I, SIZE, STEP, JJ, FA, MASK, LEFT] = [17, 18, 19, 20, 21, 22, 23];
  const prod4 = (off: number) => [
    ...op.get(PA),
    ...decode4(off),
    ...op.get(VRA),
    ...op.vfdiv,
    ...op.get(PB),
    ...decode4(off),
    ...op.get(VRB),
    ...op.vfdiv,
    ...op.vfmul,
  ];
  const accAdd = (k: number, off: number) => [
    ...op.get(ACC(k)),
    ...prod4(off),
    ...op.vfadd,
    ...op.set(ACC(k)),
  ];
  const row = [
    ...Array.from({ length: 8 }, (_, k) => accAdd(k, k * 8)).flat(),
    ...incr(PA, 64),
    ...incr(PB, 64),
  ];
  const zero = op.vconst([0, 0, 0, 0]);
  const mem = (j: number, k: number) => (j - 1) * 128 + k * 16;
  // level j += level j-1 ; level j-1 = 0   (level 0 in locals)
  const flush = (j: number) =>
    Array.from({ length: 8 }, (_, k) =>
      j === 1
        ? [
            ...op.get(SCR),
            ...op.get(SCR),
            ...op.vload(mem(1, k)),
            ...op.get(ACC(k)),
            ...op.vfadd,
            ...op.vstore(mem(1, k)),
            ...zero,
            ...op.set(ACC(k)),
          ]
        : [
            ...op.get(SCR),
            ...op.get(SCR),
            ...op.vload(mem(j, k)),
            ...op.get(SCR),
            ...op.vload(mem(j - 1, k)),
            ...op.vfadd,
            ...op.vstore(mem(j, k)),
            ...op.get(SCR),
            ...zero,
            ...op.vstore(mem(j - 1, k)),
          ],
    ).flat();
  const maskAt = (j: number) => [
    ...op.get(I),
    ...op.get(MASK),
    ...op.get(LP),
    ...op.i32(j),
    ...op.mul32,
    ...op.shl,
    ...op.and,
  ];
  const scalarProd = [
    ...op.get(PA),
    ...decode1(0),
    ...op.get(RA),
    ...op.fdiv,
    ...op.get(PB),
    ...decode1(0),
    ...op.get(RB),
    ...op.fdiv,
    ...op.fmul,
  ];
  return {
    params: [I32, I32, I32, F32, F32, I32, I32],
    results: [F32],
    locals: [V128, V128, ...Array(8).fill(V128), I32, I32, I32, I32, F32, I32, I32],
    body: [
      ...op.get(RA),
      ...op.fsplat,
      ...op.set(VRA),
      ...op.get(RB),
      ...op.fsplat,
      ...op.set(VRB),
      ...Array.from({ length: 24 }, (_, k) => [...op.get(SCR), ...zero, ...op.vstore(k * 16)]).flat(),
      // sizeIlp = (n >> 3) >> 2 ; step = 1 << lp ; mask = step - 1
      ...[...op.get(N), ...op.i32(5), ...op.shrU, ...op.set(SIZE)],
      ...[...op.i32(1), ...op.get(LP), ...op.shl, ...op.tee(STEP), ...op.i32(1), ...op.sub, ...op.set(MASK)],
      ...op.block,
      ...op.loop,
      ...[...op.get(I), ...op.get(STEP), ...op.add, ...op.get(SIZE), ...op.gtU, ...op.brIf(1)],
      ...op.get(STEP),
      ...op.set(JJ),
      ...op.loop,
      ...row,
      ...incr(I, 1),
      ...[...op.get(JJ), ...op.i32(1), ...op.sub, ...op.tee(JJ), ...op.brIf(0)],
      ...op.end,
      ...op.block,
      ...flush(1),
      ...maskAt(1),
      ...op.brIf(0),
      ...flush(2),
      ...maskAt(2),
      ...op.brIf(0),
      ...flush(3),
      ...op.end,
      ...op.br(0),
      ...op.end,
      ...op.end,
      ...whileLt(op.get(I), op.get(SIZE), [...row, ...incr(I, 1)]),
      // acc0[k] += acc1[k]; += acc2[k]; += acc3[k]
      ...Array.from({ length: 8 }, (_, k) => [
        ...op.get(ACC(k)),
        ...[1, 2, 3].flatMap((j) => [...op.get(SCR), ...op.vload(mem(j, k)), ...op.vfadd]),
        ...op.set(ACC(k)),
      ]).flat(),
      // leftover vectors of 8: (n >> 3) - sizeIlp * 4
      ...[
        ...op.get(N),
        ...op.i32(3),
        ...op.shrU,
        ...op.get(SIZE),
        ...op.i32(2),
        ...op.shl,
        ...op.sub,
        ...op.set(LEFT),
      ],
      ...countDown(LEFT, [...accAdd(0, 0), ...accAdd(1, 8), ...incr(PA, 16), ...incr(PB, 16)]),
      // partial[0] += partial[1]; += partial[2]; += partial[3]
      ...[2, 4, 6].flatMap((k) => [
        ...op.get(ACC(0)),
        ...op.get(ACC(k)),
        ...op.vfadd,
        ...op.set(ACC(0)),
        ...op.get(ACC(1)),
        ...op.get(ACC(k + 1)),
        ...op.vfadd,
        ...op.set(ACC(1)),
      ]),
      // final_acc = 0 + scalar tail (n & 7 elements) + lanes 0..7
      ...op.f32(0),
      ...op.set(FA),
      ...[...op.get(N), ...op.i32(7), ...op.and, ...op.set(LEFT)],
      ...countDown(LEFT, [
        ...op.get(FA),
        ...scalarProd,
        ...op.fadd,
        ...op.set(FA),
        ...incr(PA, 2),
        ...incr(PB, 2),
      ]),
      ...laneSum(op.get(FA), ACC(0), ACC(1)),
    ],
  };
}

/** mix(pa, pb, pd, n, c0, c1): params 0 pa, 1 pb, 2 pd, 3 n, 4 c0, 5 c1; locals 6 vc0, 7 vc1, 8 end, 9 x, 10 lo. */
function mixFn(): Fn {
  const [PA, PB, PD, N, C0, C1, VC0, VC1, END, X, LO] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const value = (off: number) => [
    ...op.get(VC0),
    ...op.get(PA),
    ...decode4(off),
    ...op.vfmul,
    ...op.get(VC1),
    ...op.get(PB),
    ...decode4(off),
    ...op.vfmul,
    ...op.vfadd,
    ...op.set(X),
  ];
  const splat = (v: number) => op.vconst([v, v, v, v]);
  const round = [
    ...splat(0x7fc0),
    ...op.get(X),
    ...splat(0x7fff),
    ...op.iadd,
    ...op.get(X),
    ...op.i32(16),
    ...op.ishrU,
    ...splat(1),
    ...op.vand,
    ...op.iadd,
    ...op.i32(16),
    ...op.ishrU,
    ...op.get(X),
    ...splat(0x7fffffff),
    ...op.vand,
    ...splat(0x7f800000),
    ...op.igtS,
    ...op.bitselect,
  ];
  return {
    params: [I32, I32, I32, I32, F32, F32],
    results: [],
    locals: [V128, V128, I32, V128, V128],
    body: [
      ...[...op.get(C0), ...op.fsplat, ...op.set(VC0), ...op.get(C1), ...op.fsplat, ...op.set(VC1)],
      ...[...op.get(PA), ...op.get(N), ...op.i32(1), ...op.shl, ...op.add, ...op.set(END)],
      ...whileLt(op.get(PA), op.get(END), [
        ...value(0),
        ...round,
        ...op.set(LO),
        ...value(8),
        ...op.get(PD),
        ...op.get(LO),
        ...round,
        ...op.narrowU,
        ...op.vstore(0),
        ...incr(PA, 16),
        ...incr(PB, 16),
        ...incr(PD, 16),
      ]),
    ],
  };
}

let compiled: WasmModule | null = null;

/** The compiled kernel module (sq, dot, mix), importing `env.mem`. */
export function kernelModule(): WasmModule {
  if (!compiled) {
    compiled = new WA.Module(
      moduleBytes([
        { name: "sq", fn: sqFn() },
        { name: "dot", fn: dotFn() },
        { name: "mix", fn: mixFn() },
      ]),
    );
  }
  return compiled;
}

export interface Kernels {
  sq(p: number, n: number): number;
  dot(pa: number, pb: number, n: number, ra: number, rb: number, scratch: number, lp: number): number;
  mix(pa: number, pb: number, pd: number, n: number, c0: number, c1: number): void;
}

export function instantiateKernels(memory: WasmMemory, module = kernelModule()): Kernels {
  const inst = new WA.Instance(module, { env: { mem: memory } });
  return inst.exports as unknown as Kernels;
}

/** A growable shared memory for tensors (4 GiB address space, pages committed as used). */
export function sharedMemory(): WasmMemory {
  return new WA.Memory({ initial: 1, maximum: 65536, shared: true });
}
