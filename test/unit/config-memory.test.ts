import * as os from 'node:os';
import {
  AUTO_MEMORY_CAP,
  AUTO_MEMORY_FLOOR,
  AUTO_MEMORY_FRACTION,
  WORKER_ACTIVITY_SLOTS,
  autoMemoryBytes,
  autoMemoryLimit,
  findProjectRoot,
  loadConfig,
  parseByteSize,
  parseCgroupMemoryMax,
  type MemoryReader,
} from '../../lib/config';

const GiB = 2 ** 30;
const fake = (total: number, cgroup: number | null): MemoryReader => ({
  totalMemory: () => total,
  cgroupLimit: () => cgroup,
});

describe('duckdb.memoryLimit: auto', () => {
  test('the rule is documented as half the memory over three activities, between 1 and 2 GiB', () => {
    expect(AUTO_MEMORY_FRACTION).toBe(0.5);
    expect(WORKER_ACTIVITY_SLOTS).toBe(3);
    expect(AUTO_MEMORY_FLOOR).toBe(GiB);
    expect(AUTO_MEMORY_CAP).toBe(2 * GiB);
  });

  test('no cgroup limit: a fraction of the machine, shared among the concurrent activities', () => {
    expect(autoMemoryBytes(fake(9 * GiB, null), 3)).toBe(1.5 * GiB);
    expect(autoMemoryBytes(fake(3 * GiB, null), 1)).toBe(1.5 * GiB);
    expect(autoMemoryLimit(fake(9 * GiB, null), 3)).toBe(`${1.5 * GiB}B`);
    expect(parseByteSize(autoMemoryLimit(fake(9 * GiB, null), 3))).toBe(1.5 * GiB);
  });

  test('the cap: a large machine still gives one DuckDB at most 2 GiB (a worker stays under 4 GiB at 20M events)', () => {
    expect(autoMemoryBytes(fake(24 * GiB, null), 3)).toBe(AUTO_MEMORY_CAP);
    expect(autoMemoryBytes(fake(24 * GiB, null), 1)).toBe(AUTO_MEMORY_CAP);
  });

  test('a cgroup v2 memory.max below the machine wins; one above it does not', () => {
    expect(autoMemoryBytes(fake(64 * GiB, 9 * GiB), 3)).toBe(1.5 * GiB);
    expect(autoMemoryBytes(fake(6 * GiB, 600 * GiB), 3)).toBe(GiB);
    expect(autoMemoryBytes(fake(6 * GiB, 600 * GiB), 2)).toBe(1.5 * GiB);
  });

  test('the floor: a small container still gets 1 GiB per DuckDB (it spills rather than fails)', () => {
    expect(autoMemoryBytes(fake(64 * GiB, 2 * GiB), 3)).toBe(AUTO_MEMORY_FLOOR);
    expect(autoMemoryBytes(fake(512 * 2 ** 20, null), 3)).toBe(AUTO_MEMORY_FLOOR);
  });

  test('memory.max text: bytes, or "max" for no limit', () => {
    expect(parseCgroupMemoryMax('4294967296\n')).toBe(4 * GiB);
    expect(parseCgroupMemoryMax('max\n')).toBeNull();
    expect(parseCgroupMemoryMax('')).toBeNull();
    expect(parseCgroupMemoryMax('garbage')).toBeNull();
  });

  test('resolved at load: the default config and an explicit auto give a byte size, sizes pass through', () => {
    const root = findProjectRoot();
    const def = loadConfig({ root, env: {} }).config.duckdb.memoryLimit;
    expect(def).toMatch(/^\d+B$/);
    expect(parseByteSize(def)).toBeGreaterThanOrEqual(AUTO_MEMORY_FLOOR);
    expect(parseByteSize(def)).toBeLessThanOrEqual(Math.max(AUTO_MEMORY_FLOOR, os.totalmem() / 2));
    expect(def).toBe(autoMemoryLimit());
    const explicit = loadConfig({ root, env: {}, overrides: { duckdb: { memoryLimit: 'AUTO' } } }).config;
    expect(explicit.duckdb.memoryLimit).toBe(def);
    const fixed = loadConfig({ root, env: {}, overrides: { duckdb: { memoryLimit: '3GB' } } }).config;
    expect(fixed.duckdb.memoryLimit).toBe('3GB');
  });
});
