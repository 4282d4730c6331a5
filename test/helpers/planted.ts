/** The planted-clusters fixture the model tests share: 300 users, 200 items, 5 clusters (models/synthetic.ts). */
import { buildUserItemsCSR, Interactions, MFConfig } from '../../models/mf';
import { plantedClusters } from '../../models/synthetic';
import { hashTitleTokens, ItemFeatures, priceBuckets } from '../../models/two-tower';

export const ds = plantedClusters({ numUsers: 300, numItems: 200, numClusters: 5, perUser: 15, seed: 3 });
export const data: Interactions = { ...ds.train, numUsers: ds.numUsers, numItems: ds.numItems };
export const seen = buildUserItemsCSR(ds.train.userIdx, ds.train.itemIdx, ds.numUsers);
/** A small, fast MF configuration that still recovers the clusters. */
export const smallMF: Partial<MFConfig> = { dim: 16, lr: 0.05, l2: 1e-4, batchSize: 256, seed: 5 };

/** Item metadata that carries the cluster: category = cluster, and a cluster word in every title (T tokens). */
export function plantedItems(T: number): ItemFeatures {
  return {
    category: ds.itemCluster,
    numCategories: 5,
    priceBucket: priceBuckets(
      Array.from({ length: 200 }, (_, i) => 5 + i),
      4,
    ).bucket,
    numPriceBuckets: 4,
    titleTokens: hashTitleTokens(
      Array.from({ length: 200 }, (_, i) => `Shade${ds.itemCluster[i]} product #${i}`),
      512,
      T,
    ),
    maxTitleTokens: T,
    numTokenBuckets: 512,
  };
}
