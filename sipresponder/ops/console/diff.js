// A line diff by longest common subsequence: enough for a scenario file (hundreds of
// lines), no library. The table is (n+1) x (m+1) small integers.

/** [{op: " " | "-" | "+", text, old, new}] turning `before` into `after`, line numbers 1-based. */
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const n = a.length;
  const m = b.length;
  const width = m + 1;
  const table = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * width + j] = a[i] === b[j]
        ? table[(i + 1) * width + j + 1] + 1
        : Math.max(table[(i + 1) * width + j], table[i * width + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push({ op: " ", text: a[i], old: i + 1, new: j + 1 });
      i++;
      j++;
    } else if (i < n && (j === m || table[(i + 1) * width + j] >= table[i * width + j + 1])) {
      // On a tie the old line goes first: a changed line reads "-old" then "+new".
      out.push({ op: "-", text: a[i], old: i + 1, new: null });
      i++;
    } else {
      out.push({ op: "+", text: b[j], old: null, new: j + 1 });
      j++;
    }
  }
  return out;
}

/** The diff with unchanged runs longer than 2*context shortened to a "..." marker. */
export function hunks(diff, context = 3) {
  const keep = diff.map(() => false);
  diff.forEach((line, k) => {
    if (line.op === " ") return;
    for (let x = Math.max(0, k - context); x <= Math.min(diff.length - 1, k + context); x++) keep[x] = true;
  });
  const out = [];
  let skipped = 0;
  diff.forEach((line, k) => {
    if (keep[k]) {
      if (skipped) out.push({ op: "…", text: `${skipped} unchanged line${skipped > 1 ? "s" : ""}` });
      skipped = 0;
      out.push(line);
    } else skipped++;
  });
  if (skipped && out.length) out.push({ op: "…", text: `${skipped} unchanged line${skipped > 1 ? "s" : ""}` });
  return out;
}
