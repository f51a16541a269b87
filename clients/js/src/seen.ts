/** Bounded memory of the message ids one room has delivered, for dropping duplicates. */
export class SeenIds {
  private readonly ids: Set<string>;

  /** Remembers at most `max` ids; the oldest is forgotten first. */
  constructor(
    private readonly max: number,
    ids: readonly string[] = [],
  ) {
    this.ids = new Set(ids.slice(-max));
  }

  /** Records `id`; false when it was already there (a duplicate). */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    // A Set iterates in insertion order: its first value is the oldest id.
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }

  /** The remembered ids, oldest first (what the storage adapter keeps). */
  list(): string[] {
    return [...this.ids];
  }
}
