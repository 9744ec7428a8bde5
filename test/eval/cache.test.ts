// The eval cache belongs to the weights (issue 15 item 4): a folder whose weights changed never reuses the
// old samples; a byte-identical copy or a touched file does; over HTTP the key is the endpoint URL + model.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { httpBackend, localBackend, modelFingerprint } from "../../src/eval/backends.ts";
import type { Engine } from "../../src/eval/engine.ts";
import { runEval } from "../../src/eval/index.ts";
import { formatEvalSummary } from "../../src/eval/summary.ts";
import { startFakeOpenAI } from "../data/fake-openai.ts";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-cache-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const data = join(tmp, "test.jsonl");
writeFileSync(
  data,
  Array.from({ length: 4 }, (_, i) =>
    JSON.stringify({ id: `q${i}`, question: `${i} + 1?`, answer: String(i + 1) }),
  ).join("\n"),
);

/** A safetensors file with one F32 tensor: the header (and so the file size) depends only on the shape. */
function safetensors(values: number[]): Buffer {
  const header = Buffer.from(
    JSON.stringify({ w: { dtype: "F32", shape: [values.length], data_offsets: [0, 4 * values.length] } }),
  );
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.from(new Float32Array(values).buffer)]);
}

function writeModel(dir: string, values: number[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), '{"model_type":"llama"}\n');
  writeFileSync(join(dir, "tokenizer.json"), "{}\n");
  writeFileSync(join(dir, "model.safetensors"), safetensors(values));
}

/** An engine whose answers come from its folder's weights (read at generate time, like a real load). */
function weightsEngine(dir: string): Engine {
  return {
    name: "w",
    dir,
    tokenizer: {
      encode: (t) => Array.from(t).map((c) => c.codePointAt(0)!),
      decode: (ids) => String.fromCodePoint(...ids),
      applyChatTemplate: (m) => m.map((x) => x.content).join("\n"),
    },
    async generate(prompts) {
      const buf = readFileSync(join(dir, "model.safetensors"));
      const w = buf.readFloatLE(buf.length - 4);
      return prompts.map(() => {
        const text = `<mantık>\nw\n</mantık>\n<cevap>\n${w}\n</cevap>`;
        return { tokens: Array.from(text, (c) => c.codePointAt(0)!), text, finishReason: "stop" as const };
      });
    },
  };
}

const completions = (out: string) =>
  readFileSync(join(out, "generations.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).completions as string[]);

describe("eval cache key", () => {
  it("a folder whose weights changed (same header and size) is sampled again; a copy or a touch is not", async () => {
    const dir = join(tmp, "model");
    writeModel(dir, [0.5, 2]);
    const out = join(tmp, "out-local");
    const run = (d: string) =>
      runEval({ backend: localBackend(weightsEngine(d)), modelName: "w", model: d, data, out, k: 2 });
    const r1 = await run(dir);
    assert.equal(r1.cached, 0);
    assert.ok(
      completions(out)
        .flat()
        .every((c) => c.includes("\n2\n")),
    );

    // "Retrain": same shapes, so the same safetensors header and file size; only the values change.
    const before = readFileSync(join(dir, "model.safetensors")).length;
    writeModel(dir, [0.5, 3]);
    assert.equal(readFileSync(join(dir, "model.safetensors")).length, before);
    const r2 = await run(dir);
    assert.equal(r2.cached, 0, "samples of the old weights were reused");
    assert.equal(r2.cacheIgnored, 8);
    assert.ok(
      completions(out)
        .flat()
        .every((c) => c.includes("\n3\n")),
    );
    assert.match(formatEvalSummary(r2), /8 cached sample\(s\) .* not used/);

    // A byte-identical copy elsewhere, and a touched file: same weights, all from the cache.
    const copy = join(tmp, "copy");
    cpSync(dir, copy, { recursive: true });
    utimesSync(join(copy, "model.safetensors"), new Date(0), new Date(0));
    const r3 = await run(copy);
    assert.equal(r3.cached, 8);
    assert.match(formatEvalSummary(r3), /\(8 from cache\)/);
  });

  it("property: the fingerprint changes with any byte of the weights and ignores path and mtime", () => {
    const dir = join(tmp, "fp");
    const copy = join(tmp, "fp-copy");
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true }), { minLength: 1, maxLength: 16 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (values, at, xor) => {
          rmSync(dir, { recursive: true, force: true });
          rmSync(copy, { recursive: true, force: true });
          writeModel(dir, values);
          const fp = modelFingerprint(dir);
          cpSync(dir, copy, { recursive: true });
          utimesSync(join(copy, "model.safetensors"), new Date(1000), new Date(1000));
          assert.equal(modelFingerprint(copy), fp);
          const file = join(copy, "model.safetensors");
          const bytes = readFileSync(file);
          bytes[at % bytes.length] ^= xor;
          writeFileSync(file, bytes);
          assert.notEqual(modelFingerprint(copy), fp);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("over HTTP, another endpoint serving the same model name does not reuse the cache", async () => {
    const answer = (n: number) => () => `<mantık>\nx\n</mantık>\n<cevap>\n${n}\n</cevap>`;
    const a = await startFakeOpenAI({ respond: answer(1) });
    const b = await startFakeOpenAI({ respond: answer(2) });
    try {
      const out = join(tmp, "out-http");
      const run = (url: string) =>
        runEval({
          backend: httpBackend({ endpoint: url, modelName: "m", retries: 0 }),
          modelName: "m",
          model: url,
          data,
          out,
          k: 2,
          template: "chat-tr",
        });
      const r1 = await run(a.url);
      assert.equal(r1.cached, 0);
      const r2 = await run(b.url);
      assert.equal(r2.cached, 0, "samples of another endpoint were reused");
      assert.equal(b.requests.length, 8);
      assert.ok(
        completions(out)
          .flat()
          .every((c) => c.includes("\n2\n")),
      );
      // The same endpoint again (trailing slash or not): everything from the cache.
      const r3 = await run(`${b.url}/`);
      assert.equal(r3.cached, 8);
      assert.equal(b.requests.length, 8);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
