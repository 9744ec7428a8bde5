/**
 * The Python reward bridge (python/ttrl_trl/bridge.py) on its own: it needs only the standard library, so
 * these run with any python3 (the venv's when present). Incomplete groups, a service answering garbage, a
 * service that is down: each is one clear error (TtrlFail kind + message), never a vote over part of a group.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { PYTHON_PACKAGE_DIR } from "../../../src/engines/trl/python.ts";
import { testPython } from "./helpers.ts";

const python = testPython() ?? "python3";
const hasPython = spawnSync(python, ["-c", "pass"]).status === 0;

function py(
  code: string,
  env: Record<string, string> = {},
): { out: string; err: string; status: number | null } {
  const r = spawnSync(python, ["-c", code], {
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: PYTHON_PACKAGE_DIR, ...env },
  });
  return { out: r.stdout.trim(), err: r.stderr, status: r.status };
}

const FAIL = `
import json, sys
from ttrl_trl.bridge import TtrlFail, group_batch, check_response, post_json
def run(f):
    try:
        f(); print(json.dumps({"ok": True}))
    except TtrlFail as e:
        print(json.dumps({"kind": e.kind, "message": str(e)}))
`;

describe("trl engine reward bridge (Python)", { skip: hasPython ? false : "no python3" }, () => {
  it("groups the gathered batch by (step, position) and refuses an incomplete group naming the prompt id", () => {
    const r = py(`${FAIL}
items = [{"step": 0, "pi": 0, "prompt_id": "a", "completion": str(i)} for i in range(4)]
items += [{"step": 0, "pi": 1, "prompt_id": "b", "completion": str(i)} for i in range(3)]
run(lambda: group_batch(items, 4))
g = group_batch(items[:4] + [{"step": 0, "pi": 1, "prompt_id": "b", "completion": "x"}] * 4, 4)
print(json.dumps([[x["prompt_id"], x["positions"]] for x in g]))
`);
    const [fail, ok] = r.out.split("\n").map((l) => JSON.parse(l));
    assert.equal(fail.kind, "group");
    assert.match(fail.message, /incomplete group for prompt id 'b' at step 1: 3 of 4 completions/);
    assert.deepEqual(ok, [
      ["a", [0, 1, 2, 3]],
      ["b", [4, 5, 6, 7]],
    ]);
  });

  it("a service answering garbage or wrong shapes is an error naming the prompt id", () => {
    const r = py(`${FAIL}
groups = [{"prompt_id": "a", "completions": ["1"] * 4, "positions": [0, 1, 2, 3]}]
good = {"total": [1, 0, 1, 0], "rewarded_indices": [0, 1, 2, 3], "per_function": {"majority": [1, 0, 1, 0]}}
run(lambda: check_response({"groups": [good]}, groups, ["majority"], 4, 4))
run(lambda: check_response({"groups": []}, groups, ["majority"], 4, 4))
run(lambda: check_response({"groups": [dict(good, total=[1, 0])]}, groups, ["majority"], 4, 4))
run(lambda: check_response({"groups": [dict(good, total=[1, 0, "x", 0])]}, groups, ["majority"], 4, 4))
run(lambda: check_response({"groups": [dict(good, per_function={})]}, groups, ["majority"], 4, 4))
`);
    const lines = r.out.split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines[0], { ok: true });
    assert.match(lines[1].message, /answered 0 groups for 1 asked/);
    assert.match(lines[2].message, /malformed group for prompt id 'a'/);
    assert.match(lines[3].message, /non-number reward for prompt id 'a'/);
    assert.match(lines[4].message, /no per-function rewards for prompt id 'a'/);
    for (const l of lines.slice(1)) assert.equal(l.kind, "reward");
  });

  it("a service that answers non-JSON, an HTTP error, or is down: one reward error", async () => {
    const srv = createServer((req, res) => {
      if (req.url === "/garbage") {
        res.writeHead(200);
        res.end("<html>oops</html>");
      } else {
        res.writeHead(400, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: 'incomplete group for prompt id "q1"' }));
      }
    });
    await new Promise<void>((ok) => srv.listen(0, "127.0.0.1", () => ok()));
    const port = (srv.address() as { port: number }).port;
    const code = `${FAIL}
run(lambda: post_json("http://127.0.0.1:${port}/garbage", "t", {}))
run(lambda: post_json("http://127.0.0.1:${port}/score", "t", {}))
run(lambda: post_json("http://127.0.0.1:1/score", "t", {}, timeout=5))
`;
    const r = await new Promise<string>((ok) => {
      const p = spawn(python, ["-c", code], { env: { ...process.env, PYTHONPATH: PYTHON_PACKAGE_DIR } });
      let out = "";
      p.stdout.on("data", (d) => {
        out += d;
      });
      p.on("close", () => ok(out.trim()));
    });
    srv.close();
    const lines = r.split("\n").map((l) => JSON.parse(l));
    assert.match(lines[0].message, /not JSON/);
    assert.match(lines[1].message, /HTTP 400: incomplete group for prompt id "q1"/);
    assert.match(lines[2].message, /unreachable/);
    for (const l of lines) assert.equal(l.kind, "reward");
  });
});
