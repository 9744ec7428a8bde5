/**
 * A small Chrome DevTools Protocol client for tests: headless Chromium over --remote-debugging-pipe (fds 3/4,
 * NUL-delimited JSON), so no WebSocket and no browser-automation package is needed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { Readable, Writable } from "node:stream";

/** Chromium to use: $TTRL_CHROMIUM, else the first of Debian's names found on PATH. */
export function findChromium(): string | null {
  const env = process.env.TTRL_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  const dirs = (process.env.PATH ?? "").split(delimiter).concat(["/usr/bin"]);
  for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"])
    for (const d of dirs) {
      const p = join(d, name);
      if (d && existsSync(p)) return p;
    }
  return null;
}

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  "--hide-scrollbars",
  "--mute-audio",
];

type Handler = (params: Record<string, unknown>, sessionId?: string) => void;

export class Browser {
  private readonly proc: ChildProcess;
  private readonly userDir: string;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; method: string }
  >();
  private readonly listeners = new Map<string, Set<Handler>>();
  private buffer = "";
  private stderr = "";
  private exited = false;

  private constructor(executable: string) {
    this.userDir = mkdtempSync(join(tmpdir(), "ttrl-chromium-"));
    this.proc = spawn(
      executable,
      [...CHROMIUM_FLAGS, `--user-data-dir=${this.userDir}`, "--remote-debugging-pipe", "about:blank"],
      {
        stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
      },
    );
    (this.proc.stderr as Readable).on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    const out = this.proc.stdio[4] as Readable;
    out.on("data", (d: Buffer) => this.onData(d.toString("utf8")));
    this.proc.on("exit", () => {
      this.exited = true;
      for (const p of this.pending.values())
        p.reject(new Error(`chromium exited during ${p.method}; stderr tail:\n${this.stderr}`));
      this.pending.clear();
    });
  }

  static async launch(executable: string): Promise<Browser> {
    const b = new Browser(executable);
    try {
      await withTimeout(b.send("Browser.getVersion"), 60000, "chromium start-up");
    } catch (e) {
      b.proc.kill("SIGKILL");
      rmSync(b.userDir, { recursive: true, force: true });
      throw new Error(`${(e as Error).message}; stderr tail:\n${b.stderr}`);
    }
    return b;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let i = this.buffer.indexOf("\0");
    while (i >= 0) {
      const msg = JSON.parse(this.buffer.slice(0, i)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
      };
      this.buffer = this.buffer.slice(i + 1);
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
          else p.resolve(msg.result);
        }
      } else if (msg.method)
        for (const h of this.listeners.get(msg.method) ?? []) h(msg.params ?? {}, msg.sessionId);
      i = this.buffer.indexOf("\0");
    }
  }

  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`chromium has exited; stderr tail:\n${this.stderr}`));
    const id = this.nextId++;
    const msg = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
      (this.proc.stdio[3] as Writable).write(`${msg}\0`);
    });
  }

  on(method: string, h: Handler): void {
    let set = this.listeners.get(method);
    if (!set) {
      set = new Set();
      this.listeners.set(method, set);
    }
    set.add(h);
  }

  /** Open a new page and return a session bound to it. */
  async newPage(): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    return new Page(this, sessionId);
  }

  async close(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
      try {
        await Promise.race([this.send("Browser.close"), new Promise((r) => setTimeout(r, 3000))]);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.userDir, { recursive: true, force: true });
  }
}

export interface ConsoleEntry {
  source: string;
  level: string;
  text: string;
}

export class Page {
  readonly console: ConsoleEntry[] = [];
  readonly requests: string[] = [];
  constructor(
    private readonly browser: Browser,
    readonly sessionId: string,
  ) {
    browser.on("Runtime.consoleAPICalled", (p, s) => {
      if (s !== sessionId) return;
      const args = (p.args as { value?: unknown; description?: string }[]) ?? [];
      this.console.push({
        source: "console",
        level: String(p.type),
        text: args.map((a) => (a.value !== undefined ? String(a.value) : (a.description ?? ""))).join(" "),
      });
    });
    browser.on("Runtime.exceptionThrown", (p, s) => {
      if (s !== sessionId) return;
      const d = p.exceptionDetails as { text?: string; exception?: { description?: string } };
      this.console.push({
        source: "exception",
        level: "error",
        text: d.exception?.description ?? d.text ?? "",
      });
    });
    browser.on("Log.entryAdded", (p, s) => {
      if (s !== sessionId) return;
      const e = p.entry as { source: string; level: string; text: string; url?: string };
      this.console.push({ source: e.source, level: e.level, text: `${e.text}${e.url ? ` (${e.url})` : ""}` });
    });
    browser.on("Network.requestWillBeSent", (p, s) => {
      if (s !== sessionId) return;
      this.requests.push(String((p.request as { url: string }).url));
    });
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.browser.send<T>(method, params, this.sessionId);
  }

  async enable(width: number, height: number): Promise<void> {
    await Promise.all([
      this.send("Runtime.enable"),
      this.send("Log.enable"),
      this.send("Page.enable"),
      this.send("Network.enable"),
    ]);
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
  }

  async goto(url: string, timeoutMs = 30000): Promise<void> {
    const loaded = new Promise<void>((resolve) =>
      this.browser.on("Page.loadEventFired", (_p, s) => s === this.sessionId && resolve()),
    );
    const r = await this.send<{ errorText?: string }>("Page.navigate", { url });
    if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`);
    await withTimeout(loaded, timeoutMs, `load of ${url}`);
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value?: T }; exceptionDetails?: { text: string } }>(
      "Runtime.evaluate",
      {
        expression,
        returnByValue: true,
        awaitPromise: true,
      },
    );
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Poll `expression` until truthy. */
  async waitFor(expression: string, timeoutMs = 30000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!(await this.evaluate<boolean>(`Boolean(${expression})`))) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${expression}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const { cssContentSize } = await this.send<{ cssContentSize: { width: number; height: number } }>(
      "Page.getLayoutMetrics",
    );
    const r = await this.send<{ data: string }>("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: {
        x: 0,
        y: 0,
        width: Math.ceil(cssContentSize.width),
        height: Math.ceil(cssContentSize.height),
        scale: 1,
      },
    });
    return Buffer.from(r.data, "base64");
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}
