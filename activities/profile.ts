import * as path from 'node:path';
import { withDb } from '../lib/duckdb';
import { writeJsonAtomic } from '../lib/fs-atomic';
import * as sql from '../analytics/profile.sql';
import type { ProfileResult, RunPlan } from '../workflows/types';
import { limitsOf, progress } from './context';

/** Profiles what arrived (before cleaning) and stores the profile as JSON beside the run. */
export async function profile(plan: RunPlan): Promise<ProfileResult> {
  return withDb(plan.dbPath, limitsOf(plan), async (db) => {
    progress({ stage: 'profile' });
    await db.run(`SET TimeZone = 'UTC'`);
    const p = await db.one<Record<string, number | string | null>>(sql.PROFILE_SQL);
    const eventTypes = await db.all(sql.EVENT_TYPE_MIX_SQL);
    const perDay = await db.all(sql.EVENTS_PER_DAY_SQL);
    const perUser = await db.one(sql.PER_USER_DISTRIBUTION_SQL);
    const rows = Number(p.rows);
    const users = Number(p.users);
    const items = Number(p.items);
    const result: ProfileResult = {
      profilePath: path.join(plan.runDir, 'profile.json'),
      rows,
      users,
      items,
      density: users && items ? rows / (users * items) : 0,
      minTimestamp: (p.min_timestamp as string | null) ?? null,
      maxTimestamp: (p.max_timestamp as string | null) ?? null,
      nulls: {
        user_id: Number(p.null_user_id),
        item_id: Number(p.null_item_id),
        event_type: Number(p.null_event_type),
        rating: Number(p.null_rating),
        timestamp: Number(p.null_timestamp),
      },
    };
    writeJsonAtomic(result.profilePath, {
      ...result,
      eventTypes,
      eventsPerDay: perDay,
      eventsPerUser: perUser,
    });
    return result;
  });
}
