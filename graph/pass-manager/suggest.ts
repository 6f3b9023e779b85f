/** The candidate closest to `word` by edit distance, when it is close enough to be a likely typo. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    // Ties go to a candidate with the same first letter: typos rarely hit the first one.
    const d = editDistance(word.toLowerCase(), c.toLowerCase()) + (word[0]?.toLowerCase() === c[0]?.toLowerCase() ? 0 : 0.5);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return Math.floor(bestDistance) <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** " (did you mean 'dce'?)" or "". */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const match = closestMatch(word, candidates);
  return match ? ` (did you mean '${match}'?)` : "";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
