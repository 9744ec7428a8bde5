/**
 * The WebAssembly.Memory patch (installed by ./install.ts, before jax-js is first imported).
 *
 * jax-js grows its Wasm memory to exactly the pages each allocation needs. A non-shared memory (one thread)
 * is copied on every grow, which made a first training step spend seconds copying (2000 grows to 1 GB:
 * 2.6 s); those grow by at least half their size instead. Shared memories (worker pool) grow in place and
 * are left alone.
 */
type MemoryDesc = { initial: number; maximum?: number; shared?: boolean };
type Memory = { buffer: ArrayBuffer; grow(delta: number): number };
type MemoryCtor = (new (desc: MemoryDesc) => Memory) & { __ttrlGeometric?: boolean };

/** Replace `WebAssembly.Memory` with one whose unbounded, non-shared memories grow geometrically (idempotent). */
export function installGeometricMemory(): void {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: MemoryCtor } }).WebAssembly;
  if (wasm.Memory.__ttrlGeometric) return;
  const Base = wasm.Memory;
  class GeometricMemory extends Base {
    static override __ttrlGeometric = true;
    private readonly geometric: boolean;
    constructor(desc: MemoryDesc) {
      super(desc);
      this.geometric = !desc.shared && desc.maximum === undefined;
    }
    override grow(delta: number): number {
      if (!this.geometric || !(delta > 0)) return super.grow(delta);
      const pages = this.buffer.byteLength / 65536;
      const more = Math.max(delta, Math.min(65536 - pages, Math.ceil(pages / 2)));
      try {
        return super.grow(more);
      } catch {
        return super.grow(delta);
      }
    }
  }
  wasm.Memory = GeometricMemory;
}
