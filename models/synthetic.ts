/**
 * Seeded synthetic interaction data for tests and benchmarks (no tfjs needed).
 */
import { Rng } from './rng';

export interface PlantedDataset {
  numUsers: number;
  numItems: number;
  numClusters: number;
  /** Cluster per user / item (items are also the "category" in two-tower tests). */
  userCluster: Int32Array;
  itemCluster: Int32Array;
  train: { userIdx: Int32Array; itemIdx: Int32Array };
  /** One held-out in-cluster item per user (never in train for that user). */
  test: { userIdx: Int32Array; itemIdx: Int32Array };
}

/**
 * Users and items split into clusters; each user interacts with `perUser` distinct items, a fraction `inCluster` from
 * its own cluster (uniformly) and the rest from a global popularity skew, so popularity is a non-trivial baseline
 * but only collaborative structure reveals the cluster.
 */
export function plantedClusters(opts: {
  numUsers: number;
  numItems: number;
  numClusters: number;
  perUser: number;
  inCluster?: number;
  seed?: number;
}): PlantedDataset {
  const { numUsers, numItems, numClusters, perUser } = opts;
  const inCluster = opts.inCluster ?? 0.8;
  const rng = new Rng(opts.seed ?? 7);
  const userCluster = Int32Array.from({ length: numUsers }, (_, u) => u % numClusters);
  const itemCluster = Int32Array.from({ length: numItems }, (_, i) => i % numClusters);
  const byCluster: number[][] = Array.from({ length: numClusters }, () => []);
  for (let i = 0; i < numItems; i++) byCluster[itemCluster[i]].push(i);
  const tu: number[] = [];
  const ti: number[] = [];
  const hu: number[] = [];
  const hi: number[] = [];
  for (let u = 0; u < numUsers; u++) {
    const own = byCluster[userCluster[u]];
    const chosen = new Set<number>();
    let guard = 0;
    while (chosen.size < perUser + 1 && guard++ < 100 * perUser) {
      const i =
        rng.nextFloat() < inCluster
          ? own[rng.nextInt(own.length)]
          : Math.floor(Math.pow(rng.nextFloat(), 3) * numItems); // skewed: low ids popular
      chosen.add(i);
    }
    const list = [...chosen];
    // Hold out one in-cluster item.
    const hold = list.findIndex((i) => itemCluster[i] === userCluster[u]);
    list.forEach((i, k) => {
      if (k === hold) {
        hu.push(u);
        hi.push(i);
      } else {
        tu.push(u);
        ti.push(i);
      }
    });
  }
  return {
    numUsers,
    numItems,
    numClusters,
    userCluster,
    itemCluster,
    train: { userIdx: Int32Array.from(tu), itemIdx: Int32Array.from(ti) },
    test: { userIdx: Int32Array.from(hu), itemIdx: Int32Array.from(hi) },
  };
}

/** n random interactions with a power-law item popularity (for throughput benchmarks). */
export function randomInteractions(
  n: number,
  numUsers: number,
  numItems: number,
  seed = 1,
): { userIdx: Int32Array; itemIdx: Int32Array; weight: Float32Array } {
  const rng = new Rng(seed);
  const userIdx = new Int32Array(n);
  const itemIdx = new Int32Array(n);
  const weight = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    userIdx[k] = rng.nextInt(numUsers);
    itemIdx[k] = Math.floor(Math.pow(rng.nextFloat(), 2) * numItems);
    weight[k] = 1 + (rng.nextU32() & 3);
  }
  return { userIdx, itemIdx, weight };
}
