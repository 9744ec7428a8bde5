/**
 * Headless rendering: Vega-Lite spec → Vega spec → vega View → SVG → PNG (resvg), with the shipped DejaVu Sans
 * subset as the only font, so PNG text renders the same on machines without system fonts.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { TtrlError } from "../util/errors.ts";
import type { VlSpec } from "./specs.ts";

export const ASSETS_DIR = join(dirname(fileURLToPath(import.meta.url)), "assets");
export const FONT_FILES = {
  regular: join(ASSETS_DIR, "DejaVuSans-subset.ttf"),
  bold: join(ASSETS_DIR, "DejaVuSans-Bold-subset.ttf"),
};

interface FontWidths {
  regular: Record<string, number>;
  bold: Record<string, number>;
}
let widths: FontWidths | null = null;

/** Text width in px from the shipped font's advance widths (vega has no canvas to measure with in Node). */
export function measureText(text: string, fontSize: number, bold: boolean): number {
  widths ??= JSON.parse(readFileSync(join(ASSETS_DIR, "font-widths.json"), "utf8")) as FontWidths;
  const table = bold ? widths.bold : widths.regular;
  let em = 0;
  for (const ch of text) em += table[String(ch.codePointAt(0))] ?? 0.62;
  return em * fontSize;
}

let metricsInstalled = false;
function installTextMetrics(): void {
  if (metricsInstalled) return;
  metricsInstalled = true;
  // vega re-exports vega-scenegraph's textMetrics (not in its typings); a user-defined width is supported
  const tm = (
    vega as unknown as { textMetrics: { width: (item: Record<string, unknown>, text: unknown) => number } }
  ).textMetrics;
  tm.width = (item, text) => {
    const size = typeof item.fontSize === "number" ? item.fontSize : 11;
    const w = item.fontWeight;
    const bold =
      w === "bold" || w === "bolder" || (typeof w === "number" && w >= 600) || w === "600" || w === "700";
    return measureText(text == null ? "" : String(text), size, bold);
  };
}

/** Compile a Vega-Lite spec to a Vega spec (throws a TtrlError naming the chart on failure). */
export function toVega(id: string, spec: VlSpec): vega.Spec {
  try {
    return compile(spec as unknown as TopLevelSpec).spec as vega.Spec;
  } catch (e) {
    throw new TtrlError(`chart ${id}: Vega-Lite compile failed: ${(e as Error).message}`);
  }
}

export async function toSvg(id: string, vegaSpec: vega.Spec): Promise<string> {
  installTextMetrics();
  const view = new vega.View(vega.parse(vegaSpec), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } catch (e) {
    throw new TtrlError(`chart ${id}: rendering failed: ${(e as Error).message}`);
  } finally {
    view.finalize();
  }
}

/** SVG → PNG at `scale` × the SVG's pixel size, white background, shipped fonts only. */
export function svgToPng(svg: string, scale = 2): { png: Buffer; width: number; height: number } {
  const r = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: {
      loadSystemFonts: false,
      fontFiles: [FONT_FILES.regular, FONT_FILES.bold],
      defaultFontFamily: "DejaVu Sans",
      sansSerifFamily: "DejaVu Sans",
    },
  });
  const img = r.render();
  return { png: img.asPng(), width: img.width, height: img.height };
}
