/** Minimal PNG reader for tests: 8-bit, non-interlaced greyscale/RGB/RGBA (what resvg and Chromium write). */
import { inflateSync } from "node:zlib";

export interface DecodedPng {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array; // unfiltered, row-major, `channels` bytes per pixel
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngSize(buf: Buffer): { width: number; height: number } {
  if (buf.length < 24 || !buf.subarray(0, 8).equals(SIGNATURE) || buf.toString("latin1", 12, 16) !== "IHDR")
    throw new Error("not a PNG");
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

export function decodePng(buf: Buffer): DecodedPng {
  const { width, height } = pngSize(buf);
  const depth = buf[24];
  const colorType = buf[25];
  const interlace = buf[28];
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (depth !== 8 || !channels || interlace !== 0)
    throw new Error(`unsupported PNG: depth ${depth}, colour type ${colorType}, interlace ${interlace}`);
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString("latin1", off + 4, off + 8);
    if (type === "IDAT") idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[row + x - channels] : 0;
      const b = y > 0 ? pixels[row - stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[row - stride + x - channels] : 0;
      let v = src[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter} on row ${y}`);
      pixels[row + x] = v & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Distinct colours (capped) and the share of pixels that are not the most common colour. */
export function colourStats(img: DecodedPng, cap = 1000): { distinct: number; nonBackground: number } {
  const counts = new Map<number, number>();
  const n = img.width * img.height;
  let seen = 0;
  for (let i = 0; i < n; i++, seen++) {
    let key = 0;
    for (let c = 0; c < Math.min(3, img.channels); c++) key = key * 256 + img.pixels[i * img.channels + c];
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (counts.size > cap * 10) {
      seen++;
      break;
    }
  }
  const top = Math.max(...counts.values());
  return { distinct: Math.min(counts.size, cap), nonBackground: 1 - top / Math.max(1, seen) };
}
