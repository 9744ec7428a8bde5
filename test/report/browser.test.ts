/**
 * The report opened in real headless Chromium: every chart renders marks, nothing is logged as an error, no
 * request leaves the file (the page is self-contained), and a full-page screenshot is saved.
 * Chromium comes from Debian's `chromium` (scripts/ensure-chromium.sh installs it); without it the test is
 * skipped with a warning.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { buildReport } from "../../src/report/index.ts";
import { Browser, findChromium } from "./cdp.ts";
import { colourStats, decodePng, pngSize } from "./png.ts";

const FIX = "test/report/fixtures";
const chromium = findChromium();
const SKIP = chromium
  ? false
  : "chromium not found (install: bash scripts/ensure-chromium.sh, or set TTRL_CHROMIUM): browser check NOT run";
if (!chromium) process.stderr.write(`\n*** WARNING: ${SKIP}\n\n`);

/** Where the screenshot is kept after the test: $TTRL_REPORT_ARTIFACTS or <tmp>/ttrl-report-test. */
const ARTIFACTS = process.env.TTRL_REPORT_ARTIFACTS ?? join(tmpdir(), "ttrl-report-test");

interface ChartCheck {
  id: string;
  svg: boolean;
  marks: number;
  texts: number;
  width: number;
  height: number;
}

describe("report.html in headless Chromium", () => {
  it("renders every chart with marks, logs no errors, loads nothing from outside, and is screenshotted", {
    skip: SKIP,
    timeout: 180000,
  }, async (t) => {
    const out = mkdtempSync(join(tmpdir(), "ttrl-report-browser-"));
    const report = await buildReport({
      runs: [join(FIX, "experiment"), join(FIX, "unlabeled")],
      out,
      title: "TTRL report — browser test",
    });
    const browser = await Browser.launch(chromium as string);
    t.after(async () => {
      await browser.close();
      rmSync(out, { recursive: true, force: true });
    });
    const page = await browser.newPage();
    await page.enable(1400, 1000);
    const url = pathToFileURL(report.html).href;
    await page.goto(url);
    await page.waitFor("window.__ttrlReport && window.__ttrlReport.done", 60000);

    const results = await page.evaluate<{ id: string; ok: boolean; error?: string }[]>(
      "window.__ttrlReport.results",
    );
    assert.deepEqual(
      results.map((r) => [r.id, r.ok, r.error ?? null]),
      report.charts.map((c) => [c.id, true, null]),
    );
    const checks = await page.evaluate<ChartCheck[]>(`[...document.querySelectorAll(".chart")].map((el) => {
      const svg = el.querySelector("svg");
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      return {
        id: el.dataset.chartId,
        svg: !!svg,
        marks: svg ? svg.querySelectorAll("g.role-mark > path, g.role-mark > line, g.role-mark > rect, g.role-mark > circle, g.role-mark > text").length : 0,
        texts: svg ? svg.querySelectorAll("text").length : 0,
        width: box.width,
        height: box.height,
      };
    })`);
    assert.deepEqual(
      checks.map((c) => c.id),
      report.charts.map((c) => c.id),
    );
    for (const c of checks) {
      const spec = report.charts.find((x) => x.id === c.id)?.spec as { data: { values: unknown[] } };
      assert.ok(c.svg, `${c.id}: no <svg> in its container`);
      // every data row draws at least one mark (bars + value labels, or line points)
      const min = c.id === "training_logs" || c.id === "ttrl_diagnostics" ? 2 : spec.data.values.length;
      assert.ok(c.marks >= min, `${c.id}: ${c.marks} marks, expected >= ${min}`);
      assert.ok(c.texts > 5, `${c.id}: only ${c.texts} text elements (axes, titles)`);
      assert.ok(c.width > 300 && c.height > 200, `${c.id}: svg is ${c.width}x${c.height}`);
    }
    // bars carry their values: the fixture's base-model strict validity is written on its bar
    const validMetrics = JSON.parse(readFileSync(join(FIX, "experiment/eval/base/metrics.json"), "utf8"));
    const label = `${(validMetrics.strict.valid_ratio * 100).toFixed(1)}%`;
    const texts = await page.evaluate<string[]>(
      `[...document.querySelectorAll("#chart-valid_generation_ratios svg text")].map((t) => t.textContent)`,
    );
    assert.ok(texts.includes(label), `value label ${label} not on the valid-ratio chart`);

    // interactive: hovering a bar shows its values in the tooltip
    const bar = await page.evaluate<{ x: number; y: number } | null>(`(() => {
      const el = document.querySelector("#chart-valid_generation_ratios g.role-mark.mark-rect > path");
      if (!el) return null;
      el.scrollIntoView({ block: "center" });
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    })()`);
    assert.ok(bar, "no bar in the valid-ratio chart");
    await page.send("Input.dispatchMouseEvent", { type: "mouseMoved", x: bar.x - 3, y: bar.y });
    await page.send("Input.dispatchMouseEvent", { type: "mouseMoved", x: bar.x, y: bar.y });
    await page.waitFor(`document.getElementById("ttrl-tooltip").style.display === "block"`, 10000);
    const tipText = await page.evaluate<string>(`document.getElementById("ttrl-tooltip").textContent`);
    assert.match(tipText, /valid completions/);
    assert.match(tipText, /tr-math-base/);
    await page.send("Input.dispatchMouseEvent", { type: "mouseMoved", x: 2, y: 2 });

    assert.equal(await page.evaluate<boolean>(`document.fonts.check('12px "DejaVu Sans"')`), true);
    const examples = await page.evaluate<number>(
      `document.querySelectorAll("table.examples tbody tr").length`,
    );
    assert.ok(examples >= 8, `only ${examples} example rows`);

    const errors = page.console.filter(
      (e) => e.level === "error" || e.level === "assert" || e.level === "warning",
    );
    assert.deepEqual(errors, [], `console errors/warnings: ${JSON.stringify(errors)}`);
    const outside = page.requests.filter((u) => !/^(file|data|about|blob):/.test(u));
    assert.deepEqual(outside, [], "the report must not load anything from the network");

    await page.evaluate("window.scrollTo(0, 0)");
    const shot = await page.screenshot();
    mkdirSync(ARTIFACTS, { recursive: true });
    const shotPath = join(ARTIFACTS, "report-screenshot.png");
    writeFileSync(shotPath, shot);
    const size = pngSize(shot);
    assert.equal(size.width, 1400);
    assert.ok(size.height > 2000, `page is only ${size.height}px tall`);
    const stats = colourStats(decodePng(shot));
    assert.ok(
      stats.distinct > 50 && stats.nonBackground > 0.2,
      `screenshot looks blank: ${JSON.stringify(stats)}`,
    );
    t.diagnostic(`screenshot: ${shotPath} (${size.width}x${size.height})`);
  });
});
