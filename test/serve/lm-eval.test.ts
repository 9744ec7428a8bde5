/**
 * lm-evaluation-harness (pinned in python/requirements.txt, run from the repo's .venv) against `ttrl serve`
 * with the shipped model: a local multiple-choice task (log-likelihoods through `logprobs` + `echo`) and a
 * generate-until task (test/fixtures/lm-eval), with `lm_eval --model local-completions`. lm-eval tokenizes
 * through the server's vLLM-style /tokenize (its remote tokenizer backend), so nothing is downloaded. Its
 * per-document numbers and its accuracy must equal our own scoring of the same requests: `ttrl logprob` on
 * the same token ids for the choices, the engine's greedy generation for the answers.
 * Skipped (saying so) where the repo's .venv has no lm_eval: `npm run setup:python` makes it.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { loadEngine } from "../../src/eval/engine.ts";
import { createServeServer } from "../../src/serve/server.ts";

const MODEL = "models/tr-math-base";
const LM_EVAL = resolve(".venv/bin/lm_eval");
const FIXTURES = "test/fixtures/lm-eval";

const readJsonl = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("close", (code) => done({ code, out }));
  });
}

describe("lm-evaluation-harness against ttrl serve (models/tr-math-base)", () => {
  const skip = existsSync(LM_EVAL)
    ? false
    : `SKIPPED: ${LM_EVAL} not found — the repo's Python venv is needed (npm run setup:python installs lm-eval)`;
  if (skip) process.stderr.write(`test/serve/lm-eval.test.ts: ${skip}\n`);

  it("multiple-choice and generate-until results equal our own scoring of the same requests", {
    skip,
    timeout: 600_000,
  }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ttrl-lm-eval-"));
    const engine = await loadEngine(MODEL, { name: "tr-math-base" });
    const srv = createServeServer(engine, { batchWindowMs: 5 });
    const port = await srv.listen(0, "127.0.0.1");
    try {
      const out = join(tmp, "out");
      const r = await run(
        LM_EVAL,
        [
          "--model",
          "local-completions",
          "--model_args",
          `base_url=http://127.0.0.1:${port}/v1/completions,model=tr-math-base,max_length=512,num_concurrent=1,max_retries=1,tokenizer_backend=remote`,
          "--tasks",
          "ttrl_tr_mc,ttrl_tr_gen",
          "--include_path",
          FIXTURES,
          "--output_path",
          out,
          "--log_samples",
          "--batch_size",
          "4",
        ],
        {
          ...process.env,
          HF_HUB_OFFLINE: "1",
          HF_DATASETS_OFFLINE: "1",
          HF_HOME: join(tmp, "hf"),
          TRANSFORMERS_OFFLINE: "1",
        },
      );
      assert.equal(r.code, 0, r.out.slice(-3000));
      const dir = join(out, "tr-math-base");
      const file = (prefix: string) => join(dir, readdirSync(dir).find((f) => f.startsWith(prefix))!);
      const results = JSON.parse(readFileSync(file("results_"), "utf8")).results;

      // Multiple choice: lm-eval sends context + continuation token ids with echo and logprobs and sums the
      // continuation's log-probs. Ours: the same split (lm-eval moves the context's trailing whitespace into
      // the continuation), the same ids without BOS (its remote tokenizer asks /tokenize without special
      // tokens), scored by `ttrl logprob`.
      const mcDocs = readJsonl(join(FIXTURES, "tr-mc.jsonl"));
      const mcSamples = readJsonl(file("samples_ttrl_tr_mc_")).sort((a, b) => a.doc_id - b.doc_id);
      assert.equal(mcSamples.length, mcDocs.length);
      const rows: { id: string; input_ids: number[] }[] = [];
      const ctxLens: number[] = [];
      mcDocs.forEach((d, i) => {
        const context = `Soru: ${d.question}\n<cevap>\n`;
        d.choices.forEach((c: string, j: number) => {
          const args = mcSamples[i].arguments[`gen_args_${j}`];
          assert.deepEqual([args.arg_0, args.arg_1], [context, c], "the task renders as expected");
          const ws = context.length - context.trimEnd().length;
          const [ctx, cont] = [context.slice(0, context.length - ws), context.slice(context.length - ws) + c];
          const ctxIds = engine.tokenizer.encode(ctx, { addSpecialTokens: false });
          const whole = engine.tokenizer.encode(ctx + cont, { addSpecialTokens: false });
          rows.push({ id: `${i}:${j}`, input_ids: whole });
          ctxLens.push(ctxIds.length);
        });
      });
      writeFileSync(join(tmp, "mc.jsonl"), rows.map((x) => JSON.stringify(x)).join("\n") + "\n");
      const lp = spawnSync(
        process.execPath,
        [
          "bin/ttrl.mjs",
          "logprob",
          "--model",
          MODEL,
          "--input",
          join(tmp, "mc.jsonl"),
          "--out",
          join(tmp, "mc-lp.jsonl"),
        ],
        { encoding: "utf8", env: { ...process.env, TTRL_QUIET: "1" } },
      );
      assert.equal(lp.status, 0, lp.stderr);
      const ours = readJsonl(join(tmp, "mc-lp.jsonl")).map((x, k) =>
        (x.token_logprobs as number[]).slice(ctxLens[k] - 1).reduce((a, b) => a + b, 0),
      );
      let k = 0;
      let correct = 0;
      mcDocs.forEach((d, i) => {
        const theirs = mcSamples[i].resps.map((x: [[string, string]]) => Number(x[0][0]));
        const mine = ours.slice(k, k + d.choices.length);
        k += d.choices.length;
        theirs.forEach((t: number, j: number) => {
          assert.ok(
            Math.abs(t - mine[j]) < 1e-4,
            `doc ${i} choice ${j}: lm-eval ${t}, ttrl logprob ${mine[j]}`,
          );
        });
        const pick = mine.indexOf(Math.max(...mine));
        assert.equal(mcSamples[i].acc, pick === d.answer ? 1 : 0, `doc ${i}`);
        if (pick === d.answer) correct++;
      });
      assert.equal(results.ttrl_tr_mc["acc,none"], correct / mcDocs.length);

      // Generate until: greedy, stopped at </cevap> (and lm-eval's EOS string), the number in <cevap> compared.
      const genDocs = readJsonl(join(FIXTURES, "tr-gen.jsonl"));
      const genSamples = readJsonl(file("samples_ttrl_tr_gen_")).sort((a, b) => a.doc_id - b.doc_id);
      const gens = await engine.generate(
        genDocs.map((d) => engine.tokenizer.encode(`Soru: ${d.question}\n`, { addSpecialTokens: false })),
        { maxNewTokens: 64, greedy: true, temperature: 0, stop: ["</cevap>", "</s>"] },
      );
      let exact = 0;
      genDocs.forEach((d, i) => {
        const text = gens[i].text.endsWith("</cevap>")
          ? gens[i].text.slice(0, -"</cevap>".length)
          : gens[i].text;
        assert.equal(genSamples[i].resps[0][0], text, `doc ${i}: lm-eval's generation`);
        const m = /<cevap>\s*(-?\d+)/.exec(text);
        const hit = m !== null && m[1] === d.answer;
        assert.equal(genSamples[i].exact_match, hit ? 1 : 0, `doc ${i}`);
        if (hit) exact++;
      });
      assert.equal(results.ttrl_tr_gen["exact_match,cevap"], exact / genDocs.length);
    } finally {
      await srv.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
