import {
  addGaussianNoise,
  calibrateNoiseMultiplier,
  composedDpSgdEpsilon,
  poissonSubsample,
  quantizeSamplingRate,
} from '../../privacy/dp-sgd';
import { createSeededRng } from '../../privacy/rng';

/** Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: far below the KS bound used). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

describe('DP-SGD noise (secure float Gaussian)', () => {
  test('N(0, std²) by mean, std and a Kolmogorov-Smirnov test (fixed seed)', () => {
    const n = 200_000;
    const std = 2.5;
    const out = new Float32Array(n);
    addGaussianNoise(createSeededRng('dp-sgd-noise'), out, std);
    let mean = 0;
    for (const v of out) mean += v;
    mean /= n;
    let varSum = 0;
    for (const v of out) varSum += (v - mean) ** 2;
    const sd = Math.sqrt(varSum / (n - 1));
    expect(Math.abs(mean)).toBeLessThan((4 * std) / Math.sqrt(n));
    // Standard error of the sample std is std/√(2n) ≈ 0.16%: 1% is > 6 standard errors.
    expect(Math.abs(sd / std - 1)).toBeLessThan(0.01);
    const sorted = Float64Array.from(out, (v) => v / std).sort();
    let d = 0;
    for (let i = 0; i < n; i++) {
      const f = normalCdf(sorted[i]);
      d = Math.max(d, Math.abs(f - i / n), Math.abs((i + 1) / n - f));
    }
    expect(d).toBeLessThan(1.63 / Math.sqrt(n)); // KS critical value at α = 0.01
  });

  test('adds to the existing values, a zero std adds nothing, and different seeds give different noise', () => {
    const a = new Float32Array(1000).fill(10);
    addGaussianNoise(createSeededRng('a'), a, 0);
    expect(a.every((v) => v === 10)).toBe(true);
    addGaussianNoise(createSeededRng('a'), a, 1);
    const b = new Float32Array(1000);
    addGaussianNoise(createSeededRng('a'), b, 1);
    a.forEach((v, i) => expect(v).toBeCloseTo(10 + b[i], 4));
    const c = new Float32Array(1000);
    addGaussianNoise(createSeededRng('c'), c, 1);
    expect(c.some((v, i) => v !== b[i])).toBe(true);
    expect(() => addGaussianNoise(createSeededRng('a'), a, -1)).toThrow(RangeError);
  });
});

describe('Poisson subsampling', () => {
  test('the rate is rounded up to the 2^-32 grid the sampler uses, never down', () => {
    for (const q of [0.01, 1 / 3, 0.05, 1e-9, 1]) {
      const { q: qq, threshold } = quantizeSamplingRate(q);
      expect(qq).toBeGreaterThanOrEqual(q);
      expect(qq - q).toBeLessThan(2 ** -32);
      expect(qq).toBe(threshold / 2 ** 32);
    }
    expect(() => quantizeSamplingRate(0)).toThrow(RangeError);
  });

  test('includes each index independently at the rate (count and per-index frequency)', () => {
    const rng = createSeededRng('poisson');
    const { threshold } = quantizeSamplingRate(0.1);
    const n = 50;
    const hits = new Float64Array(n);
    const rounds = 4000;
    let total = 0;
    for (let r = 0; r < rounds; r++) {
      const s = poissonSubsample(rng, n, threshold);
      for (let k = 1; k < s.length; k++) expect(s[k]).toBeGreaterThan(s[k - 1]);
      s.forEach((i) => hits[i]++);
      total += s.length;
    }
    const expected = n * rounds * 0.1;
    expect(Math.abs(total - expected)).toBeLessThan(4 * Math.sqrt(expected * 0.9));
    let chi2 = 0;
    for (const h of hits) chi2 += (h - rounds * 0.1) ** 2 / (rounds * 0.1 * 0.9);
    expect(chi2).toBeLessThan(86.7); // χ²(50) at 0.999
    expect(poissonSubsample(rng, 7, 2 ** 32)).toEqual(Int32Array.from([0, 1, 2, 3, 4, 5, 6]));
  });
});

describe('DP-SGD accounting and calibration', () => {
  test('reproduces the accountant value of a published configuration (MNIST, σ = 1.1)', () => {
    const eps = composedDpSgdEpsilon({
      samplingRate: 256 / 60000,
      noiseMultiplier: 1.1,
      steps: 14063,
      otherRho: 0,
      delta: 1e-5,
    });
    expect(eps).toBeCloseTo(2.596655529521983, 9);
    const sigma = calibrateNoiseMultiplier({
      samplingRate: 256 / 60000,
      steps: 14063,
      otherRho: 0,
      delta: 1e-5,
      targetEpsilon: 2.596655529521983,
    });
    expect(Math.abs(sigma / 1.1 - 1)).toBeLessThan(2e-5);
  });

  test.each([
    [0.05, 400, 0, 2],
    [0.02, 2000, 0.1, 4],
    [0.1, 100, 0.3, 8],
  ])(
    'q=%p, %p steps, other releases ρ=%p: the calibrated σ meets ε ≤ %p and is tight',
    (q, steps, otherRho, target) => {
      const a = { samplingRate: q, steps, otherRho, delta: 1e-6 };
      const sigma = calibrateNoiseMultiplier({ ...a, targetEpsilon: target });
      const eps = composedDpSgdEpsilon({ ...a, noiseMultiplier: sigma });
      expect(eps).toBeLessThanOrEqual(target);
      expect(eps).toBeGreaterThan(target * 0.999);
      // 0.1% less noise no longer fits: the search is not leaving budget on the table.
      expect(composedDpSgdEpsilon({ ...a, noiseMultiplier: sigma * 0.999 })).toBeGreaterThan(target);
    },
  );

  test('the other releases make DP-SGD noisier; a budget they already exhaust is refused', () => {
    const a = { samplingRate: 0.05, steps: 400, delta: 1e-6, targetEpsilon: 4 };
    const alone = calibrateNoiseMultiplier({ ...a, otherRho: 0 });
    const shared = calibrateNoiseMultiplier({ ...a, otherRho: 0.3 });
    expect(shared).toBeGreaterThan(alone);
    expect(() => calibrateNoiseMultiplier({ ...a, otherRho: 5 })).toThrow(/no noise multiplier/);
  });
});
