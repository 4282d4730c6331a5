import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** One measured value; a baseline measured in the same run makes the ratio comparable across machines. */
export interface BenchResult {
  metric: string;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  ratio?: number;
}

export interface BenchFile {
  name: string;
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; platform: string; node: string };
  params?: Record<string, unknown>;
  results: BenchResult[];
}

export function machine(): BenchFile['machine'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
  };
}

export function writeResults(
  root: string,
  name: string,
  results: BenchResult[],
  params?: Record<string, unknown>,
): string {
  const dir = path.join(root, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const body: BenchFile = { name, date: new Date().toISOString(), machine: machine(), params, results };
  fs.writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  return file;
}

/** Samples this process's RSS (DuckDB and tfjs allocate natively, inside it) and keeps the peak. */
export class RssSampler {
  private peak = process.memoryUsage().rss;
  private timer: NodeJS.Timeout;
  constructor(everyMs = 50) {
    this.timer = setInterval(() => {
      this.peak = Math.max(this.peak, process.memoryUsage().rss);
    }, everyMs);
  }
  reset(): void {
    this.peak = process.memoryUsage().rss;
  }
  stop(): number {
    clearInterval(this.timer);
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
    return this.peak;
  }
  get peakBytes(): number {
    return Math.max(this.peak, process.memoryUsage().rss);
  }
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}
