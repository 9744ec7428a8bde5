import type { Command } from "commander";
import { computeDtypeOption, deviceOption, parseIntOption } from "../options.ts";

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
    .option(
      "--headers-timeout <s>",
      "seconds a client may take to send a request's headers (then 408, connection closed)",
      parseIntOption("--headers-timeout", 1, 3600),
      10,
    )
    .option(
      "--request-timeout <s>",
      "seconds a client may take to send a whole request (headers and body)",
      parseIntOption("--request-timeout", 1, 3600),
      60,
    )
    .addHelpText("after", () => serveHelp())
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(async (o) => {
      const { loadEngine } = await import("../../eval/engine.ts");
      const { createServeServer, checkListen } = await import("../../serve/server.ts");
      // A taken port or an unknown host is reported before the model loads.
      await checkListen(o.port, o.host);
      const engine = await loadEngine(o.model, { name: o.name, threads: o.threads });
      const srv = createServeServer(engine, {
        batchWindowMs: o.batchWindowMs,
        maxBatch: o.maxBatch,
        headersTimeoutMs: o.headersTimeout * 1000,
        requestTimeoutMs: o.requestTimeout * 1000,
      });
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

function serveHelp(): string {
  return `
Endpoints: GET /v1/models, /health, /tokenizer_info; POST /v1/completions, /v1/chat/completions,
/tokenize, /detokenize (vLLM's, used by lm-evaluation-harness's remote tokenizer).

Request fields:
  used         model, prompt (string, token ids, or arrays of them) / messages, n, max_tokens
               (max_completion_tokens), temperature, top_p, top_k, stop (up to 16), seed, stream,
               stream_options.include_usage, logprobs (completions: top-N 0-20; chat: true with
               top_logprobs 0-20), echo (completions; max_tokens 0 with echo scores the prompt only)
  ignored      user, metadata, store, service_tier, parallel_tool_calls, prompt_cache_key,
               safety_identifier (accepted with any value; they cannot change the output)
  no-op only   presence_penalty 0, frequency_penalty 0, repetition_penalty 1, min_p 0, logit_bias {},
               ignore_eos false, min_tokens 0, best_of 1, suffix "", response_format {"type":"text"},
               tools [], tool_choice "none"/"auto", functions [], function_call "none"/"auto",
               modalities ["text"] (any other value: 400 naming the field)
  anything else: 400 "unknown field" (as the OpenAI API does), so a typo is never a silent default.
Same request + seed -> same text, streamed or not; choice i uses seed + i. Log-probs are the model's raw
ones (temperature 1), the numbers of \`ttrl logprob\`. A client that disconnects stops its generation.

Example:
  ttrl serve --model models/tr-math-base --port 8000
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' \\
    -d '{"prompt":"Soru: 2+2 kaçtır?\\n","max_tokens":64,"seed":1}'
  curl -sN localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"messages":[{"role":"user","content":"2+2?"}],"stream":true}'
`;
}
