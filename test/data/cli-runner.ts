/**
 * Runs only the `ttrl data` command group (as bin/ttrl.mjs would, same exit codes), so the data tests
 * that spawn the CLI do not depend on every other command module loading.
 * Usage: node --import tsx test/data/cli-runner.ts data build ...
 */
import { Command, CommanderError } from "commander";
import { register } from "../../src/cli/commands/data.ts";
import { exitCodeFor } from "../../src/cli/main.ts";
import { TtrlError } from "../../src/util/errors.ts";

const program = new Command().name("ttrl").exitOverride();
register(program);
const apply = (c: Command) => {
  c.exitOverride();
  for (const s of c.commands) apply(s);
};
apply(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.exitCode = exitCodeFor(e);
  if (!(e instanceof CommanderError))
    process.stderr.write(`ttrl: error: ${e instanceof TtrlError ? e.message : ((e as Error).stack ?? e)}\n`);
}
