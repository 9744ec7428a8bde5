import type { Command } from "commander";
import { deviceOption, parseIntOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions), batching concurrent requests",
    )
    .requiredOption("--model <dir>", "model folder (HF layout)")
    .option("--port <n>", "port (0 = any free port)", parseIntOption("--port", 0, 65535), 8000)
    .option("--host <host>", "address to bind (loopback by default)", "127.0.0.1")
    .option("--name <name>", "model name reported by /v1/models (default: the folder name)")
    .option(
      "--batch-window-ms <ms>",
      "how long to gather requests into one batch",
      parseIntOption("--batch-window-ms", 0, 1000),
      5,
    )
    .option(
      "--max-batch <n>",
      "most sequences per batched generate",
      parseIntOption("--max-batch", 1, 1024),
      32,
    )
    .option("--threads <n>", "engine threads", parseIntOption("--threads", 1, 256))
    .addHelpText(
      "after",
      '\nExample:\n  ttrl serve --model models/tr-math-base --port 8000\n  curl -s localhost:8000/v1/completions -H \'content-type: application/json\' \\\n    -d \'{"prompt":"Soru: 2+2 kaçtır?\\n","max_tokens":64,"seed":1}\'\n',
    )
    .addOption(deviceOption())
    .action(async (o) => {
      const { loadEngine } = await import("../../eval/engine.ts");
      const { createServeServer } = await import("../../serve/server.ts");
      const engine = await loadEngine(o.model, { name: o.name, threads: o.threads });
      const srv = createServeServer(engine, { batchWindowMs: o.batchWindowMs, maxBatch: o.maxBatch });
      const port = await srv.listen(o.port, o.host);
      if (!["127.0.0.1", "localhost", "::1"].includes(o.host))
        process.stderr.write(
          `ttrl serve: warning: listening on ${o.host}, reachable from other machines; there is no authentication\n`,
        );
      process.stdout.write(
        `ttrl serve: model '${engine.name}' on http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}/v1\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      await srv.close();
      const s = srv.stats;
      process.stdout.write(
        `ttrl serve: stopped after ${s.completionRequests} completion request(s), ${s.sequences} sequence(s) in ${s.batches} batch(es), ${s.errors4xx} client error(s)\n`,
      );
    });
}
