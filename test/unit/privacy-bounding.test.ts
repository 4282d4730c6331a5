import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import {
  boundContributions,
  buildBoundingSql,
  cooccurrenceEventSensitivity,
  cooccurrenceSensitivity,
  distinctUserCountSensitivity,
  itemEventCountSensitivity,
  itemUserCountSensitivity,
  itemValueSumSensitivity,
  sqlIdent,
  sqlString,
  totalEventCountSensitivity,
  type ContributionCaps,
} from '../../privacy/bounding';
import { createSeededRng, type SecureRng } from '../../privacy/rng';

interface Ev {
  eventId: number;
  userId: string;
  itemId: string;
}

/** Random interaction log: a few heavy users, skewed item popularity. */
function randomLog(rng: SecureRng, users: number, items: number, maxPerUser: number): Ev[] {
  const out: Ev[] = [];
  let id = 0;
  for (let u = 0; u < users; u++) {
    const n = rng.uniformInt(4) === 0 ? rng.uniformInt(maxPerUser + 1) : rng.uniformInt(6);
    for (let j = 0; j < n; j++) {
      // Square of a uniform skews towards low item ids, so (user, item) repeats are common.
      const r = rng.uniformInt(items);
      out.push({ eventId: id++, userId: `u${u}`, itemId: `i${Math.floor((r * r) / items)}` });
    }
  }
  return out;
}

function countBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rows) m.set(key(r), (m.get(key(r)) ?? 0) + 1);
  return m;
}

const norms = (v: number[]): { l0: number; l1: number; l2: number; linf: number } => ({
  l0: v.filter((x) => x !== 0).length,
  l1: v.reduce((s, x) => s + Math.abs(x), 0),
  l2: Math.sqrt(v.reduce((s, x) => s + x * x, 0)),
  linf: v.reduce((s, x) => Math.max(s, Math.abs(x)), 0),
});

/** The vectors one user adds to each histogram, from that user's (bounded) rows. */
function contributionVectors(rows: readonly Ev[]): Record<string, number[]> {
  const perItem = [...countBy(rows, (r) => r.itemId).values()];
  const items = [...countBy(rows, (r) => r.itemId).entries()];
  const pairsDistinct: number[] = [];
  const pairsEvents: number[] = [];
  for (let a = 0; a < items.length; a++) {
    for (let b = a + 1; b < items.length; b++) {
      pairsDistinct.push(1);
      pairsEvents.push(items[a][1] * items[b][1]);
    }
  }
  return {
    total: [rows.length],
    itemEvents: perItem,
    itemUsers: perItem.map(() => 1),
    coocDistinct: pairsDistinct,
    coocEvents: pairsEvents,
  };
}

function sensitivities(caps: ContributionCaps) {
  return {
    total: totalEventCountSensitivity(caps),
    itemEvents: itemEventCountSensitivity(caps),
    itemUsers: itemUserCountSensitivity(caps),
    coocDistinct: cooccurrenceSensitivity(caps),
    coocEvents: cooccurrenceEventSensitivity(caps),
  };
}

describe('sensitivities implied by the caps', () => {
  test('closed forms on an example (k = 10, c = 3)', () => {
    const caps = { maxEventsPerUser: 10, maxEventsPerUserItem: 3 };
    expect(itemEventCountSensitivity(caps)).toMatchObject({ l0: 10, l1: 10, linf: 3, integer: true });
    expect(itemEventCountSensitivity(caps).l2).toBeCloseTo(Math.sqrt(3 * 9 + 1), 12);
    expect(itemUserCountSensitivity(caps)).toMatchObject({ l0: 10, l1: 10, linf: 1 });
    expect(cooccurrenceSensitivity(caps)).toMatchObject({ l0: 45, l1: 45, linf: 1 });
    expect(cooccurrenceSensitivity(caps, { symmetric: true })).toMatchObject({ l0: 90, l1: 90 });
    expect(cooccurrenceEventSensitivity(caps)).toMatchObject({ l0: 45, l1: 45, linf: 9 });
    expect(distinctUserCountSensitivity(caps)).toMatchObject({ l0: 1, l1: 1, l2: 1, linf: 1 });
    // With a distinct-items cap m = 4 the pair count is C(4, 2) and the event count min(k, m·c) = 10.
    const m4 = { ...caps, maxItemsPerUser: 4 };
    expect(cooccurrenceSensitivity(m4)).toMatchObject({ l1: 6 });
    expect(itemUserCountSensitivity(m4)).toMatchObject({ l1: 4 });
    expect(totalEventCountSensitivity({ ...caps, maxItemsPerUser: 2 })).toMatchObject({ l1: 6 });
    expect(itemValueSumSensitivity(caps, { lower: -2, upper: 5 })).toMatchObject({
      l1: 50,
      linf: 15,
      integer: false,
    });
    expect(() => itemEventCountSensitivity({ maxEventsPerUser: 0, maxEventsPerUserItem: 1 })).toThrow(
      RangeError,
    );
    expect(() => itemEventCountSensitivity({ maxEventsPerUser: 2.5, maxEventsPerUserItem: 1 })).toThrow(
      RangeError,
    );
  });

  test('formulas equal the brute-force maximum over every contribution the caps allow', () => {
    // Enumerate every multiset of per-item counts n_1 >= n_2 >= … with 1 <= n_i <= c, at most m items, Σ n_i <= k.
    function* profiles(k: number, c: number, m: number, maxNext = c): Generator<number[]> {
      yield [];
      if (m === 0) return;
      for (let n = Math.min(maxNext, k); n >= 1; n--) {
        for (const rest of profiles(k - n, c, m - 1, n)) yield [n, ...rest];
      }
    }
    for (let k = 1; k <= 7; k++) {
      for (let c = 1; c <= 4; c++) {
        for (const m of [1, 2, 3, 5, undefined]) {
          const caps: ContributionCaps = { maxEventsPerUser: k, maxEventsPerUserItem: c, maxItemsPerUser: m };
          const best: Record<string, { l0: number; l1: number; l2: number; linf: number }> = {};
          for (const prof of profiles(k, Math.min(c, k), Math.min(m ?? k, k))) {
            const rows: Ev[] = prof.flatMap((n, i) =>
              Array.from({ length: n }, (_, j) => ({ eventId: j, userId: 'u', itemId: `i${i}` })),
            );
            for (const [q, v] of Object.entries(contributionVectors(rows))) {
              const nv = norms(v);
              const b = (best[q] ??= { l0: 0, l1: 0, l2: 0, linf: 0 });
              b.l0 = Math.max(b.l0, nv.l0);
              b.l1 = Math.max(b.l1, nv.l1);
              b.l2 = Math.max(b.l2, nv.l2);
              b.linf = Math.max(b.linf, nv.linf);
            }
          }
          const s = sensitivities(caps);
          for (const q of ['total', 'itemEvents', 'itemUsers', 'coocDistinct'] as const) {
            expect({ q, k, c, m, l0: s[q].l0, l1: s[q].l1, linf: s[q].linf }).toEqual({
              q,
              k,
              c,
              m,
              ...best[q],
              l2: undefined,
            });
            expect(s[q].l2).toBeCloseTo(best[q].l2, 12);
          }
          // Event-weighted co-occurrence: L0, L1, L∞ exact, L2 a (Hölder) upper bound.
          expect([s.coocEvents.l0, s.coocEvents.l1, s.coocEvents.linf]).toEqual([
            best.coocEvents.l0,
            best.coocEvents.l1,
            best.coocEvents.linf,
          ]);
          expect(s.coocEvents.l2).toBeGreaterThanOrEqual(best.coocEvents.l2 - 1e-12);
        }
      }
    }
  });
});

describe('boundContributions (in memory) — property tests', () => {
  test('200 random logs and caps: caps hold, counts add up, under-cap users untouched, sensitivity respected', () => {
    const gen = createSeededRng('bounding-properties');
    // Violations are collected and asserted once: thousands of expect() calls would dominate the run time.
    const violations: string[] = [];
    const check = (ok: boolean, what: () => string): void => {
      if (!ok) violations.push(what());
    };
    for (let trial = 0; trial < 200; trial++) {
      const log = randomLog(gen, 1 + gen.uniformInt(25), 1 + gen.uniformInt(15), 60);
      const caps: ContributionCaps = {
        maxEventsPerUser: 1 + gen.uniformInt(20),
        maxEventsPerUserItem: 1 + gen.uniformInt(5),
        maxItemsPerUser: gen.coin() ? 1 + gen.uniformInt(10) : undefined,
      };
      const k = caps.maxEventsPerUser;
      const c = Math.min(caps.maxEventsPerUserItem, k);
      const m = Math.min(caps.maxItemsPerUser ?? k, k);
      const { rows, stats } = boundContributions(log, caps, gen);
      const tag = `trial ${trial} caps ${JSON.stringify(caps)}`;

      // Per-user, per-(user, item) and distinct-item caps.
      for (const [u, n] of countBy(rows, (r) => r.userId)) check(n <= k, () => `${tag}: user ${u} kept ${n}`);
      for (const [ui, n] of countBy(rows, (r) => `${r.userId}/${r.itemId}`)) {
        check(n <= c, () => `${tag}: pair ${ui} kept ${n}`);
      }
      const itemsPerUser = new Map<string, Set<string>>();
      for (const r of rows)
        itemsPerUser.set(r.userId, (itemsPerUser.get(r.userId) ?? new Set()).add(r.itemId));
      for (const [u, items] of itemsPerUser)
        check(items.size <= m, () => `${tag}: user ${u} kept ${items.size} items`);

      // Bookkeeping: removed = input - output, and the three steps add up.
      check(
        stats.inputRows === log.length &&
          stats.outputRows === rows.length &&
          stats.removedRows === log.length - rows.length &&
          stats.removedByUserItemCap + stats.removedByItemsCap + stats.removedByUserCap === stats.removedRows,
        () => `${tag}: stats ${JSON.stringify(stats)} for ${log.length} -> ${rows.length}`,
      );

      // Output is a subset of the input (same objects, no duplicates, input order kept).
      const ids = rows.map((r) => r.eventId);
      const inputSet = new Set(log);
      check(
        new Set(ids).size === ids.length &&
          ids.every((id, i) => i === 0 || ids[i - 1] < id) &&
          rows.every((r) => inputSet.has(r)),
        () => `${tag}: output is not an ordered subset of the input`,
      );

      const byUserIn = new Map<string, Ev[]>();
      for (const r of log) {
        const list = byUserIn.get(r.userId);
        if (list) list.push(r);
        else byUserIn.set(r.userId, [r]);
      }
      const byUserOut = new Map<string, Ev[]>();
      for (const r of rows) {
        const list = byUserOut.get(r.userId);
        if (list) list.push(r);
        else byUserOut.set(r.userId, [r]);
      }
      const sens = sensitivities(caps);
      for (const [u, evs] of byUserIn) {
        const perItemMap = countBy(evs, (r) => r.itemId);
        const perItem = [...perItemMap.values()];
        const kept = byUserOut.get(u) ?? [];
        const out = kept.length;
        // Users already within every cap keep all their rows.
        const within = evs.length <= k && perItem.length <= m && perItem.every((n) => n <= c);
        if (within) check(out === evs.length, () => `${tag}: under-cap user ${u} lost rows`);
        // Maximality: either the user is at the event cap k, or step 3 removed nothing, in which case every kept
        // item keeps min(c, n) events and min(m, distinct) items survive.
        const keptItems = itemsPerUser.get(u) ?? new Set<string>();
        const available = [...keptItems].reduce((s, i) => s + Math.min(c, perItemMap.get(i) ?? 0), 0);
        if (out < k) {
          check(
            out === available && keptItems.size === Math.min(m, perItem.length),
            () => `${tag}: ${u} not maximal`,
          );
        } else {
          check(out === k, () => `${tag}: ${u} kept ${out} > k`);
        }
        // The user's actual contribution to every histogram is within the derived sensitivity.
        const vecs = contributionVectors(kept);
        for (const q of Object.keys(sens) as Array<keyof typeof sens>) {
          const nv = norms(vecs[q]);
          check(
            nv.l0 <= sens[q].l0 &&
              nv.l1 <= sens[q].l1 &&
              nv.l2 <= sens[q].l2 + 1e-9 &&
              nv.linf <= sens[q].linf,
            () => `${tag}: ${q} contribution ${JSON.stringify(nv)} exceeds ${JSON.stringify(sens[q])}`,
          );
        }
      }
    }
    expect(violations).toEqual([]);
  });

  test('sampling is uniform: each of 10 events of an over-cap user is kept with probability k/10', () => {
    const gen = createSeededRng('bounding-uniform');
    const log: Ev[] = Array.from({ length: 10 }, (_, j) => ({ eventId: j, userId: 'u', itemId: `i${j}` }));
    const kept = new Array<number>(10).fill(0);
    const runs = 6000;
    for (let t = 0; t < runs; t++) {
      for (const r of boundContributions(log, { maxEventsPerUser: 3, maxEventsPerUserItem: 1 }, gen).rows) {
        kept[r.eventId]++;
      }
    }
    const e = (runs * 3) / 10;
    const chi2 = kept.reduce((s, o) => s + ((o - e) * (o - e)) / e, 0);
    expect(chi2).toBeLessThan(27.88); // chi-square 99.9% point, 9 df
  });

  test('custom key accessors', () => {
    const rows = [
      { u: 'a', i: 'x' },
      { u: 'a', i: 'x' },
      { u: 'a', i: 'y' },
    ];
    const out = boundContributions(
      rows,
      { maxEventsPerUser: 5, maxEventsPerUserItem: 1 },
      createSeededRng('k'),
      {
        user: (r) => r.u,
        item: (r) => r.i,
      },
    );
    expect(out.rows).toHaveLength(2);
    expect(out.stats.removedByUserItemCap).toBe(1);
  });
});

describe('SQL quoting', () => {
  test('identifiers and literals are escaped, NULs rejected', () => {
    expect(sqlIdent('a"b')).toBe('"a""b"');
    expect(sqlString("it's")).toBe("'it''s'");
    expect(() => sqlIdent('a\0b')).toThrow(RangeError);
    expect(() => sqlString('a\0b')).toThrow(RangeError);
    expect(() => sqlIdent('')).toThrow(TypeError);
    const plan = buildBoundingSql({
      source: ['main', 'x"; DROP TABLE y; --'],
      userColumn: 'u"',
      itemColumn: "i'",
      rowIdentity: ['u"', "i'", 't"s'],
      caps: { maxEventsPerUser: 2, maxEventsPerUserItem: 1 },
      secret: "0123456789abcdef'; DROP TABLE z; --",
    });
    expect(plan.boundedRowsSql).toContain('"main"."x""; DROP TABLE y; --"');
    expect(plan.boundedRowsSql).toContain("'0123456789abcdef''; DROP TABLE z; --'");
    expect(plan.boundedRowsSql).toContain('"t""s"');
    // A row's position is not an identity: without rowIdColumn or rowIdentity the plan is refused.
    expect(() =>
      buildBoundingSql({
        source: 't',
        userColumn: 'u',
        itemColumn: 'i',
        caps: { maxEventsPerUser: 2, maxEventsPerUserItem: 1 },
        secret: '0123456789abcdef0123',
      }),
    ).toThrow(/stable row identity/);
    expect(() =>
      buildBoundingSql({
        source: 't',
        userColumn: 'u',
        itemColumn: 'i',
        caps: { maxEventsPerUser: 2, maxEventsPerUserItem: 1 },
        secret: 'short',
      }),
    ).toThrow(/secret/);
  });
});

describe('buildBoundingSql in a real DuckDB', () => {
  let db: DuckDBInstance;
  let conn: DuckDBConnection;
  const rows = async (sql: string): Promise<Record<string, unknown>[]> =>
    (await conn.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];

  const gen = createSeededRng('duckdb-data');
  const log = randomLog(gen, 40, 12, 80);
  const caps: ContributionCaps = { maxEventsPerUser: 7, maxEventsPerUserItem: 2 };
  const secret = gen.secretHex();

  beforeAll(async () => {
    db = await DuckDBInstance.create(':memory:');
    conn = await db.connect();
    await conn.run(
      'CREATE TABLE events (event_id BIGINT, user_id VARCHAR, item_id VARCHAR, payload VARCHAR)',
    );
    const values = log
      .map(
        (e) =>
          `(${e.eventId}, ${sqlString(e.userId)}, ${sqlString(e.itemId)}, ${sqlString('p' + e.eventId)})`,
      )
      .join(',\n');
    await conn.run(`INSERT INTO events VALUES ${values}`);
  });

  afterAll(() => {
    conn.closeSync();
    db.closeSync();
  });

  const plan = (source: string | string[] = 'events', s = secret, c = caps) =>
    buildBoundingSql({
      source,
      userColumn: 'user_id',
      itemColumn: 'item_id',
      rowIdColumn: 'event_id',
      caps: c,
      secret: s,
    });

  test('caps hold, columns are preserved, stats match, counts equal the in-memory formula', async () => {
    const p = plan();
    const out = await rows(p.boundedRowsSql);
    expect(Object.keys(out[0]).sort()).toEqual(['event_id', 'item_id', 'payload', 'user_id']);
    const evs: Ev[] = out.map((r) => ({
      eventId: Number(r.event_id),
      userId: String(r.user_id),
      itemId: String(r.item_id),
    }));
    for (const n of countBy(evs, (r) => r.userId).values()) expect(n).toBeLessThanOrEqual(7);
    for (const n of countBy(evs, (r) => `${r.userId}\u0000${r.itemId}`).values())
      expect(n).toBeLessThanOrEqual(2);
    // With no distinct-item cap the kept count per user is deterministic: min(k, Σ_i min(n_ui, c)).
    const byUser = new Map<string, Map<string, number>>();
    for (const e of log) {
      const m = byUser.get(e.userId) ?? new Map<string, number>();
      m.set(e.itemId, (m.get(e.itemId) ?? 0) + 1);
      byUser.set(e.userId, m);
    }
    const expectedOut = [...byUser.values()].reduce(
      (s, m) =>
        s +
        Math.min(
          7,
          [...m.values()].reduce((a, n) => a + Math.min(2, n), 0),
        ),
      0,
    );
    expect(out.length).toBe(expectedOut);
    const [stats] = await rows(p.statsSql);
    const st = Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, Number(v)]));
    expect(st.input_rows).toBe(log.length);
    expect(st.output_rows).toBe(out.length);
    expect(st.removed_rows).toBe(log.length - out.length);
    expect(st.removed_by_user_item_cap + st.removed_by_items_cap + st.removed_by_user_cap).toBe(
      st.removed_rows,
    );
    expect(st.removed_rows).toBeGreaterThan(0);
  });

  test('distinct-items cap, CREATE TABLE, determinism for a fixed secret, change with a new secret', async () => {
    const c3 = { ...caps, maxItemsPerUser: 3 };
    const p = plan('events', secret, c3);
    await conn.run(p.createTableSql(['main', 'bounded "copy"']));
    const [agg] = await rows(
      `SELECT max(n)::INT AS max_items FROM (SELECT count(DISTINCT item_id) AS n FROM main."bounded ""copy""" GROUP BY user_id)`,
    );
    expect(Number(agg.max_items)).toBeLessThanOrEqual(3);
    const ids = async (pl: ReturnType<typeof plan>): Promise<string> =>
      (await rows(`SELECT event_id FROM (${pl.boundedRowsSql}) ORDER BY event_id`))
        .map((r) => r.event_id)
        .join(',');
    expect(await ids(p)).toBe(await ids(plan('events', secret, c3)));
    expect(await ids(p)).not.toBe(await ids(plan('events', createSeededRng('other').secretHex(), c3)));
  });

  test("stability: removing one user does not change any other user's kept rows", async () => {
    const heavy = [...countBy(log, (r) => r.userId).entries()].sort((a, b) => b[1] - a[1])[0][0];
    await conn.run(
      `CREATE OR REPLACE TABLE events_minus AS SELECT * FROM events WHERE user_id <> ${sqlString(heavy)}`,
    );
    const c3 = { ...caps, maxItemsPerUser: 3 };
    const full = await rows(
      `SELECT event_id FROM (${plan('events', secret, c3).boundedRowsSql}) WHERE user_id <> ${sqlString(heavy)} ORDER BY 1`,
    );
    const minus = await rows(
      `SELECT event_id FROM (${plan('events_minus', secret, c3).boundedRowsSql}) ORDER BY 1`,
    );
    expect(minus.map((r) => r.event_id)).toEqual(full.map((r) => r.event_id));
  });

  test('content identity: the kept rows do not depend on row order or on other users (rows shuffled, one user removed)', async () => {
    const byContent = (source: string) =>
      buildBoundingSql({
        source,
        userColumn: 'user_id',
        itemColumn: 'item_id',
        rowIdentity: ['user_id', 'item_id', 'payload'],
        caps: { ...caps, maxItemsPerUser: 3 },
        secret,
      });
    const heavy = [...countBy(log, (r) => r.userId).entries()].sort((a, b) => b[1] - a[1])[0][0];
    // The same rows in another physical order, without the heavy user: every other user keeps the same rows.
    await conn.run(
      `CREATE OR REPLACE TABLE shuffled AS SELECT * FROM events WHERE user_id <> ${sqlString(heavy)} ORDER BY md5(payload)`,
    );
    const full = await rows(
      `SELECT event_id FROM (${byContent('events').boundedRowsSql}) WHERE user_id <> ${sqlString(heavy)} ORDER BY 1`,
    );
    const other = await rows(`SELECT event_id FROM (${byContent('shuffled').boundedRowsSql}) ORDER BY 1`);
    expect(other.map((r) => r.event_id)).toEqual(full.map((r) => r.event_id));
    expect(full.length).toBeLessThan(log.length);
  });

  test('hash-ordered sampling is uniform over a user’s events (chi-square over 500 users)', async () => {
    // 500 users with the same 10 "event slots": which slots survive k = 3 must be uniform.
    await conn.run(`CREATE OR REPLACE TABLE slots AS
      SELECT u * 10 + s AS event_id, 'u' || u AS user_id, 'i' || s AS item_id, s AS slot
      FROM range(500) r(u), range(10) t(s)`);
    const p = buildBoundingSql({
      source: 'slots',
      userColumn: 'user_id',
      itemColumn: 'item_id',
      rowIdColumn: 'event_id',
      caps: { maxEventsPerUser: 3, maxEventsPerUserItem: 1 },
      secret,
    });
    const counts = await rows(
      `SELECT slot, count(*)::INT AS n FROM (${p.boundedRowsSql}) GROUP BY slot ORDER BY slot`,
    );
    expect(counts).toHaveLength(10);
    const e = (500 * 3) / 10;
    const chi2 = counts.reduce((s, r) => s + (Number(r.n) - e) ** 2 / e, 0);
    expect(chi2).toBeLessThan(27.88);
  });

  test('hostile identifiers and secret cannot inject SQL', async () => {
    const table = 'we"ird; DROP TABLE events; --';
    const userCol = 'user\'"col';
    await conn.run(
      `CREATE TABLE ${sqlIdent(table)} AS SELECT event_id, user_id AS ${sqlIdent(userCol)}, item_id FROM events`,
    );
    const p = buildBoundingSql({
      source: table,
      userColumn: userCol,
      itemColumn: 'item_id',
      rowIdColumn: 'event_id',
      caps,
      secret: "x'); DROP TABLE events; SELECT ('",
    });
    const out = await rows(p.boundedRowsSql);
    expect(out.length).toBeGreaterThan(0);
    const [stats] = await rows(p.statsSql);
    expect(Number(stats.output_rows)).toBe(out.length);
    const [still] = await rows('SELECT count(*)::INT AS n FROM events');
    expect(Number(still.n)).toBe(log.length);
  });
});
