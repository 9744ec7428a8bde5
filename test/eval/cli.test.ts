import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
});
