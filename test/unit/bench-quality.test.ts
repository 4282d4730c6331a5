import * as path from 'node:path';
import { parseCsv } from '../../lib/datasets/csv';
import { defaultVariants, parseVariants } from '../../bench/quality';
import { convertMl1m, unavailableItems } from '../../bench/quality/data';
import { idcg, pairedBootstrap, scoreLists, topK } from '../../bench/quality/metrics';
import { CoordinateSearch, referenceSpaces } from '../../bench/quality/references';
import { parseInteractions, parseTimestamp, toContractCsv } from '../../bench/quality/rows';
import { holdoutCount, seenItems, splitByUser, type PositiveRule, type Row } from '../../bench/quality/split';

const EXPLICIT: PositiveRule = { kind: 'explicit', minRating: 4 };
const IMPLICIT: PositiveRule = { kind: 'implicit', eventTypes: ['view', 'click', 'cart', 'purchase'] };

function rating(user: string, item: string, r: number, ts: number): Row {
  return { user, item, eventType: 'rating', rating: r, ts, tsText: String(ts) };
}
function event(user: string, item: string, type: string, ts: number): Row {
  return { user, item, eventType: type, rating: null, ts, tsText: String(ts) };
}

describe('split protocol', () => {
  test('holdoutCount: the latest 20%, rounded down, at least one', () => {
    expect([5, 9, 10, 14, 15, 100].map((n) => holdoutCount(n, 0.2))).toEqual([1, 1, 2, 2, 3, 20]);
  });

  test("explicit: latest 20% of positives held out; the user's rows from the cutoff on leave training", () => {
    // u1: ten positives at t=1..10 (items p1..p10), a negative (rating 2) at t=3 and one at t=9.5.
    const rows: Row[] = [];
    for (let t = 1; t <= 10; t++) rows.push(rating('u1', `p${t}`, 4 + (t % 2) * 0.5, t));
    rows.push(rating('u1', 'n1', 2, 3), rating('u1', 'n2', 2, 9.5));
    // u2: four positives only: never evaluated, all rows train (even late ones).
    for (let t = 1; t <= 4; t++) rows.push(rating('u2', `p${t}`, 5, 100 + t));
    const s = splitByUser(rows, EXPLICIT);
    expect([...s.holdout.entries()]).toEqual([['u1', ['p10', 'p9']]]);
    expect(s.cutoff.get('u1')).toBe(9);
    const train = s.trainIdx.map((i) => rows[i]);
    // Nothing of u1 at or after t=9 trains, including the negative at 9.5; u2 keeps everything.
    expect(train.filter((r) => r.user === 'u1').every((r) => r.ts < 9)).toBe(true);
    expect(train.filter((r) => r.user === 'u1').map((r) => r.item)).toContain('n1');
    expect(train.filter((r) => r.user === 'u1').map((r) => r.item)).not.toContain('n2');
    expect(train.filter((r) => r.user === 'u2')).toHaveLength(4);
    expect(s.stats).toMatchObject({
      users: 2,
      evaluatedUsers: 1,
      trainRows: 13,
      heldOutRows: 3,
      relevantItems: 2,
    });
  });

  test('ties at the cutoff second are held out too, so no held-out item trains at the same instant', () => {
    const rows: Row[] = [];
    for (let t = 1; t <= 8; t++) rows.push(rating('u', `i${t}`, 5, t));
    // Two more positives in the same second as the last one: 10 positives, 2 held out by count, 3 by the tie.
    rows.push(rating('u', 'i9', 5, 8), rating('u', 'i10', 5, 8));
    const s = splitByUser(rows, EXPLICIT);
    expect(s.holdout.get('u')).toEqual(['i10', 'i8', 'i9']);
    expect(s.trainIdx.map((i) => rows[i].ts).every((t) => t < 8)).toBe(true);
  });

  test('an item seen before the cutoff is not relevant even when its first positive is later', () => {
    const rows: Row[] = [];
    for (let t = 1; t <= 9; t++) rows.push(rating('u', `i${t}`, 5, t));
    rows.push(rating('u', 'late', 2, 2), rating('u', 'late', 5, 20));
    const s = splitByUser(rows, EXPLICIT);
    // Ten positive items; the two latest (i9 at 9, late at 20) are held out; `late` was rated (2) at t=2.
    expect(s.cutoff.get('u')).toBe(9);
    expect(s.holdout.get('u')).toEqual(['i9']);
  });

  test('implicit: every listed event type is a positive, repeated events count once by first time', () => {
    const rows: Row[] = [];
    for (let t = 1; t <= 5; t++) rows.push(event('u', `i${t}`, t % 2 ? 'view' : 'purchase', t));
    rows.push(event('u', 'i1', 'cart', 50)); // a repeat of i1: still first seen at t=1
    const s = splitByUser(rows, IMPLICIT);
    expect(s.holdout.get('u')).toEqual(['i5']);
    expect(s.trainIdx.map((i) => rows[i].ts)).toEqual([1, 2, 3, 4]);
  });

  test('a user whose positives all share one instant is not evaluated and keeps all rows', () => {
    const rows = [1, 2, 3, 4, 5].map((i) => rating('u', `i${i}`, 5, 7));
    const s = splitByUser(rows, EXPLICIT);
    expect(s.holdout.size).toBe(0);
    expect(s.trainIdx).toHaveLength(5);
    expect(s.stats.skippedNoHistory).toBe(1);
  });

  test('input order does not matter', () => {
    const rows: Row[] = [];
    for (const u of ['a', 'b', 'c'])
      for (let t = 0; t < 12; t++)
        rows.push(rating(u, `i${(t * 7) % 13}`, t % 3 ? 5 : 3, t * 10 + u.charCodeAt(0)));
    const shuffled = [...rows].reverse();
    const s1 = splitByUser(rows, EXPLICIT);
    const s2 = splitByUser(shuffled, EXPLICIT);
    expect([...s2.holdout.entries()].sort()).toEqual([...s1.holdout.entries()].sort());
    const key = (r: Row) => `${r.user}/${r.item}/${r.ts}`;
    expect(s2.trainIdx.map((i) => key(shuffled[i])).sort()).toEqual(
      s1.trainIdx.map((i) => key(rows[i])).sort(),
    );
  });

  test("seenItems collects each user's distinct items of the given rows", () => {
    const rows = [rating('u', 'a', 1, 1), rating('u', 'a', 5, 2), rating('v', 'b', 5, 1)];
    expect(seenItems(rows, [0, 1]).get('u')).toEqual(new Set(['a']));
    expect(seenItems(rows).get('v')).toEqual(new Set(['b']));
  });
});

describe('metrics', () => {
  const none = { seen: new Map<string, Set<string>>(), unavailable: new Set<string>() };

  test('NDCG, Recall (min(|R|, K) denominator), HitRate and coverage by hand', () => {
    const holdout = new Map([
      ['u1', ['a', 'b']],
      ['u2', ['c', 'd', 'e']],
    ]);
    const lists = new Map([
      ['u1', ['x', 'a', 'y', 'b']],
      ['u2', ['c', 'd']],
    ]);
    const s = scoreLists(lists, holdout, none, { k: 2, catalogueSize: 10 });
    const u1 = 1 / Math.log2(3) / (1 + 1 / Math.log2(3)); // only `a` within the top 2
    const u2 = 1; // two hits in two slots, ideal for K = 2
    expect(s.ndcg).toBeCloseTo((u1 + u2) / 2, 12);
    expect(s.recall).toBeCloseTo((1 / 2 + 2 / 2) / 2, 12);
    expect(s.hitrate).toBe(1);
    expect(s.coverage).toBeCloseTo(4 / 10, 12); // x, a, c, d
    expect(Array.from(s.perUserNdcg)).toEqual([u1, u2]);
    expect(idcg(3, 2)).toBeCloseTo(1 + 1 / Math.log2(3), 12);
  });

  test('seen and unavailable items are removed before the cut, and counted', () => {
    const holdout = new Map([['u', ['a']]]);
    const lists = new Map([['u', ['s', 'gone', 'a', 'z']]]);
    const ex = { seen: new Map([['u', new Set(['s'])]]), unavailable: new Set(['gone']) };
    const s = scoreLists(lists, holdout, ex, { k: 2, catalogueSize: 5 });
    expect(s.ndcg).toBe(1); // `a` moves up to rank 1
    expect(s.excludedInTopK).toBe(2);
    expect(topK(['s', 'a', 'a', 'b'], new Set(['s']), new Set(), 3)).toEqual({
      items: ['a', 'b'],
      excludedInTopK: 1,
    });
  });

  test('users without a list score zero unless a fallback list is given', () => {
    const holdout = new Map([
      ['u', ['a']],
      ['v', ['p']],
    ]);
    const lists = new Map([['u', ['a']]]);
    const bare = scoreLists(lists, holdout, none, { k: 10, catalogueSize: 3 });
    expect(bare.ndcg).toBe(0.5);
    expect(bare.usersWithoutList).toBe(1);
    const withFallback = scoreLists(lists, holdout, none, { k: 10, catalogueSize: 3, fallback: ['p'] });
    expect(withFallback.ndcg).toBe(1);
    expect(withFallback.usersFallback).toBe(1);
  });

  test('paired bootstrap: zero difference gives a zero interval; a constant shift gives that shift', () => {
    const a = Float64Array.from([0.1, 0.5, 0.3, 0.9]);
    expect(pairedBootstrap(a, a)).toEqual({ mean: 0, lo: 0, hi: 0 });
    const b = a.map((x) => x - 0.25);
    const r = pairedBootstrap(a, b, 200, 7);
    expect(r.mean).toBeCloseTo(0.25, 12);
    expect(r.lo).toBeCloseTo(0.25, 12);
    expect(r.hi).toBeCloseTo(0.25, 12);
    const noisy = pairedBootstrap(Float64Array.from([1, 0, 1, 0]), Float64Array.from([0, 0, 0, 0]), 500, 1);
    expect(noisy.lo).toBeLessThan(noisy.mean);
    expect(noisy.hi).toBeGreaterThan(noisy.mean);
  });
});

describe('reference tuning: coordinate search', () => {
  test('walks to the optimum of a unimodal objective without re-evaluating points', () => {
    const se = new CoordinateSearch({
      model: 'als',
      dims: [
        { name: 'a', values: [0, 1, 2, 3, 4, 5, 6], start: 1 },
        { name: 'b', values: [0, 1, 2, 3, 4], start: 0 },
      ],
    });
    const f = (p: Record<string, number | string>) => -((Number(p.a) - 5) ** 2) - (Number(p.b) - 3) ** 2;
    const evaluated: string[] = [];
    for (;;) {
      const runs = se.pending();
      for (const r of runs) {
        evaluated.push(r.id);
        se.report(r.id, f(r.params));
      }
      if (!se.step()) break;
    }
    expect(se.best().spec.params).toMatchObject({ a: 5, b: 3 });
    expect(new Set(evaluated).size).toBe(evaluated.length);
    expect(evaluated.length).toBeLessThan(7 * 5);
    expect(se.pending()).toEqual([]);
  });

  test('maxRounds stops the walk; the spaces start inside their value lists', () => {
    const se = new CoordinateSearch(
      { model: 'ease', dims: [{ name: 'lambda', values: [1, 2, 3, 4, 5, 6], start: 0 }] },
      1,
    );
    for (const r of se.pending()) se.report(r.id, Number(r.params.lambda));
    expect(se.step()).toBe(false);
    expect(se.best().spec.params.lambda).toBe(2);
    for (const sp of referenceSpaces(['all', 'positive']))
      expect(() => new CoordinateSearch(sp)).not.toThrow();
  });
});

describe('input rows', () => {
  test('drops broken rows by reason and keeps the rest in order', () => {
    const text = [
      'user_id,item_id,event_type,rating,timestamp',
      'u1,i1,view,,2026-10-01T10:00:00Z',
      'u1,i1,view,,2026-10-01T10:00:00Z', // exact duplicate
      ',i2,view,,2026-10-01T10:00:00Z',
      'u1,i3,wishlist,,2026-10-01T10:00:00Z',
      'u1,i4,view,,2026-13-45T25:61:00Z',
      'u1,i5,view,,31/02/2026 25:61',
      'u1,i6,view,,2099-10-01T10:00:00Z',
      'u1,i7,view,2026-10-01T10:00:00Z',
      'u2,i8,click,,1790000000',
    ].join('\n');
    const p = parseInteractions(text, {
      eventTypes: ['view', 'click'],
      maxTs: Date.parse('2027-01-01T00:00:00Z') / 1000,
    });
    expect(p.rows.map((r) => r.item)).toEqual(['i1', 'i8']);
    expect(p.dropped).toEqual({
      duplicate: 1,
      null_id: 1,
      unknown_event_type: 1,
      bad_timestamp: 2,
      future_timestamp: 1,
      field_count: 1,
    });
    expect(toContractCsv(p.rows)).toBe(
      'user_id,item_id,event_type,rating,timestamp\nu1,i1,view,,2026-10-01T10:00:00Z\nu2,i8,click,,1790000000\n',
    );
  });

  test('ratings outside the range are dropped; impossible dates are not rolled over', () => {
    const p = parseInteractions(
      'user_id,item_id,event_type,rating,timestamp\nu,i,rating,7,1\nu,j,rating,4.5,2\n',
      {
        eventTypes: ['rating'],
      },
    );
    expect(p.rows.map((r) => [r.item, r.rating])).toEqual([['j', 4.5]]);
    expect(p.dropped).toEqual({ bad_rating: 1 });
    expect(parseTimestamp('2026-02-31T00:00:00Z')).toBeNaN();
    expect(parseTimestamp('2026-02-28T00:00:01Z')).toBe(Date.parse('2026-02-28T00:00:01Z') / 1000);
  });
});

describe('dataset helpers', () => {
  test('ML-1M .dat files convert to the input contract', () => {
    const c = convertMl1m(
      '1::1193::5::978300760\n1::661::3::978302109\n',
      '1193::One Flew Over (1975)::Drama\n',
    );
    expect(c.ratingsCsv).toBe(
      'user_id,item_id,event_type,rating,timestamp\n1,1193,rating,5,2000-12-31T22:12:40Z\n1,661,rating,3,2000-12-31T22:35:09Z\n',
    );
    expect(c.itemsCsv.split('\n')[1]).toBe('1193,Drama,,One Flew Over (1975),true,Drama');
    expect(() => convertMl1m('1::2::3\n', '')).toThrow(/ratings.dat line 1/);
  });

  test('out-of-stock items are unavailable (recforge publish rule)', () => {
    const items = 'item_id,category,price,title,in_stock\na,x,1,t,true\nb,x,1,t,false\nc,x,1,t,0\n';
    expect(unavailableItems(items, parseCsv)).toEqual(new Set(['b', 'c']));
    expect(unavailableItems(undefined, parseCsv).size).toBe(0);
  });

  test('variant specs: bare names are configs/<name>.yaml, default has no overlay, missing files fail', () => {
    const root = path.resolve(__dirname, '..', '..');
    expect(parseVariants('default,movielens,x=configs/two-tower.yaml', root)).toEqual([
      { name: 'default' },
      { name: 'movielens', overlay: 'configs/movielens.yaml' },
      { name: 'x', overlay: 'configs/two-tower.yaml' },
    ]);
    expect(() => parseVariants('nope', root)).toThrow(/configs\/nope.yaml does not exist/);
    expect(defaultVariants('synthetic').map((v) => v.name)).toContain('default');
  });
});
