/**
 * `ttrl experiment` with `engine: trl` and `eval.serve_command` (ttrl serve as the server) on the quick
 * preset, end to end; and the serve command's failure message. The experiment needs the venv (skipped with a
 * visible message without it); the serve-command tests do not.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { withServedModel } from "../../../src/engines/trl/serve-command.ts";
import { SKIP_MESSAGE, testPython, ttrl } from "./helpers.ts";

const python = testPython();
const root = mkdtempSync(join(tmpdir(), "ttrl-trl-exp-"));
const SERVE = `${process.execPath} ${resolve("bin/ttrl.mjs")} serve --model {model} --port {port} --threads 1`;

describe("eval.serve_command", () => {
  it("a server that dies before answering: the error names the command's exit and shows its last lines", async () => {
    await assert.rejects(
      withServedModel(
        "echo starting {port} && echo 'CUDA out of memory' >&2 && exit 3 # {model}",
        "m",
        async () => 1,
      ),
      (e: Error) =>
        /exited with code 3 before answering/.test(e.message) && /CUDA out of memory/.test(e.message),
    );
  });

  it("ttrl serve as the command: the callback gets the endpoint and the served model name, then it stops", async () => {
    let url = "";
    const name = await withServedModel(SERVE, resolve("models/tr-math-base"), async (s) => {
      url = s.endpoint;
      const r = await fetch(`${s.endpoint}/models`);
      assert.equal(r.status, 200);
      return s.modelName;
    });
    assert.equal(name, "tr-math-base");
    await assert.rejects(fetch(`${url}/models`), "the server is stopped afterwards");
  });
});

describe("ttrl experiment with engine: trl and eval.serve_command (quick preset)", {
  skip: python ? false : SKIP_MESSAGE,
}, () => {
  it("runs end to end: trl-trained runs, every eval through the served endpoint, the report", () => {
    const cfg = join(root, "exp.yml");
    writeFileSync(
      cfg,
      [
        "train:",
        "  engine: trl",
        "  threads: 1",
        "  max_steps: 2",
        "  save_steps: 2",
        "eval:",
        "  limit: 8",
        "  k: 2",
        "  ks: [1, 2]",
        `  serve_command: "${SERVE}"`,
        "report:",
        "  png: false",
        "",
      ].join("\n"),
    );
    const out = join(root, "run");
    const r = ttrl(
      ["experiment", cfg, "--preset", "quick", "--out", out],
      python ? { TTRL_PYTHON: python } : {},
    );
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    for (const reward of ["accuracy", "majority"]) {
      const saved = JSON.parse(readFileSync(join(out, "train", reward, "config.json"), "utf8"));
      assert.equal(saved.engine, "trl");
      assert.ok(existsSync(join(out, "train", reward, "final", "model.safetensors")));
    }
    const evalDirs = readdirSync(join(out, "eval"));
    assert.equal(evalDirs.length, 4, `eval folders: ${evalDirs}`);
    for (const d of evalDirs) assert.ok(existsSync(join(out, "eval", d, "serve.log")), `${d} was served`);
    assert.ok(existsSync(join(out, "report", "report.html")));
  });
});
