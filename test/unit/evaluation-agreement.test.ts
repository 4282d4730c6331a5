import { listAgreementSql } from '../../evaluation/metrics.sql';
import { positiveSql } from '../../analytics/positive.sql';
import { queryDuckDb } from '../helpers/env';

test('list agreement is the mean per-user overlap of the first table’s lists', async () => {
  const rows = await queryDuckDb(`
    CREATE TABLE a AS SELECT * FROM (VALUES ('u1', 'x'), ('u1', 'y'), ('u2', 'x'), ('u2', 'z')) t(user_id, item_id);
    CREATE TABLE b AS SELECT * FROM (VALUES ('u1', 'x'), ('u1', 'q'), ('u2', 'w'), ('u3', 'x')) t(user_id, item_id);
    ${listAgreementSql('a', 'b')}`);
  // u1 shares 1 of 2, u2 none: (0.5 + 0) / 2; u3 is only in b.
  expect(rows).toEqual([{ users: 2, agreement: 0.25 }]);
  const same = await queryDuckDb(`
    CREATE TABLE a AS SELECT * FROM (VALUES ('u1', 'x'), ('u1', 'y')) t(user_id, item_id);
    ${listAgreementSql('a', 'a')}`);
  expect(same).toEqual([{ users: 1, agreement: 1 }]);
});

test('positives: every implicit event, ratings at or above the threshold', async () => {
  const events = `(VALUES ('view', NULL), ('rating', 3.5), ('rating', 4.0), ('purchase', NULL)) t(event_type, rating)`;
  const count = async (sql: string) =>
    (await queryDuckDb(`SELECT count(*)::INT AS n FROM ${events} WHERE ${sql}`))[0].n;
  expect(await count(positiveSql({ ratingAtLeast: 4 }))).toBe(3);
  expect(await count(positiveSql({ ratingAtLeast: 3 }))).toBe(4);
  expect(await count(positiveSql({}))).toBe(4);
  expect(() => positiveSql({ ratingAtLeast: Number('x') })).toThrow(/not a number/);
});
