import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { INTERACTION_COLUMNS, ITEM_COLUMNS } from '../../lib/interactions';
import { CsvParseError, parseCsv, parseCsvObjects } from '../../datasets/csv';
import { checkExisting, fetchMovielens } from '../../datasets/fetch';
import { countCsvRecords, countLines, incompleteReason, type DatasetManifest } from '../../datasets/manifest';
import {
  convertDslabsExport,
  convertGroupLens,
  countWarnings,
  epochSecondsToIso,
  EXPECTED_COUNTS,
  firstGenre,
  MovielensFormatError,
} from '../../datasets/movielens';
import { APT_INSTALL_COMMAND, findExecutable } from '../../datasets/sources';

describe('RFC 4180 parsing', () => {
  test('quotes, doubled quotes, CRLF, embedded newlines, missing final newline', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n"multi\nline",\n1,2')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['multi\nline', ''],
      ['1', '2'],
    ]);
    expect(parseCsv('a,b\n')).toEqual([['a', 'b']]);
    expect(parseCsv('')).toEqual([]);
    expect(parseCsv(',\n')).toEqual([['', '']]);
  });

  test('an unterminated quote is an error, and wrong field counts are named', () => {
    expect(() => parseCsv('a,"b\n')).toThrow(CsvParseError);
    expect(() => parseCsvObjects('a,b\n1,2\n3\n', ['a'])).toThrow(/record 3 has 1 fields/);
    expect(() => parseCsvObjects('a,b\n', ['c'])).toThrow(/lacks c/);
    expect(parseCsvObjects('\ufeffa,b\n1,"2,3"\n', ['a', 'b'])).toEqual([{ a: '1', b: '2,3' }]);
  });
});

describe('MovieLens field rules', () => {
  test('epoch seconds become ISO-8601 UTC without milliseconds', () => {
    expect(epochSecondsToIso(1260759144)).toBe('2009-12-14T02:52:24Z');
    expect(epochSecondsToIso(0)).toBe('1970-01-01T00:00:00Z');
  });

  test('category is the first genre; the no-genre placeholder is null', () => {
    expect(firstGenre('Adventure|Animation|Children')).toBe('Adventure');
    expect(firstGenre('Drama')).toBe('Drama');
    expect(firstGenre('(no genres listed)')).toBe('');
    expect(firstGenre('')).toBe('');
  });
});

const GROUPLENS_MOVIES = `movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
11,"American President, The (1995)",Comedy|Drama|Romance
51372,"""Great Performances"" Cats (1998)",Musical
176601,Black Mirror,(no genres listed)
`;
const GROUPLENS_RATINGS = `userId,movieId,rating,timestamp
1,1,4.0,964982703
1,11,3.5,964981247
7,51372,0.5,1258440271
`;

function rows(csv: string): string[][] {
  return parseCsv(csv);
}

describe('GroupLens ml-latest-small conversion', () => {
  const out = convertGroupLens(GROUPLENS_RATINGS, GROUPLENS_MOVIES);

  test('ratings follow the interaction contract', () => {
    expect(rows(out.ratingsCsv)).toEqual([
      [...INTERACTION_COLUMNS],
      ['1', '1', 'rating', '4', '2000-07-30T18:45:03Z'],
      ['1', '11', 'rating', '3.5', '2000-07-30T18:20:47Z'],
      ['7', '51372', 'rating', '0.5', '2009-11-17T06:44:31Z'],
    ]);
    expect(out.counts).toEqual({ ratings: 3, users: 2, items: 4 });
    expect(out.firstTimestamp).toBe('2000-07-30T18:20:47Z');
    expect(out.lastTimestamp).toBe('2009-11-17T06:44:31Z');
  });

  test('items keep every movie with first genre, empty price, in stock, full genres', () => {
    const items = rows(out.itemsCsv);
    expect(items[0]).toEqual([...ITEM_COLUMNS, 'genres']);
    expect(items.slice(1)).toEqual([
      ['1', 'Adventure', '', 'Toy Story (1995)', 'true', 'Adventure|Animation|Children|Comedy|Fantasy'],
      ['11', 'Comedy', '', 'American President, The (1995)', 'true', 'Comedy|Drama|Romance'],
      ['51372', 'Musical', '', '"Great Performances" Cats (1998)', 'true', 'Musical'],
      ['176601', '', '', 'Black Mirror', 'true', '(no genres listed)'],
    ]);
  });

  test('bad input is rejected with the record named', () => {
    expect(() => convertGroupLens(GROUPLENS_RATINGS.replace('4.0', '7'), GROUPLENS_MOVIES)).toThrow(
      /record 2: rating "7"/,
    );
    expect(() =>
      convertGroupLens(GROUPLENS_RATINGS.replace('964982703', '2000-01-01'), GROUPLENS_MOVIES),
    ).toThrow(MovielensFormatError);
    expect(() => convertGroupLens(GROUPLENS_RATINGS + '9,999,4,1\n', GROUPLENS_MOVIES)).toThrow(/movie 999/);
    expect(() => convertGroupLens('user,movie\n', GROUPLENS_MOVIES)).toThrow(/no "userId" column/);
    expect(() => convertGroupLens(GROUPLENS_RATINGS + '1,1\n', GROUPLENS_MOVIES)).toThrow(/2 fields/);
  });
});

/** What R's write.csv(dslabs::movielens, row.names = FALSE, na = "") produces (real rows, abridged). */
const DSLABS_EXPORT = `"movieId","title","year","genres","userId","rating","timestamp"
31,"Dangerous Minds",1995,"Drama",1,2.5,1260759144
1029,"Dumbo",1941,"Animation|Children|Drama|Musical",1,3,1260759179
51372,"""Great Performances"" Cats",1998,"Musical",207,0.5,1258440271
1029,"Dumbo",1941,"Animation|Children|Drama|Musical",2,4,1260759200
108583,,,"Comedy",73,5,1435472609
151307,,,"(no genres listed)",547,4.5,1472400501
`;

describe('dslabs (R write.csv) conversion', () => {
  const out = convertDslabsExport(DSLABS_EXPORT);

  test('one rating row per input row, in order', () => {
    const r = rows(out.ratingsCsv);
    expect(r[0]).toEqual([...INTERACTION_COLUMNS]);
    expect(r.slice(1, 3)).toEqual([
      ['1', '31', 'rating', '2.5', '2009-12-14T02:52:24Z'],
      ['1', '1029', 'rating', '3', '2009-12-14T02:52:59Z'],
    ]);
    expect(r).toHaveLength(7);
    expect(out.counts).toEqual({ ratings: 6, users: 5, items: 5 });
  });

  test('distinct movies become items; year goes back into the title; NA stays empty', () => {
    const items = rows(out.itemsCsv).slice(1);
    expect(items.map((i) => i[0])).toEqual(['31', '1029', '51372', '108583', '151307']);
    expect(items[1]).toEqual([
      '1029',
      'Animation',
      '',
      'Dumbo (1941)',
      'true',
      'Animation|Children|Drama|Musical',
    ]);
    expect(items[2][3]).toBe('"Great Performances" Cats (1998)');
    expect(items[3]).toEqual(['108583', 'Comedy', '', '', 'true', 'Comedy']);
    expect(items[4][1]).toBe('');
  });

  test('format drift is caught', () => {
    expect(() => convertDslabsExport(DSLABS_EXPORT.replace('"userId"', '"user"'))).toThrow(
      /no "userId" column/,
    );
    expect(() => convertDslabsExport(DSLABS_EXPORT.replace(',1995,', ',95,'))).toThrow(/year "95"/);
  });

  test('published sizes are checked as warnings', () => {
    expect(countWarnings('dslabs', EXPECTED_COUNTS.dslabs)).toEqual([]);
    expect(countWarnings('dslabs', out.counts)).toHaveLength(3);
  });
});

describe('completeness of a fetched copy', () => {
  const manifest = { counts: { ratings: 2, users: 1, items: 1 } } as DatasetManifest;
  const ratings =
    'user_id,item_id,event_type,rating,timestamp\n1,1,rating,4,2000-01-01T00:00:00Z\n1,2,rating,3,2000-01-01T00:00:01Z\n';
  const items = 'item_id,category,price,title,in_stock,genres\n1,Drama,,"Line\nbreak",true,Drama\n';

  test('counts come from the files', () => {
    expect(countLines(ratings)).toBe(2);
    expect(countLines(ratings.trimEnd())).toBe(2);
    expect(countCsvRecords(items)).toBe(1);
    expect(incompleteReason(manifest, ratings, items)).toBeUndefined();
    expect(incompleteReason(manifest, ratings.split('\n').slice(0, 2).join('\n') + '\n', items)).toMatch(
      /1 rows/,
    );
  });

  test('a folder without dataset.json is incomplete', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-ml-empty-'));
    try {
      expect(checkExisting(dir)).toEqual({ complete: false, reason: 'no dataset.json' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const rscript = findExecutable('Rscript');
const describeWithR = rscript ? describe : describe.skip;
if (!rscript) {
  console.warn(
    `SKIPPED dslabs integration test: Rscript is not on PATH. Install with: ${APT_INSTALL_COMMAND}`,
  );
}

describeWithR(`dslabs export through Rscript (needs: ${APT_INSTALL_COMMAND})`, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-ml-'));
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  test('exports 100,004 ratings by 671 users, then skips when already complete', async () => {
    const log: string[] = [];
    const opts = {
      out,
      source: 'dslabs' as const,
      install: false,
      force: false,
      connectTimeoutMs: 1000,
      log: (s: string) => log.push(s),
    };
    const first = await fetchMovielens(opts);
    expect(first.skipped).toBe(false);
    expect(first.manifest.counts).toEqual({ ratings: 100004, users: 671, items: 9066 });
    expect(first.warnings).toEqual([]);
    const ratings = fs.readFileSync(path.join(out, 'ratings.csv'), 'utf8');
    const lines = ratings.split('\n');
    expect(lines[0]).toBe(INTERACTION_COLUMNS.join(','));
    expect(lines[1]).toBe('1,31,rating,2.5,2009-12-14T02:52:24Z');
    expect(new Set(lines.slice(1, -1).map((l) => l.split(',')[0])).size).toBe(671);
    expect(
      lines.slice(1, -1).every((l) => /^\d+,\d+,rating,\d(\.5)?,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(l)),
    ).toBe(true);
    const items = parseCsv(fs.readFileSync(path.join(out, 'items.csv'), 'utf8'));
    expect(items).toHaveLength(9067);
    expect(items.every((r) => r.length === 6)).toBe(true);
    expect(fs.readdirSync(out).sort()).toEqual(['dataset.json', 'items.csv', 'ratings.csv']);

    const second = await fetchMovielens(opts);
    expect(second.skipped).toBe(true);
    expect(second.manifest.fetched_at).toBe(first.manifest.fetched_at);
  });
});
