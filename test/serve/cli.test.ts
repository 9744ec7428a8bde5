/** `ttrl serve` on a taken port or an unknown host: one clear line, exit 1, no JS stack (issue 15 item 14). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { describe, it } from "node:test";

function serve(args: string[]) {
  return spawnSync(process.execPath, ["bin/ttrl.mjs", "serve", "--model", "models/tr-math-base", ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, TTRL_QUIET: "1" },
  });
}

function assertClean(r: ReturnType<typeof serve>, pattern: RegExp) {
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace in:\n${r.stderr}`);
  assert.ok(r.stderr.trim().split("\n").length <= 2, r.stderr);
}

describe("ttrl serve: listen errors", () => {
  it("a port in use", async () => {
    const blocker = createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as { port: number }).port)),
    );
    try {
      const r = serve(["--port", String(port)]);
      assertClean(r, new RegExp(`127\\.0\\.0\\.1:${port}: the port is already in use`));
    } finally {
      blocker.close();
    }
  });

  it("an unknown host", () => {
    const r = serve(["--host", "bogus.invalid", "--port", "0"]);
    assertClean(r, /cannot listen on bogus\.invalid:0: unknown host 'bogus\.invalid'/);
  });

  it("an address that is not this machine's", () => {
    const r = serve(["--host", "203.0.113.7", "--port", "0"]);
    assertClean(r, /cannot listen on 203\.0\.113\.7:0: '203\.0\.113\.7' is not an address of this machine/);
  });
});
