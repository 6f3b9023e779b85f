/** The set of value and node names in use across a model's graphs, and a source of fresh ones. */
export class NameTable {
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();

  claim(name: string): void {
    this.used.add(name);
  }

  has(name: string): boolean {
    return this.used.has(name);
  }

  /** `base` if free, else `base_1`, `base_2`, ... (deterministic for a given sequence of calls). */
  fresh(base: string): string {
    if (!this.used.has(base)) {
      this.used.add(base);
      return base;
    }
    let n = this.counters.get(base) ?? 0;
    let name: string;
    do name = `${base}_${++n}`;
    while (this.used.has(name));
    this.counters.set(base, n);
    this.used.add(name);
    return name;
  }
}
