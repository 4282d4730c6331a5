import { selectBackend } from '../../models/backend';
import { easeBlendScorer } from '../../models/blend';
import { fitEASE } from '../../models/ease';
import { easeHistoryRows, scoreEASE } from '../../models/ease-score';
import { buildUserItemsCSR, type MFModel } from '../../models/mf';
import { Rng } from '../../models/rng';
import { scoreLinear, type ScoreBlock } from '../../models/score';
import { data } from '../helpers/planted';

beforeAll(async () => {
  await selectBackend('wasm');
});

async function collect(run: (onBlock: (b: ScoreBlock) => void) => Promise<unknown>) {
  const out = new Map<number, { items: number[]; scores: number[] }>();
  await run((b) =>
    b.users.forEach((u, r) =>
      out.set(u, {
        items: Array.from(b.items.subarray(r * b.topN, (r + 1) * b.topN)),
        scores: Array.from(b.scores.subarray(r * b.topN, (r + 1) * b.topN)),
      }),
    ),
  );
  return out;
}

test('the blend scores x_u B + beta (p_u . q_i + b_i) over the kept items; beta 0 is EASE', async () => {
  const { model } = await fitEASE(data, { lambda: 10, maxItems: 150 });
  const rows = easeHistoryRows(model, data);
  const rng = new Rng(1);
  const d = 8;
  const mf: MFModel = {
    kind: 'mf',
    numUsers: data.numUsers,
    numItems: data.numItems,
    dim: d,
    userFactors: Float32Array.from({ length: data.numUsers * d }, () => rng.nextFloat() - 0.5),
    itemFactors: Float32Array.from({ length: data.numItems * d }, () => rng.nextFloat() - 0.5),
    itemBias: Float32Array.from({ length: data.numItems }, () => rng.nextFloat() - 0.5),
  };
  const exclude = buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers);
  const users = Int32Array.from({ length: 40 }, (_, u) => u * 7);
  const ease = await collect((onBlock) => scoreEASE(model, data, { topN: 10, exclude, users, onBlock }));
  const zero = await collect((onBlock) =>
    scoreLinear(easeBlendScorer(model, rows, mf, 0), { topN: 10, exclude, users, onBlock }),
  );
  for (const u of users) {
    expect(zero.get(u)?.items).toEqual(ease.get(u)?.items);
  }
  const beta = 0.7;
  const blend = await collect((onBlock) =>
    scoreLinear(easeBlendScorer(model, rows, mf, beta), { topN: 5, exclude, users, onBlock }),
  );
  const k = model.items.length;
  for (const u of users) {
    const got = blend.get(u) as { items: number[]; scores: number[] };
    const seen = new Set(exclude.itemIdx.subarray(exclude.userPtr[u], exclude.userPtr[u + 1]));
    const all: number[] = [];
    for (let c = 0; c < k; c++) {
      const item = model.items[c];
      if (seen.has(item)) continue;
      let s = 0;
      for (let q = rows.ptr[u]; q < rows.ptr[u + 1]; q++)
        s += rows.val[q] * model.weights[rows.idx[q] * k + c];
      let f = mf.itemBias?.[item] ?? 0;
      for (let e = 0; e < d; e++) f += mf.userFactors[u * d + e] * mf.itemFactors[item * d + e];
      all.push(s + beta * f);
      const at = got.items.indexOf(item);
      if (at >= 0) expect(got.scores[at]).toBeCloseTo(s + beta * f, 4);
    }
    all.sort((a, b) => b - a);
    got.scores.forEach((s, q) => expect(s).toBeCloseTo(all[q], 4));
  }
  expect(() => easeBlendScorer(model, rows, { ...mf, numUsers: 5 }, 1)).toThrow('factor model');
});
