/**
 * The `ttrl` CLI. Every file in src/cli/commands/ exports `register(program)` and adds one command (or a
 * command group); this module discovers them, so adding a command never means editing a shared list.
 * Exit codes: 0 success, 1 runtime error, 2 usage error.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command, CommanderError } from "commander";
import { TtrlError } from "../util/errors.ts";

export interface CommandModule {
  register(program: Command): void;
}

/**
 * The CLI program with its commands. With `only` naming a command whose file exists (src/cli/commands/NAME.ts),
 * just that one is loaded: each command module pulls in its own dependencies (the model engine, charts,
 * the merge kernels), and loading all of them costs about a second before any work starts.
 */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command();
  program
    .name("ttrl")
    .description(
      "Label-free reinforcement learning of language models (TTRL) — data, grading, training, merging, evaluation",
    )
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
  const all = readdirSync(dir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("_"))
    .sort();
  const files = only && all.includes(`${only}.ts`) ? [`${only}.ts`] : all;
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as Partial<CommandModule>;
    if (typeof mod.register !== "function")
      throw new Error(`src/cli/commands/${f} does not export register()`);
    mod.register(program);
  }
  // Every subcommand exits through exitOverride so usage errors map to exit code 2.
  const applyOverride = (cmd: Command) => {
    cmd.exitOverride();
    for (const c of cmd.commands) applyOverride(c);
  };
  applyOverride(program);
  return program;
}

/** Run the CLI; sets process.exitCode rather than exiting so streams flush. */
export async function main(argv: string[]): Promise<void> {
  let program: Command;
  try {
    // The first argument that is not an option names the command (global options take no value).
    program = await buildProgram(argv.slice(2).find((a) => !a.startsWith("-")));
  } catch (e) {
    process.stderr.write(`ttrl: internal error while loading commands: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
    return;
  }
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = exitCodeFor(e);
    if (e instanceof CommanderError) return; // commander already printed its message
    const msg =
      e instanceof TtrlError ? e.message : (systemErrorMessage(e) ?? (e as Error)?.stack ?? String(e));
    process.stderr.write(`ttrl: error: ${msg}\n`);
  }
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help")
      return 0;
    return 2;
  }
  if (e instanceof TtrlError) return e.exitCode;
  return 1;
}

/**
 * A Node system error (ENOENT, EISDIR, EACCES, ...) that escaped the command's own checks: its message and
 * path, without a stack trace (it is about the user's files, not a bug in ttrl). Null for other errors.
 */
export function systemErrorMessage(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException | null;
  if (!(err instanceof Error) || typeof err.code !== "string" || typeof err.syscall !== "string") return null;
  return err.path && !err.message.includes(err.path) ? `${err.path}: ${err.message}` : err.message;
}
