/** Errors that the CLI turns into exit codes: usage errors exit 2, everything else 1. */

export class TtrlError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TtrlError";
  }
}

/** Bad command-line usage (unknown option, conflicting flags): exit code 2. */
export class UsageError extends TtrlError {
  override readonly exitCode: number = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Bad input data: the message names the file and, where known, the line (1-based). */
export class InputError extends TtrlError {
  readonly file: string;
  readonly line: number | undefined;
  constructor(file: string, line: number | undefined, message: string, options?: { cause?: unknown }) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${message}`, options);
    this.name = "InputError";
    this.file = file;
    this.line = line;
  }
}
