import {
  discreteGaussianNormalizer,
  discreteGaussianPmf,
  discreteLaplacePmf,
  bernoulliExpNeg,
  sampleDiscreteGaussian,
  sampleDiscreteLaplace,
} from '../../privacy/discrete';
import {
  discreteGaussianMechanism,
  discreteGaussianSpend,
  discreteLaplaceMechanism,
  discreteLaplaceSpend,
  gaussianMechanism,
  gaussianSpend,
  laplaceMechanism,
  laplaceSpend,
  powerOfTwoAtLeast,
  snappedLaplace,
} from '../../privacy/mechanisms';
import {
  itemEventCountSensitivity,
  itemValueSumSensitivity,
  totalEventCountSensitivity,
} from '../../privacy/bounding';
import { createSeededRng } from '../../privacy/rng';
import type { Sensitivity } from '../../privacy/sensitivity';

/** Upper 99.9% point of chi-square with k degrees of freedom (Wilson-Hilferty). */
function chiSquareCritical999(k: number): number {
  const z = 3.090232;
  return k * Math.pow(1 - 2 / (9 * k) + z * Math.sqrt(2 / (9 * k)), 3);
}

/**
 * Pearson chi-square of integer samples against a pmf: one bin per value in [-K, K] where K keeps every expected
 * count >= 5, plus two tail bins. Returns the statistic and its degrees of freedom.
 */
function chiSquare(samples: number[], pmf: (x: number) => number): { chi2: number; df: number } {
  const n = samples.length;
  let K = 0;
  while (n * pmf(K + 1) >= 5) K++;
  const observed = new Map<number, number>();
  let lowTail = 0;
  let highTail = 0;
  for (const x of samples) {
    if (x < -K) lowTail++;
    else if (x > K) highTail++;
    else observed.set(x, (observed.get(x) ?? 0) + 1);
  }
  let inside = 0;
  let chi2 = 0;
  for (let x = -K; x <= K; x++) {
    const e = n * pmf(x);
    inside += pmf(x);
    const o = observed.get(x) ?? 0;
    chi2 += ((o - e) * (o - e)) / e;
  }
  const tailP = (1 - inside) / 2;
  for (const o of [lowTail, highTail]) {
    const e = n * tailP;
    if (e > 0) chi2 += ((o - e) * (o - e)) / e;
  }
  return { chi2, df: 2 * K + 2 };
}

const laplaceCdf = (x: number, lambda: number): number =>
  x < 0 ? 0.5 * Math.exp(x / lambda) : 1 - 0.5 * Math.exp(-x / lambda);

const N = 50_000;

describe('exact discrete samplers (CKS 2020)', () => {
  test('Bernoulli(exp(-γ)) has the right frequency for γ in [0, 1] and γ > 1', () => {
    const rng = createSeededRng('bern-exp');
    for (const [num, den] of [
      [0n, 1n],
      [1n, 3n],
      [1n, 1n],
      [7n, 3n],
    ] as Array<[bigint, bigint]>) {
      const p = Math.exp(-Number(num) / Number(den));
      let k = 0;
      for (let i = 0; i < 20_000; i++) if (bernoulliExpNeg(rng, { num, den })) k++;
      expect(Math.abs(k / 20_000 - p)).toBeLessThanOrEqual(4.5 * Math.sqrt((p * (1 - p)) / 20_000) + 1e-12);
    }
  });

  test.each([
    ['integer scale 3', 3n, 1n],
    ['rational scale 7/2', 7n, 2n],
    ['small scale 1/2', 1n, 2n],
  ])('discrete Laplace pmf vs %s: chi-square (50k samples, fixed seed)', (_name, t, s) => {
    const rng = createSeededRng(`dlap-${t}-${s}`);
    const scale = Number(t) / Number(s);
    const samples = Array.from({ length: N }, () => Number(sampleDiscreteLaplace(rng, { num: t, den: s })));
    const { chi2, df } = chiSquare(samples, (x) => discreteLaplacePmf(scale, x));
    expect(chi2).toBeLessThan(chiSquareCritical999(df));
    // Mean 0, variance 2r/(1-r)² with r = e^{-1/scale}.
    const r = Math.exp(-1 / scale);
    const variance = (2 * r) / (1 - r) ** 2;
    const mean = samples.reduce((a, b) => a + b, 0) / N;
    const m2 = samples.reduce((a, b) => a + b * b, 0) / N;
    expect(Math.abs(mean)).toBeLessThan(5 * Math.sqrt(variance / N));
    expect(Math.abs(m2 / variance - 1)).toBeLessThan(0.05);
  });

  test.each([
    ['σ² = 25', 25n, 1n],
    ['σ² = 2/3', 2n, 3n],
    ['σ² = 10.5', 21n, 2n],
  ])('discrete Gaussian pmf vs %s: chi-square (50k samples, fixed seed)', (_name, a, b) => {
    const rng = createSeededRng(`dgauss-${a}-${b}`);
    const sigma = Math.sqrt(Number(a) / Number(b));
    const samples = Array.from({ length: N }, () => Number(sampleDiscreteGaussian(rng, { num: a, den: b })));
    const { chi2, df } = chiSquare(samples, (x) => discreteGaussianPmf(sigma, x));
    expect(chi2).toBeLessThan(chiSquareCritical999(df));
    // Variance of N_Z(0, σ²) is slightly below σ² for small σ; compute it from the pmf.
    let variance = 0;
    for (let y = 1; y < 40 * sigma + 10; y++) variance += 2 * y * y * discreteGaussianPmf(sigma, y);
    const m2 = samples.reduce((s, x) => s + x * x, 0) / N;
    expect(Math.abs(m2 / variance - 1)).toBeLessThan(0.04);
  });

  test('discrete Gaussian normaliser: Poisson summation equals the direct sum at the switch', () => {
    let direct = 1;
    for (let y = 1; y < 400; y++) direct += 2 * Math.exp((-y * y) / (2 * 64));
    expect(Math.abs(discreteGaussianNormalizer(8) / direct - 1)).toBeLessThan(1e-14);
  });

  test('zero variance and invalid parameters', () => {
    const rng = createSeededRng('edge');
    expect(sampleDiscreteGaussian(rng, { num: 0n, den: 1n })).toBe(0n);
    expect(() => sampleDiscreteLaplace(rng, { num: 0n, den: 1n })).toThrow(RangeError);
    expect(() => sampleDiscreteLaplace(rng, { num: 1n, den: 0n })).toThrow(RangeError);
  });
});

describe('snapping Laplace mechanism (Mironov 2012)', () => {
  test('Λ is the smallest power of two >= λ', () => {
    expect([1, 2, 3, 0.75, 1024, 1025, 1e-3].map(powerOfTwoAtLeast)).toEqual([
      1,
      2,
      4,
      1,
      1024,
      2048,
      2 ** -9,
    ]);
  });

  test.each([
    [2, 0],
    [3, 12],
  ])('λ = %d around x = %d: outputs on the Λ grid, mean/variance and KS at grid midpoints', (lambda, x) => {
    const rng = createSeededRng(`snap-${lambda}`);
    const Lambda = powerOfTwoAtLeast(lambda);
    const cal = { lambda, Lambda, bound: 1e6 };
    const out = Array.from({ length: N }, () => snappedLaplace(x, cal, rng));
    expect(out.every((v) => Number.isInteger(v / Lambda))).toBe(true);
    // Exact pmf of the snapped output: P[kΛ] = F((k+½)Λ) - F((k-½)Λ) for F the CDF of x + Laplace(λ).
    const F = (t: number): number => laplaceCdf(t - x, lambda);
    let mean = 0;
    let second = 0;
    for (let k = -2000; k <= 2000; k++) {
      const p = F((k + 0.5) * Lambda) - F((k - 0.5) * Lambda);
      mean += k * Lambda * p;
      second += (k * Lambda) ** 2 * p;
    }
    const variance = second - mean * mean;
    const empMean = out.reduce((a, b) => a + b, 0) / N;
    const empVar = out.reduce((a, b) => a + (b - empMean) ** 2, 0) / N;
    expect(Math.abs(empMean - mean)).toBeLessThan(5 * Math.sqrt(variance / N));
    expect(Math.abs(empVar / variance - 1)).toBeLessThan(0.05);
    // The snapped variable is ≤ kΛ exactly when x + L < (k+½)Λ, so its empirical CDF at the grid points must match
    // the Laplace CDF at the midpoints. KS critical value at α = 0.001: 1.95/√n.
    const sorted = [...out].sort((a, b) => a - b);
    let d = 0;
    let idx = 0;
    for (let k = -200; k <= 200; k++) {
      while (idx < N && sorted[idx] <= k * Lambda) idx++;
      d = Math.max(d, Math.abs(idx / N - F((k + 0.5) * Lambda)));
    }
    expect(d).toBeLessThan(1.95 / Math.sqrt(N));
  });

  test('clamps inputs and outputs to [-B, B]; outputs are on the grid or exactly ±B', () => {
    const rng = createSeededRng('snap-clamp');
    const sens = totalEventCountSensitivity({ maxEventsPerUser: 5, maxEventsPerUserItem: 5 });
    const bound = 100;
    const { value, spend } = laplaceMechanism([1e12, -1e12, 99.9, 0, 50], sens, { epsilon: 1, bound }, rng);
    const Lambda = spend.params.Lambda as number;
    expect(Lambda).toBe(8); // λ = 5/1 (+ a 2^-49·B term) → Λ = 8
    for (const v of value) {
      expect(Math.abs(v)).toBeLessThanOrEqual(bound);
      expect(Math.abs(v) === bound || Number.isInteger(v / Lambda)).toBe(true);
      expect(Object.is(v, -0)).toBe(false);
    }
    // Input clamped to B: around +B the output mass sits at the top.
    const many = laplaceMechanism(new Array<number>(2000).fill(1e12), sens, { epsilon: 1, bound }, rng).value;
    expect(many.filter((v) => v === bound).length).toBeGreaterThan(800);
    expect(Math.min(...many)).toBeGreaterThan(0);
  });

  test('spend: ε as requested, λ = (Δ₁ + d·2^-49·B)/ε rounded up, the dry run equals the release', () => {
    const rng = createSeededRng('snap-spend');
    const sens = itemValueSumSensitivity(
      { maxEventsPerUser: 4, maxEventsPerUserItem: 2 },
      { lower: 0, upper: 5 },
    );
    const dry = laplaceSpend(sens, { epsilon: 0.5, bound: 1000 });
    const rel = laplaceMechanism([1, 2, 3], sens, { epsilon: 0.5, bound: 1000 }, rng);
    expect(rel.spend).toEqual(dry);
    expect(dry).toMatchObject({ mechanism: 'laplace-snapping', epsilon: 0.5, delta: 0, rho: 0.125 });
    const lambda = dry.params.lambda as number;
    const exact = (20 + 4 * 2 ** -49 * 1000) / 0.5;
    expect(lambda).toBeGreaterThanOrEqual(exact);
    expect(lambda / exact - 1).toBeLessThan(1e-14);
    // B must stay below 2^46·λ; the 2^-49·B term in λ makes that automatic unless ε is large.
    expect(() => laplaceSpend(sens, { epsilon: 4, bound: 2 ** 62 })).toThrow(/2\^46/);
  });
});

describe('mechanism API', () => {
  const caps = { maxEventsPerUser: 10, maxEventsPerUserItem: 3 };

  test('mechanisms refuse hand-made sensitivities (compile-time brand and run-time check)', () => {
    const rng = createSeededRng('brand');
    const fake = {
      query: 'x',
      l0: 1,
      l1: 1,
      l2: 1,
      linf: 1,
      integer: true,
      derivedFrom: {},
    } as unknown as Sensitivity;
    expect(() => discreteLaplaceMechanism(3, fake, { epsilon: 1 }, rng)).toThrow(
      /not derived by privacy\/bounding/,
    );
    const revived = JSON.parse(JSON.stringify(itemEventCountSensitivity(caps))) as Sensitivity;
    expect(() => discreteGaussianSpend(revived, { rho: 0.1, delta: 1e-6 })).toThrow(TypeError);
    // @ts-expect-error a plain object literal is not a Sensitivity
    const literal: Sensitivity = { query: 'x', l0: 1, l1: 1, l2: 1, linf: 1, integer: true, derivedFrom: {} };
    expect(literal.l1).toBe(1);
  });

  test('discrete Laplace: integer outputs, scale Δ₁/ε, spend matches dry run, empirical variance', () => {
    const rng = createSeededRng('dlap-mech');
    const sens = itemEventCountSensitivity(caps); // L1 = 10
    const dry = discreteLaplaceSpend(sens, { epsilon: 2 });
    expect(dry).toEqual({
      mechanism: 'discrete-laplace',
      epsilon: 2,
      delta: 0,
      rho: 2,
      sensitivity: { query: 'item-event-count', norm: 'L1', value: 10 },
      params: { scale: 5 },
    });
    const counts = new Array<number>(20_000).fill(100);
    const { value, spend } = discreteLaplaceMechanism(counts, sens, { epsilon: 2 }, rng);
    expect(spend).toEqual(dry);
    expect(value.every(Number.isInteger)).toBe(true);
    const r = Math.exp(-1 / 5);
    const variance = (2 * r) / (1 - r) ** 2;
    const m2 = value.reduce((s, v) => s + (v - 100) ** 2, 0) / value.length;
    expect(Math.abs(m2 / variance - 1)).toBeLessThan(0.06);
    expect(typeof discreteLaplaceMechanism(7, sens, { epsilon: 2 }, rng).value).toBe('number');
    expect(() => discreteLaplaceMechanism([1.5], sens, { epsilon: 2 }, rng)).toThrow(TypeError);
    expect(() =>
      discreteLaplaceMechanism(
        [1],
        itemValueSumSensitivity(caps, { lower: 0, upper: 1 }),
        { epsilon: 1 },
        rng,
      ),
    ).toThrow(/real-valued/);
  });

  test('discrete Gaussian: ρ target gives σ = Δ₂/√(2ρ); (ε,δ) on a scalar uses CKS Thm 7', () => {
    const rng = createSeededRng('dgauss-mech');
    const sens = itemEventCountSensitivity(caps); // L2 = √(3·9 + 1) = √28
    const byRho = discreteGaussianSpend(sens, { rho: 0.5, delta: 1e-6 });
    expect(byRho.params.sigma).toBeCloseTo(Math.sqrt(28) / Math.sqrt(1), 12);
    expect(byRho.rho).toBe(0.5);
    const scalar = totalEventCountSensitivity(caps); // L0 = 1
    const byEps = discreteGaussianSpend(scalar, { epsilon: 1, delta: 1e-6 });
    expect(byEps.params.calibration).toBe('CKS20-Thm7');
    expect(byEps).toMatchObject({ epsilon: 1, delta: 1e-6 });
    const vec = discreteGaussianSpend(sens, { epsilon: 1, delta: 1e-6 });
    expect(vec.params.calibration).toBe('zcdp-CKS20-Cor13');
    const { value } = discreteGaussianMechanism(
      new Array<number>(5000).fill(0),
      scalar,
      { epsilon: 1, delta: 1e-6 },
      rng,
    );
    const sigma = byEps.params.sigma as number;
    const m2 = value.reduce((s, v) => s + v * v, 0) / value.length;
    expect(Math.abs(m2 / (sigma * sigma) - 1)).toBeLessThan(0.08);
  });

  test('real Gaussian: outputs on the power-of-two grid, σ in real units, clamping', () => {
    const rng = createSeededRng('gauss-real');
    const sens = totalEventCountSensitivity(caps); // Δ = 10
    const spend = gaussianSpend(sens, { epsilon: 1, delta: 1e-5 });
    const grid = spend.params.grid as number;
    expect(Number.isInteger(Math.log2(grid))).toBe(true);
    expect(10 / grid).toBeGreaterThanOrEqual(1024);
    // σ in real units is within 0.2% of the continuous analytic Gaussian's 37.3 (rounding overhead <= 1/1024).
    const sigmaReal = spend.params.sigmaReal as number;
    expect(sigmaReal / 37.30631634815945).toBeGreaterThan(0.999);
    expect(sigmaReal / 37.30631634815945).toBeLessThan(1.003);
    const { value } = gaussianMechanism(
      new Array<number>(5000).fill(Math.PI),
      sens,
      { epsilon: 1, delta: 1e-5 },
      rng,
    );
    expect(value.every((v) => Number.isInteger(v / grid))).toBe(true);
    const mean = value.reduce((a, b) => a + b, 0) / value.length;
    expect(Math.abs(mean - Math.PI)).toBeLessThan((5 * sigmaReal) / Math.sqrt(value.length));
    const clamped = gaussianMechanism([1e9], sens, { rho: 10, delta: 1e-6, bound: 50 }, rng).value[0];
    expect(Math.abs(clamped - 50)).toBeLessThan(50);
    expect(() => gaussianMechanism([1e30], sens, { rho: 1, delta: 1e-6 }, rng)).toThrow(/bound/);
  });
});
