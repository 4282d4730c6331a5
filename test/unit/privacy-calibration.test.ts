import {
  analyticGaussianSigma,
  discreteGaussianDelta,
  discreteGaussianSigma,
  gaussianDelta,
  gaussianRho,
  gaussianSigmaForRho,
  rhoForApproxDp,
  zcdpToDelta,
  zcdpToEpsilon,
} from '../../privacy/calibration';
import { rdpToEpsilon } from '../../privacy/accountant';
import { doubleToRational, isqrt, logErfc, logGamma, nextUp, normalCdf } from '../../privacy/numeric';

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe('privacy/numeric', () => {
  test('logErfc matches scipy (log(2) + log_ndtr(-z√2), scipy 1.17.1) to 1e-13 relative', () => {
    // Reference values generated with scipy.special in a throwaway venv.
    const ref: Array<[number, number]> = [
      [-3.0, 0.6931361352504468],
      [-0.5, 0.4190391477755596],
      [0.5, -0.7350111298370848],
      [1.0, -1.849605509933249],
      [1.9, -4.93234586278027],
      [2.0, -5.36494126461664],
      [2.1, -5.816010968867557],
      [3.0, -10.720363041981116],
      [5.0, -27.200889545537446],
      [10.0, -102.87988902484493],
      [30.0, -903.9741171106442],
      [100.0, -10005.177585122668],
    ];
    for (const [z, want] of ref) expect(rel(logErfc(z), want)).toBeLessThan(1e-13);
    expect(logErfc(0)).toBeCloseTo(0, 15);
    expect(normalCdf(0)).toBeCloseTo(0.5, 15);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 14);
  });

  test('logGamma matches scipy.special.gammaln, including negative arguments (log|Γ|)', () => {
    const ref: Array<[number, number]> = [
      [0.5, 0.5723649429247],
      [1.5, -0.12078223763524526],
      [-2.5, -0.05624371649767401],
      [-0.1, 2.368961332728789],
      [3.7, 1.428072326665388],
      [10.0, 12.801827480081469],
      [100.5, 361.43554046777757],
      [1025.0, 6078.211884750051],
      [1e-5, 11.512919692895826],
    ];
    for (const [x, want] of ref)
      expect(Math.abs(logGamma(x) - want)).toBeLessThan(1e-12 * Math.max(1, Math.abs(want)));
    expect(logGamma(0)).toBe(Infinity);
    expect(logGamma(-3)).toBe(Infinity);
  });

  test('doubleToRational is exact, nextUp is the next double, isqrt is floor(sqrt)', () => {
    for (const x of [0.1, 1, 3.5, 1e-300, 5e-324, 2 ** 60 + 2 ** 8, 123456.789]) {
      const { num, den } = doubleToRational(x);
      // Exact: num / den reproduces x and den is a power of two.
      expect(den & (den - 1n)).toBe(0n);
      const log2den = den.toString(2).length - 1;
      expect(Number(num) * Math.pow(2, -log2den)).toBe(x);
    }
    expect(doubleToRational(0.1)).toEqual({ num: 3602879701896397n, den: 36028797018963968n });
    expect(nextUp(1)).toBe(1 + Number.EPSILON);
    expect(nextUp(-1)).toBeGreaterThan(-1);
    for (const n of [0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n, (1n << 200n) + 12345n, (10n ** 40n) ** 2n - 1n]) {
      const r = isqrt(n);
      expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
    }
  });
});

describe('privacy/calibration', () => {
  test('analytic Gaussian σ matches dp_accounting.get_sigma_gaussian (v0.6.0) to 1e-9', () => {
    // dp_accounting computes σ for Δ = 1 (Balle & Wang 2018); reference values from get_sigma_gaussian(eps, delta, tol=1e-14).
    const ref: Array<[number, number, number]> = [
      [1.0, 1e-5, 3.730631634815945],
      [0.1, 1e-6, 36.304690426195194],
      [5.0, 1e-6, 0.9800490003092105],
      [0.5, 1e-10, 11.436239995092082],
    ];
    for (const [eps, delta, sigma] of ref) {
      expect(rel(analyticGaussianSigma(eps, delta, 1), sigma)).toBeLessThan(1e-9);
      // Scales linearly with the sensitivity.
      expect(rel(analyticGaussianSigma(eps, delta, 7), 7 * sigma)).toBeLessThan(1e-9);
    }
    // And it is conservative: δ at the returned σ never exceeds the target.
    const s = analyticGaussianSigma(1, 1e-5, 1);
    expect(gaussianDelta(s, 1, 1)).toBeLessThanOrEqual(1e-5);
    expect(gaussianDelta(s * (1 - 1e-6), 1, 1)).toBeGreaterThan(1e-5);
  });

  test('discrete Gaussian δ (CKS Thm 7): exact sums agree with the continuous δ for large σ and bound is safe', () => {
    // For σ >> 1 the discrete and continuous Gaussians have nearly the same privacy curve.
    for (const sigma of [50, 500, 3000]) {
      const dd = discreteGaussianDelta(sigma, 0.05, 10);
      const dc = gaussianDelta(sigma, 0.05, 10);
      expect(rel(dd, dc)).toBeLessThan(0.05);
    }
    // Above σ = 4096 the tails are bounded (not summed): the bound is safe (>= the exact sum just below the switch)
    // and tight (within 0.1%).
    for (const [eps, sens] of [
      [0.002, 16],
      [0.0005, 1],
      [0.01, 100],
    ]) {
      const below = discreteGaussianDelta(4096, eps, sens);
      const above = discreteGaussianDelta(4096 * (1 + 1e-12), eps, sens);
      expect(above).toBeGreaterThanOrEqual(below * (1 - 1e-9));
      expect(rel(above, below)).toBeLessThan(1e-3);
    }
    // Small σ: the discrete δ is computed exactly; σ calibrated meets the target.
    const sigma = discreteGaussianSigma(1, 1e-6, 1);
    expect(discreteGaussianDelta(sigma, 1, 1)).toBeLessThanOrEqual(1e-6);
    expect(discreteGaussianDelta(sigma * 0.999, 1, 1)).toBeGreaterThan(1e-6);
  });

  test('discrete Gaussian δ by brute-force privacy-loss sum for σ = 2, Δ = 1', () => {
    // δ(ε) = Σ_y max(0, P[Y = y] - e^ε P[Y = y - Δ]) computed directly from the pmf.
    const sigma = 2;
    const eps = 0.5;
    let norm = 0;
    for (let y = -200; y <= 200; y++) norm += Math.exp((-y * y) / (2 * sigma * sigma));
    const pmf = (y: number): number => Math.exp((-y * y) / (2 * sigma * sigma)) / norm;
    let direct = 0;
    for (let y = -200; y <= 200; y++) direct += Math.max(0, pmf(y) - Math.exp(eps) * pmf(y - 1));
    expect(rel(discreteGaussianDelta(sigma, eps, 1), direct)).toBeLessThan(1e-9);
  });

  test('zCDP conversions: ρ = Δ²/2σ², improved conversion beats Bun-Steinke and matches dense-order RDP', () => {
    expect(gaussianRho(2, 4)).toBe(0.125);
    expect(gaussianSigmaForRho(0.125, 2)).toBeCloseTo(4, 12);
    for (const [rho, delta] of [
      [0.01, 1e-6],
      [0.5, 1e-6],
      [2, 1e-9],
    ]) {
      const eps = zcdpToEpsilon(rho, delta);
      const classic = rho + 2 * Math.sqrt(rho * Math.log(1 / delta));
      expect(eps).toBeLessThan(classic);
      // The same conversion on a dense grid of orders (ρ-zCDP = (α, αρ)-RDP) lands within 0.1%.
      const orders = Array.from({ length: 20000 }, (_, i) => 1.02 + i * 0.05);
      const viaRdp = rdpToEpsilon(
        orders,
        orders.map((a) => a * rho),
        delta,
      ).epsilon;
      expect(eps).toBeLessThanOrEqual(viaRdp * (1 + 1e-9));
      expect(rel(eps, viaRdp)).toBeLessThan(1e-3);
      // Round trip through zcdpToDelta.
      expect(rel(zcdpToDelta(rho, eps), delta)).toBeLessThan(1e-4);
    }
    const rho = rhoForApproxDp(1, 1e-6);
    expect(zcdpToEpsilon(rho, 1e-6)).toBeLessThanOrEqual(1);
    expect(zcdpToEpsilon(rho * 1.001, 1e-6)).toBeGreaterThan(1);
  });

  test('rejects invalid parameters', () => {
    expect(() => analyticGaussianSigma(0, 1e-5, 1)).toThrow(RangeError);
    expect(() => analyticGaussianSigma(1, 0, 1)).toThrow(RangeError);
    expect(() => analyticGaussianSigma(1, 1e-5, -1)).toThrow(RangeError);
    expect(() => zcdpToEpsilon(-1, 1e-5)).toThrow(RangeError);
  });
});
