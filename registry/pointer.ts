import type { LivePointer, PointerMove } from '../contracts/registry';

/**
 * Pure transitions of the live pointer. Each takes the pointer as it is *now* (read inside a
 * compare-and-swap) and returns the next one, `null` when it is already where the caller wants it (a retried
 * activity whose first attempt succeeded), or throws PointerConflict when the move no longer makes sense.
 */

export const POINTER_HISTORY = 200;

export class PointerConflict extends Error {
  override readonly name = 'PointerConflict';
  constructor(
    message: string,
    readonly code: 'ChampionChanged' | 'NothingToRollBack',
  ) {
    super(message);
  }
}

export interface MoveContext {
  datasetId: string;
  at: string;
  reason: string;
  by: string;
}

function moved(
  cur: LivePointer | null,
  version: string,
  kind: PointerMove['kind'],
  ctx: MoveContext,
): LivePointer {
  const move: PointerMove = {
    at: ctx.at,
    version,
    previous: cur?.version ?? null,
    kind,
    reason: ctx.reason,
    by: ctx.by,
  };
  return {
    formatVersion: 2,
    datasetId: ctx.datasetId,
    version,
    path: `versions/${version}`,
    manifest: `versions/${version}/_manifest.json`,
    previous: cur?.version ?? null,
    updatedAt: ctx.at,
    history: [...(cur?.history ?? []), move].slice(-POINTER_HISTORY),
  };
}

/**
 * A retrain's challenger goes live — only if the champion is still the one it was evaluated against: a
 * promotion or rollback in between makes this run's comparison meaningless.
 */
export function promoteChallenger(
  cur: LivePointer | null,
  version: string,
  evaluatedAgainst: string | null,
  ctx: MoveContext,
): LivePointer | null {
  if (cur?.version === version) return null;
  const champion = cur?.version ?? null;
  if (champion !== evaluatedAgainst) {
    throw new PointerConflict(
      `champion changed while this run was evaluated (expected ${evaluatedAgainst ?? 'none'}, found ${champion ?? 'none'})`,
      'ChampionChanged',
    );
  }
  return moved(cur, version, 'promote', ctx);
}

/** An operator makes a version live (promoteModel). */
export function setLive(cur: LivePointer | null, version: string, ctx: MoveContext): LivePointer | null {
  if (cur?.version === version) return null;
  return moved(cur, version, 'set', ctx);
}

/**
 * `previous` goes live again (rollbackModel). A retry of a rollback whose first attempt already moved the
 * pointer (same workflow, same reason as the last move) must not swap back.
 */
export function rollBack(cur: LivePointer | null, ctx: MoveContext): LivePointer | null {
  const last = cur?.history.at(-1);
  if (last && last.kind === 'rollback' && last.by === ctx.by && last.reason === ctx.reason) return null;
  if (!cur?.previous) {
    throw new PointerConflict(
      `dataset '${ctx.datasetId}' has no previous champion to roll back to`,
      'NothingToRollBack',
    );
  }
  return moved(cur, cur.previous, 'rollback', ctx);
}

/**
 * Versions retention keeps: the live one, `previous`, and the most recently live ones up to `keep` in all.
 * A version folder that never went live (its run failed or was rejected after writing it) does not count.
 */
export function retainedVersions(cur: LivePointer | null, keep: number): Set<string> {
  if (!cur) return new Set();
  const out = new Set<string>([cur.version]);
  if (cur.previous) out.add(cur.previous);
  for (const m of [...cur.history].reverse()) {
    if (out.size >= keep) break;
    out.add(m.version);
  }
  return out;
}
