"""Peer for bench/grading.bench.ts: grade completions with math-verify (HF's answer parser/verifier).

Usage: python math_verify_grade.py INPUT.jsonl
INPUT rows: {"completion": str, "label": str}. Prints one JSON line:
{"n", "seconds", "per_s", "correct"} where seconds covers only the parse/verify loop (gold labels parsed
inside the loop too, as a reward function would).
"""

import json
import sys
import time

from math_verify import parse, verify


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf8") if line.strip()]
    # Warm up imports and sympy caches outside the timed loop.
    verify(parse("$1$"), parse("<cevap>1</cevap>"))
    correct = 0
    t0 = time.perf_counter()
    for r in rows:
        gold = parse("$" + r["label"] + "$")
        pred = parse(r["completion"])
        if verify(gold, pred):
            correct += 1
    dt = time.perf_counter() - t0
    print(json.dumps({"n": len(rows), "seconds": dt, "per_s": len(rows) / dt, "correct": correct}))


if __name__ == "__main__":
    main()
