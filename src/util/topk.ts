/** The `n` largest entries of `row[off .. off+V)` as [index, value], largest first (ties: lower index first). */
export function topOf(row: ArrayLike<number>, off: number, V: number, n: number): [number, number][] {
  const out: [number, number][] = [];
  if (n <= 0) return out;
  for (let i = 0; i < V; i++) {
    const x = row[off + i];
    if (out.length === n && x <= out[n - 1][1]) continue;
    let at = out.length;
    while (at > 0 && out[at - 1][1] < x) at--;
    out.splice(at, 0, [i, x]);
    if (out.length > n) out.pop();
  }
  return out;
}
