/**
 * Evaluation at scale (`eval.serve_command` in experiment configs): start an OpenAI-compatible server for
 * one model on 127.0.0.1 (e.g. `vllm serve {model} --port {port}`, or `ttrl serve --model {model} --port
 * {port}` on CPU), wait until `/v1/models` answers, hand its base URL to the caller (ttrl's endpoint backend),
 * and stop it — the whole process group — afterwards. If it dies, the error shows its last log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { TtrlError, UsageError } from "../../util/errors.ts";

export interface ServedModel {
  /** Base URL for the endpoint backend, http://127.0.0.1:PORT/v1. */
  endpoint: string;
  /** The first model id /v1/models reports (what requests must name). */
  modelName: string;
}

/** Placeholders a serve command may use; {port} is required. */
export function checkServeCommand(cmd: unknown, where: string): string {
  if (typeof cmd !== "string" || !cmd.trim())
    throw new UsageError(`${where}: must be a command line (string)`);
  if (!cmd.includes("{port}"))
    throw new UsageError(`${where}: must contain {port} (ttrl picks a free port on 127.0.0.1), got "${cmd}"`);
  if (!cmd.includes("{model}"))
    throw new UsageError(`${where}: must contain {model} (the model folder), got "${cmd}"`);
  return cmd;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig); // the whole group (vLLM forks workers)
      } catch {
        child.kill(sig);
      }
    };
    const t = setTimeout(() => kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(t);
      ok();
    });
    kill("SIGTERM");
  });
}

/**
 * Run `fn` against a server started with `command` for `model`. `logFile` receives the server's output;
 * errors (the server exiting, not answering in `timeoutS`, or `fn` failing while it is down) end with its
 * last lines.
 */
export async function withServedModel<T>(
  command: string,
  model: string,
  fn: (s: ServedModel) => Promise<T>,
  opts: { timeoutS?: number; logFile?: string } = {},
): Promise<T> {
  const port = await freePort();
  const line = command.replaceAll("{model}", shellQuote(model)).replaceAll("{port}", String(port));
  const tail: string[] = [];
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: "a" }) : null;
  const keep = (chunk: Buffer) => {
    log?.write(chunk);
    for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) tail.push(l);
    while (tail.length > 20) tail.shift();
  };
  const child = spawn("sh", ["-c", line], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited: string | null = null;
  child.on("exit", (code, sig) => {
    exited = sig ? `was killed by ${sig}` : `exited with code ${code}`;
  });
  const lastLines = () => (tail.length ? `; its last lines:\n  ${tail.slice(-12).join("\n  ")}` : "");
  const base = `http://127.0.0.1:${port}`;
  try {
    const deadline = Date.now() + (opts.timeoutS ?? 600) * 1000;
    let modelName: string | null = null;
    while (modelName === null) {
      if (exited)
        throw new TtrlError(
          `eval.serve_command \`${line}\` ${exited} before answering ${base}/v1/models${lastLines()}`,
        );
      if (Date.now() > deadline)
        throw new TtrlError(
          `eval.serve_command \`${line}\`: ${base}/v1/models did not answer within ${opts.timeoutS ?? 600} s${lastLines()}`,
        );
      try {
        const r = await fetch(`${base}/v1/models`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) {
          const body = (await r.json()) as { data?: { id?: string }[] };
          modelName = body.data?.[0]?.id ?? null;
          if (!modelName) throw new TtrlError(`eval.serve_command: ${base}/v1/models lists no model`);
        }
      } catch (e) {
        if (e instanceof TtrlError) throw e;
      }
      if (modelName === null) await new Promise((r) => setTimeout(r, 300));
    }
    try {
      return await fn({ endpoint: `${base}/v1`, modelName });
    } catch (e) {
      if (exited)
        throw new TtrlError(`eval.serve_command \`${line}\` ${exited} during evaluation${lastLines()}`, {
          cause: e,
        });
      throw e;
    }
  } finally {
    await stop(child);
    log?.end();
  }
}
