import { createCipheriv, createHash, randomFillSync } from 'node:crypto';

/**
 * Random sources for the privacy library.
 *
 * Every noise sampler draws from a `SecureRng`, which only ever consumes uniformly random *bytes* from a
 * `RandomSource` and builds everything else (integers, exact Bernoulli trials, doubles) from them with exact
 * integer arithmetic. Two sources exist:
 *  - `CryptoRandomSource`: the operating system CSPRNG (`crypto.randomFillSync`, the same generator as
 *    `crypto.randomBytes`/`crypto.randomInt`). This is what production uses (`createSecureRng()`).
 *  - `SeededRandomSource`: an AES-256-CTR keystream keyed by SHA-256 of a seed, so tests are reproducible while the
 *    bit stream is still of cryptographic quality (a weak PRNG such as Math.random or a LCG would make the
 *    statistical tests meaningless and, in production, the noise predictable).
 *
 * Math.random is never used: its output is predictable from a few observations, which would let an attacker
 * subtract the noise.
 */

/** A source of uniformly random bytes. Implementations must be cryptographically secure. */
export interface RandomSource {
  /** Overwrites `buf` with uniformly random bytes. */
  fill(buf: Uint8Array): void;
}

/** The OS CSPRNG. */
export class CryptoRandomSource implements RandomSource {
  fill(buf: Uint8Array): void {
    randomFillSync(buf);
  }
}

/**
 * Deterministic, cryptographic-quality stream: AES-256 in counter mode over a zero plaintext, key = SHA-256 of a
 * domain tag and the seed. For tests and reproducible simulations only: anyone who knows the seed knows the noise.
 */
export class SeededRandomSource implements RandomSource {
  private readonly cipher;

  constructor(seed: string | Uint8Array) {
    const key = createHash('sha256')
      .update('recforge/privacy/seeded-rng/v1\0')
      .update(typeof seed === 'string' ? Buffer.from(seed, 'utf8') : seed)
      .digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  fill(buf: Uint8Array): void {
    const ks = this.cipher.update(Buffer.alloc(buf.length));
    buf.set(ks);
  }
}

const POOL_BYTES = 4096;
const TWO_32 = 4294967296;
const TWO_52 = 4503599627370496;

/** Number of bits needed to write n (n >= 0): bitLength(0) = 0, bitLength(1) = 1, bitLength(255) = 8. */
export function bitLength(n: bigint): number {
  if (n < 0n) throw new RangeError('bitLength of a negative number');
  return n === 0n ? 0 : n.toString(2).length;
}

/**
 * Secure random values built exactly from random bytes. Not thread-safe across workers (each worker owns one).
 * Bytes are pooled so that the many small draws of the rejection samplers do not each pay a syscall or cipher call.
 */
export class SecureRng {
  private pool = new Uint8Array(POOL_BYTES);
  private pos = POOL_BYTES;

  constructor(private readonly source: RandomSource) {}

  /** n fresh random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      if (this.pos >= POOL_BYTES) this.refill();
      const take = Math.min(n - off, POOL_BYTES - this.pos);
      out.set(this.pool.subarray(this.pos, this.pos + take), off);
      this.pos += take;
      off += take;
    }
    return out;
  }

  private refill(): void {
    this.source.fill(this.pool);
    this.pos = 0;
  }

  private byte(): number {
    if (this.pos >= POOL_BYTES) this.refill();
    return this.pool[this.pos++];
  }

  /** Uniform integer in [0, 2^32). */
  uint32(): number {
    return ((this.byte() << 24) | (this.byte() << 16) | (this.byte() << 8) | this.byte()) >>> 0;
  }

  /** Uniform integer in [0, 2^64). */
  uint64(): bigint {
    return (BigInt(this.uint32()) << 32n) | BigInt(this.uint32());
  }

  /** Uniform integer with exactly `bits` random bits, i.e. in [0, 2^bits). */
  randomBits(bits: number): bigint {
    if (!Number.isInteger(bits) || bits < 0)
      throw new RangeError(`bits must be a non-negative integer: ${bits}`);
    if (bits === 0) return 0n;
    const nBytes = Math.ceil(bits / 8);
    const b = this.bytes(nBytes);
    const excess = nBytes * 8 - bits;
    b[0] &= 0xff >>> excess;
    return BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex'));
  }

  /**
   * Uniform integer in [0, n) for a safe integer n >= 1, by rejection sampling of bitLength(n - 1) random bits
   * (acceptance probability >= 1/2; no modulo bias).
   */
  uniformInt(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1)
      throw new RangeError(`uniformInt bound must be a safe integer >= 1: ${n}`);
    if (n === 1) return 0;
    if (n <= TWO_32) {
      const bits = 32 - Math.clz32(n - 1);
      const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
      for (;;) {
        const x = (this.uint32() & mask) >>> 0;
        if (x < n) return x;
      }
    }
    return Number(this.uniformBigInt(BigInt(n)));
  }

  /** Uniform integer in [0, n) for a bigint n >= 1 (rejection sampling, no modulo bias). */
  uniformBigInt(n: bigint): bigint {
    if (n < 1n) throw new RangeError(`uniformBigInt bound must be >= 1: ${n}`);
    if (n === 1n) return 0n;
    if (n <= BigInt(TWO_32)) return BigInt(this.uniformInt(Number(n)));
    const bits = bitLength(n - 1n);
    for (;;) {
      const x = this.randomBits(bits);
      if (x < n) return x;
    }
  }

  /**
   * Exact Bernoulli(num/den) for integers 0 <= num, 0 < den: true iff a uniform integer in [0, den) is below num.
   * No floating point is involved, so the probability is exactly the rational given.
   */
  bernoulli(num: bigint, den: bigint): boolean {
    if (den <= 0n) throw new RangeError('bernoulli denominator must be positive');
    if (num < 0n) throw new RangeError('bernoulli numerator must be non-negative');
    if (num === 0n) return false;
    if (num >= den) return true;
    return this.uniformBigInt(den) < num;
  }

  /** A fair coin. */
  coin(): boolean {
    return (this.byte() & 1) === 1;
  }

  /**
   * k / 2^53 for uniform k in [0, 2^53): a uniform double on the 2^-53 grid of [0, 1).
   * SAFE ONLY where the output does not feed a privacy mechanism (statistics in tests, utility-only randomness):
   * small values are coarse (no double below 2^-53 except 0 is possible), which is exactly the kind of gap that
   * floating-point attacks on naive Laplace samplers exploit. Mechanisms use `uniformOpenFullPrecision`.
   */
  uniform53(): number {
    const hi = this.uint32() >>> 11; // 21 bits
    const lo = this.uint32(); // 32 bits
    return (hi * TWO_32 + lo) / 9007199254740992;
  }

  /**
   * A uniform draw from (0, 1) with full floating-point precision (Mironov 2012, "U*"): every double in (0, 1) is
   * returned with probability proportional to the length of the interval of reals that round (down) to it.
   * The binary exponent is geometric (count of leading zero bits of an infinite random bit string) and the 52
   * mantissa bits are uniform, so the result is in [2^-g, 2^(1-g)) with probability 2^-g, uniform inside.
   * Values never equal 0 or 1, so log(U) is always finite and non-zero-safe.
   */
  uniformOpenFullPrecision(): number {
    let g = 1;
    // Geometric(1/2) exponent: consume 32 bits at a time. Capped at 1022 so the result stays a normal double
    // (reaching the cap has probability 2^-1021).
    for (;;) {
      const w = this.uint32();
      if (w !== 0) {
        g += Math.clz32(w);
        break;
      }
      g += 32;
      if (g > 1022) {
        g = 1022;
        break;
      }
    }
    if (g > 1022) g = 1022;
    const mantissa = (this.uint32() >>> 12) * TWO_32 + this.uint32(); // 20 + 32 = 52 bits
    // (1 + m / 2^52) is exact; multiplying by the power of two 2^-g is exact for normal results.
    return (1 + mantissa / TWO_52) * Math.pow(2, -g);
  }

  /** A fresh random secret as lowercase hex (e.g. the key for hash-based sampling in SQL). */
  secretHex(nBytes = 32): string {
    return Buffer.from(this.bytes(nBytes)).toString('hex');
  }

  /** In-place Fisher-Yates shuffle with exact uniform indices. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.uniformInt(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

/** The production generator: OS CSPRNG. */
export function createSecureRng(): SecureRng {
  return new SecureRng(new CryptoRandomSource());
}

/** A reproducible generator for tests and simulations (AES-256-CTR keyed by the seed). Never for real releases. */
export function createSeededRng(seed: string | Uint8Array): SecureRng {
  return new SecureRng(new SeededRandomSource(seed));
}
