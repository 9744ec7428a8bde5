import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const tmp = mkdtempSync(join(tmpdir(), "ttrl-eval-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ttrl = (...args: string[]) =>
  spawnSync(process.execPath, ["bin/ttrl.mjs", ...args], {
    encoding: "utf8",
    env: { ...process.env, TTRL_QUIET: "1" },
  });

describe("eval / serve / experiment CLI", () => {
  const data = join(tmp, "t.jsonl");
  writeFileSync(data, '{"id":"a","question":"1+1?","answer":"2"}\n');

  it("usage errors exit 2 with a message", () => {
    const both = ttrl(
      "eval",
      "--model",
      tmp,
      "--endpoint",
      "http://127.0.0.1:1/v1",
      "--data",
      data,
      "--out",
      join(tmp, "o"),
    );
    assert.equal(both.status, 2);
    assert.match(both.stderr, /exactly one of --model DIR or --endpoint URL/);
    const k = ttrl("eval", "--model", tmp, "--data", data, "--out", join(tmp, "o"), "--k", "0");
    assert.equal(k.status, 2);
    assert.match(k.stderr, /--k must be in/);
    const preset = ttrl("experiment", "--preset", "huge", "--out", join(tmp, "x"));
    assert.equal(preset.status, 2);
  });

  it("a folder that is not a model is a runtime error naming it", () => {
    const r = ttrl("eval", "--model", tmp, "--data", data, "--out", join(tmp, "o"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${tmp.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not a model folder`));
  });

  it("bad flags and paths get a clear error naming the flag or file, never a stack trace", () => {
    const folder = join(tmp, "a-folder");
    mkdirSync(folder, { recursive: true });
    const aFile = join(tmp, "a-file.txt");
    writeFileSync(aFile, "x");
    const badUtf8 = join(tmp, "bad-utf8.jsonl");
    writeFileSync(
      badUtf8,
      Buffer.concat([
        Buffer.from('{"id":"a","question":"1+1?"}\n{"id":"b","question":"'),
        Buffer.from([0xff]),
        Buffer.from('"}\n'),
      ]),
    );
    const config = join(tmp, "config.json");
    writeFileSync(config, "{}");
    const typo = join(tmp, "typo.jsonl");
    writeFileSync(
      typo,
      '{"id":"a","question":"1+1?","answer":"2"}\n{"id":"b","question":"2+2?","anwser":"4"}\n',
    );
    const ep = ["--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m"];
    const out = join(tmp, "o2");
    const cases: { args: string[]; code: number; re: RegExp }[] = [
      {
        args: ["eval", ...ep, "--data", data, "--out", out, "--template", "bogus"],
        code: 2,
        re: /--template must be one of .*got "bogus"/,
      },
      {
        args: ["eval", ...ep, "--data", data, "--out", aFile],
        code: 2,
        re: /--out .*a-file\.txt: is a file/,
      },
      {
        args: ["eval", ...ep, "--data", data, "--out", out, "--k", "2", "--ks", "3"],
        code: 2,
        re: /--ks 3 exceeds --k 2/,
      },
      {
        args: ["eval", ...ep, "--data", folder, "--out", out],
        code: 1,
        re: /a-folder: is a folder, expected a file/,
      },
      {
        args: ["eval", ...ep, "--data", badUtf8, "--out", out],
        code: 1,
        re: /bad-utf8\.jsonl:2: not valid UTF-8/,
      },
      {
        args: ["eval", "--model", config, "--data", data, "--out", out],
        code: 1,
        re: /config\.json: .*expected a model folder/,
      },
      {
        args: ["train", "--model", folder, "--data", folder, "--reward", "majority", "--out", out],
        code: 1,
        re: /a-folder: is a folder, expected a file/,
      },
      {
        args: ["sft", "--model", folder, "--data", folder, "--out", out],
        code: 1,
        re: /a-folder: is a folder, expected a file/,
      },
      {
        args: ["train", "--model", folder, "--data", badUtf8, "--reward", "majority", "--out", out],
        code: 1,
        re: /bad-utf8\.jsonl:2: not valid UTF-8/,
      },
      {
        args: ["eval", "--model", folder, "--data", badUtf8, "--out", out],
        code: 1,
        re: /bad-utf8\.jsonl:2: not valid UTF-8/,
      },
      {
        args: ["train", "--model", folder, "--data", typo, "--reward", "accuracy", "--out", out],
        code: 1,
        re: /typo\.jsonl:2: unknown key "anwser" \(did you mean "answer"\?\)/,
      },
      {
        args: ["sft", "--model", folder, "--data", typo, "--out", out],
        code: 1,
        re: /typo\.jsonl:2: unknown key "anwser" \(did you mean "answer"\?\)/,
      },
      {
        args: ["sft", "--model", folder, "--data", badUtf8, "--out", out],
        code: 1,
        re: /bad-utf8\.jsonl:2: not valid UTF-8/,
      },
    ];
    for (const t of cases) {
      const r = ttrl(...t.args);
      const what = t.args.join(" ");
      assert.equal(r.status, t.code, `${what}: ${r.stderr}`);
      assert.match(r.stderr, t.re, what);
      assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace for ${what}`);
    }
  });

  it("logprob and the model loaders: a folder for a file, a file for a folder, bad bytes, all named", () => {
    const folder = join(tmp, "lp-folder");
    mkdirSync(folder, { recursive: true });
    const config = join(tmp, "lp-config.json");
    writeFileSync(config, "{}");
    const input = join(tmp, "lp.jsonl");
    writeFileSync(input, '{"id":"a","text":"merhaba"}\n');
    const badUtf8 = join(tmp, "lp-bad.jsonl");
    writeFileSync(
      badUtf8,
      Buffer.concat([Buffer.from('{"id":"a","text":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}\n')]),
    );
    const trainData = join(tmp, "lp-train.jsonl");
    writeFileSync(trainData, '{"id":"a","question":"1+1?","answer":"2"}\n');
    const out = join(tmp, "lp-out.jsonl");
    const cases: { args: string[]; code: number; re: RegExp }[] = [
      {
        args: ["logprob", "--model", folder, "--input", input, "--out", folder],
        code: 2,
        re: /--out .*lp-folder: is a folder/,
      },
      {
        args: ["logprob", "--model", folder, "--input", folder, "--out", out],
        code: 1,
        re: /lp-folder: is a folder, expected a file/,
      },
      {
        args: ["logprob", "--model", folder, "--input", badUtf8, "--out", out],
        code: 1,
        re: /lp-bad\.jsonl:1: not valid UTF-8/,
      },
      {
        args: ["logprob", "--model", config, "--input", input, "--out", out],
        code: 1,
        re: /lp-config\.json: expected a model folder, got a file/,
      },
      {
        args: ["generate", "--model", config, "--prompt", "x"],
        code: 1,
        re: /lp-config\.json: expected a model folder, got a file/,
      },
      {
        args: [
          "train",
          "--model",
          config,
          "--data",
          trainData,
          "--reward",
          "majority",
          "--out",
          join(tmp, "lp-run"),
        ],
        code: 1,
        re: /lp-config\.json: expected a model folder, got a file/,
      },
    ];
    for (const t of cases) {
      const r = ttrl(...t.args);
      const what = t.args.join(" ");
      assert.equal(r.status, t.code, `${what}: ${r.stderr}`);
      assert.match(r.stderr, t.re, what);
      assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace for ${what}`);
    }
  });
});
