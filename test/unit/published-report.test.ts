import { buildPublishedReport, gini, renderPublishedReport } from '../../analytics/published-report';

const privacy = {
  epsilon: 4,
  delta: 1e-6,
  rho: 0.1,
  mechanism: 'discrete-gaussian',
  window: '2026-11-23',
  params: {},
};

describe('published report', () => {
  test('gini: 0 for equal shares, (n-1)/n when one item holds everything, negatives clamped', () => {
    expect(gini([5, 5, 5, 5])).toBeCloseTo(0, 12);
    expect(gini([0, 0, 0, 8])).toBeCloseTo(3 / 4, 12);
    expect(gini([-3, 0, 0, 8])).toBeCloseTo(3 / 4, 12);
    expect(gini([])).toBe(0);
  });

  test('is post-processing of the per-item counts only: totals, deciles and categories add up', () => {
    const items = Array.from({ length: 20 }, (_, i) => ({
      itemId: `i${String(i).padStart(2, '0')}`,
      users: i === 3 ? -4 : 20 - i, // a negative noisy count is clamped to zero
      category: i % 2 ? 'shoes' : null,
    }));
    const r = buildPublishedReport({
      datasetId: 'ds',
      modelVersion: 'v1',
      generatedAt: '2026-11-23T00:00:00Z',
      privacy,
      items,
      topN: 5,
    });
    expect(r.basis).toBe('differentially-private');
    expect(r.catalogueItems).toBe(20);
    expect(r.itemsWithUsers).toBe(19);
    expect(r.topItems.map((t) => t.itemId)).toEqual(['i00', 'i01', 'i02', 'i04', 'i05']);
    const total = items.reduce((s, i) => s + Math.max(0, i.users), 0);
    expect(r.categories.reduce((s, c) => s + c.users, 0)).toBe(total);
    expect(r.categories.find((c) => c.category === '(none)')).toBeDefined();
    expect(r.popularityDeciles.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
    // Top decile = the two most popular items.
    expect(r.popularityDeciles[0]).toBeCloseTo((20 + 19) / total, 12);
    expect(r.longTailShare).toBeCloseTo(1 - (20 + 19 + 18 + 16) / total, 12);
  });

  test('says what it is based on, and escapes ids in HTML', () => {
    const exact = buildPublishedReport({
      datasetId: 'ds',
      modelVersion: 'v1',
      generatedAt: 'now',
      privacy: null,
      items: [{ itemId: '<script>x</script>', users: 3, category: 'a&b' }],
    });
    expect(exact.basis).toBe('exact');
    const html = renderPublishedReport(exact);
    expect(html).toContain('Not differentially private');
    expect(html).not.toContain('<script>x');
    expect(html).toContain('&lt;script&gt;');
    const dp = renderPublishedReport(
      buildPublishedReport({ datasetId: 'ds', modelVersion: 'v1', generatedAt: 'now', privacy, items: [] }),
    );
    expect(dp).toContain('Differentially private');
    expect(dp).toContain('ε = 4.000');
  });
});
