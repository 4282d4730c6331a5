import { bitLength, createSecureRng, createSeededRng, SecureRng, type RandomSource } from '../../privacy/rng';

/** Upper 99.9% point of chi-square with k degrees of freedom (Wilson-Hilferty; accurate to ~1% for k >= 3). */
function chiSquareCritical999(k: number): number {
  const z = 3.090232;
  return k * Math.pow(1 - 2 / (9 * k) + z * Math.sqrt(2 / (9 * k)), 3);
}

describe('privacy/rng', () => {
  test('seeded streams are reproducible and seed-dependent', () => {
    const a = createSeededRng('seed-1');
    const b = createSeededRng('seed-1');
    const c = createSeededRng('seed-2');
    const xa = Array.from({ length: 8 }, () => a.uint64());
    const xb = Array.from({ length: 8 }, () => b.uint64());
    const xc = Array.from({ length: 8 }, () => c.uint64());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
    for (const x of xa) expect(x >= 0n && x < 1n << 64n).toBe(true);
  });

  test('production source draws from the OS CSPRNG (two generators disagree)', () => {
    const a = createSecureRng();
    const b = createSecureRng();
    expect(a.secretHex()).toMatch(/^[0-9a-f]{64}$/);
    expect(a.uint64()).not.toEqual(b.uint64());
  });

  test('byte pooling does not change the stream: bytes(n) chunks concatenate to the same sequence', () => {
    const a = createSeededRng('pool');
    const b = createSeededRng('pool');
    const big = Buffer.from(a.bytes(10_000));
    const parts: Buffer[] = [];
    for (const n of [1, 4095, 1, 5000, 903]) parts.push(Buffer.from(b.bytes(n)));
    expect(Buffer.concat(parts).equals(big)).toBe(true);
  });

  test('bitLength and randomBits stay in range', () => {
    expect([0n, 1n, 2n, 255n, 256n, (1n << 64n) - 1n].map(bitLength)).toEqual([0, 1, 2, 8, 9, 64]);
    const rng = createSeededRng('bits');
    let bad = 0;
    for (const bits of [1, 7, 8, 9, 31, 33, 64, 100]) {
      let top = 0;
      for (let i = 0; i < 200; i++) {
        const x = rng.randomBits(bits);
        if (!(x >= 0n && x < 1n << BigInt(bits))) bad++;
        if (x >> BigInt(bits - 1) === 1n) top++;
      }
      // The top bit is really random (not masked away): ~100 of 200.
      expect(top).toBeGreaterThan(60);
      expect(top).toBeLessThan(140);
    }
    expect(bad).toBe(0);
  });

  test('uniformInt has no modulo bias (chi-square over 7 and 1000 buckets)', () => {
    const rng = createSeededRng('uniform-int');
    for (const n of [7, 1000]) {
      const draws = 60_000;
      const counts = new Array<number>(n).fill(0);
      for (let i = 0; i < draws; i++) counts[rng.uniformInt(n)]++;
      const e = draws / n;
      const chi2 = counts.reduce((s, o) => s + ((o - e) * (o - e)) / e, 0);
      expect(chi2).toBeLessThan(chiSquareCritical999(n - 1));
    }
  });

  test('uniformBigInt covers large ranges uniformly (top-bit frequency)', () => {
    const rng = createSeededRng('uniform-big');
    const n = (1n << 80n) + 12345n;
    let high = 0;
    let bad = 0;
    const draws = 20_000;
    for (let i = 0; i < draws; i++) {
      const x = rng.uniformBigInt(n);
      if (!(x >= 0n && x < n)) bad++;
      if (x >= n / 2n) high++;
    }
    expect(bad).toBe(0);
    expect(Math.abs(high / draws - 0.5)).toBeLessThan(4 * Math.sqrt(0.25 / draws));
  });

  test('bernoulli(num/den) is exact in frequency and handles 0 and 1', () => {
    const rng = createSeededRng('bern');
    expect(rng.bernoulli(0n, 5n)).toBe(false);
    expect(rng.bernoulli(5n, 5n)).toBe(true);
    const cases: Array<[bigint, bigint]> = [
      [1n, 3n],
      [2n, 7n],
      [123456789012345678901n, 1000000000000000000000n],
    ];
    for (const [num, den] of cases) {
      const p = Number(num) / Number(den);
      const draws = 40_000;
      let k = 0;
      for (let i = 0; i < draws; i++) if (rng.bernoulli(num, den)) k++;
      expect(Math.abs(k / draws - p)).toBeLessThan(4.5 * Math.sqrt((p * (1 - p)) / draws));
    }
    expect(() => rng.bernoulli(1n, 0n)).toThrow(RangeError);
  });

  test('uniformOpenFullPrecision: in (0,1), tiny values at their true rate, sub-2^-53 values reachable', () => {
    // A source whose first 64 bits are zero: the exponent must keep going below 2^-53 (a 53-bit uniform cannot).
    let calls = 0;
    const zerosThenRandom: RandomSource = {
      fill(buf) {
        const inner = createSeededRng('inner').bytes(buf.length);
        buf.set(inner);
        if (calls++ === 0) buf.fill(0, 0, 8);
      },
    };
    const tiny = new SecureRng(zerosThenRandom).uniformOpenFullPrecision();
    expect(tiny).toBeGreaterThan(0);
    expect(tiny).toBeLessThan(2 ** -64);

    const rng = createSeededRng('u-star');
    const draws = 100_000;
    let below = 0;
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < draws; i++) {
      const u = rng.uniformOpenFullPrecision();
      if (!(u > 0 && u < 1)) outside++;
      sum += u;
      if (u < 2 ** -6) below++;
    }
    expect(outside).toBe(0);
    expect(Math.abs(sum / draws - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / draws));
    const p = 2 ** -6;
    expect(Math.abs(below / draws - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / draws));
  });

  test('uniform53 lies on the 2^-53 grid in [0, 1)', () => {
    const rng = createSeededRng('u53');
    let bad = 0;
    for (let i = 0; i < 1000; i++) {
      const u = rng.uniform53();
      if (!(u >= 0 && u < 1) || !Number.isInteger(u * 2 ** 53)) bad++;
    }
    expect(bad).toBe(0);
  });

  test('shuffle is a permutation with uniform first position', () => {
    const rng = createSeededRng('shuffle');
    const counts = [0, 0, 0, 0, 0];
    let bad = 0;
    for (let i = 0; i < 20_000; i++) {
      const p = rng.shuffle([0, 1, 2, 3, 4]);
      if ([...p].sort().join() !== '0,1,2,3,4') bad++;
      counts[p[0]]++;
    }
    expect(bad).toBe(0);
    const chi2 = counts.reduce((s, o) => s + (o - 4000) ** 2 / 4000, 0);
    expect(chi2).toBeLessThan(chiSquareCritical999(4));
  });
});
