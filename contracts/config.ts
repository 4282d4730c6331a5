import * as os from 'node:os';
import { z } from 'zod';

/** Bytes of a size as DuckDB reads it (decimal KB/MB/GB/TB, binary KiB/MiB/GiB/TiB); NaN when malformed. */
export function parseByteSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.exec(s.trim());
  if (!m) return NaN;
  const unit = m[2].toLowerCase();
  const scale: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
  };
  return Number(m[1]) * scale[unit];
}

/** `auto` (any case): a size the loader resolves from the machine (lib/config/memory.ts). */
export const isAutoSize = (s: string): boolean => s.trim().toLowerCase() === 'auto';

/** Less than this and DuckDB fails on ordinary statements: a limit that can only fail is a config error. */
const MIN_MEMORY = 128 * 2 ** 20;
/**
 * DuckDB memory limits: at least MIN_MEMORY and at most this machine's memory (a limit above it cannot be
 * honoured and turns an out-of-memory condition into the kernel's OOM kill instead of DuckDB's clean error).
 */
const byteSize = z
  .string()
  .regex(
    /^(auto|\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB))$/i,
    'expected auto or a size such as 2GB or 512MiB',
  )
  .refine((s) => isAutoSize(s) || parseByteSize(s) >= MIN_MEMORY, { message: 'at least 128MiB' })
  .refine((s) => isAutoSize(s) || parseByteSize(s) <= os.totalmem(), {
    message: `more than this machine's memory (${(os.totalmem() / 2 ** 30).toFixed(1)} GiB)`,
  });

const DURATION_MS: Record<string, number> = { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5 };
/** Milliseconds of a Temporal-style duration; NaN when malformed. */
export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s);
  return m ? Number(m[1]) * DURATION_MS[m[2]] : NaN;
}
/** Temporal-style durations (`30s`, `5m`, `1h`, `2d`). */
export const durationString = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration such as 30s, 5m, 1h or 2d');
/**
 * A duration within [min, max]: a `0s` timeout is valid Temporal syntax but makes every attempt fail at once
 * (the workflow task then retries forever while holding the dataset lock), and a year-long one hides hangs.
 */
const boundedDuration = (min: string, max: string) =>
  durationString.refine(
    (s) => parseDuration(s) >= parseDuration(min) && parseDuration(s) <= parseDuration(max),
    { message: `expected a duration from ${min} to ${max}` },
  );
/** A regular expression (checked here with JS; DuckDB's RE2 rejects the few constructs JS has beyond it at run time). */
const regexString = z
  .string()
  .min(1)
  .refine(
    (r) => {
      try {
        new RegExp(r);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'expected a valid regular expression' },
  );
const contractColumn = z.enum(['user_id', 'item_id', 'event_type', 'rating', 'timestamp']);
const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'expected letters, digits, dot, dash or underscore');

export const configSchema = z.strictObject({
  dataDir: z.string().min(1),
  storage: z.strictObject({
    /**
     * Where runs, the registry, published output and state live: '' for the data folder (the embedded default),
     * or s3://bucket/prefix for object storage shared by workers on several machines (credentials only from the
     * standard AWS environment variables). dataDir then holds only worker-local scratch and the dev server.
     */
    root: z.union([
      z.literal(''),
      z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'expected s3://bucket[/prefix]'),
    ]),
  }),
  temporal: z.strictObject({
    address: z.string(),
    namespace: identifier,
    devServer: z.strictObject({
      port: z.number().int().min(1).max(65535),
      uiPort: z.number().int().min(1).max(65535),
      dbFile: z.string().min(1),
    }),
    activities: z.strictObject({
      /** Longest a data stage may run before Temporal retries it elsewhere. */
      startToCloseTimeout: boundedDuration('1m', '7d'),
      /** A worker that stops heartbeating this long is presumed dead and the activity is retried. */
      heartbeatTimeout: boundedDuration('1s', '1h'),
      trainingStartToCloseTimeout: boundedDuration('1m', '30d'),
      maximumAttempts: z.number().int().min(1).max(100),
    }),
    taskQueues: z
      .strictObject({ cpu: identifier, training: identifier })
      .refine((q) => q.cpu !== q.training, { message: 'cpu and training task queues must differ' }),
  }),
  dataset: z.strictObject({
    id: identifier,
    interactions: z.string().min(1),
    /**
     * Extra folders runs may read input from (besides the data folder, the project and the OS temp folder).
     * Protected: a workflow input can only name files inside them.
     */
    inputRoots: z.array(z.string().min(1)).max(100),
    items: z.string().optional(),
    /** `synthetic`: generate the interactions file from `generate` when it is missing; `file`: it must exist. */
    source: z.enum(['synthetic', 'file']),
    /**
     * Upper bounds: generation runs before any lock or budget check and writes ~60 bytes per event, so an
     * unbounded `events` from a workflow input filled a disk (5 GB in 3 minutes). 50M events is ~3 GB.
     */
    generate: z.strictObject({
      users: z.number().int().min(10).max(10_000_000),
      items: z.number().int().min(10).max(1_000_000),
      events: z.number().int().min(100).max(50_000_000),
      seed: z.number().int(),
      dirtyRate: z.number().min(0).max(0.5),
      botUsers: z.number().int().min(0).max(10_000),
    }),
    /**
     * Incremental runs: each run reads only the input files not consumed by an earlier successful run (a
     * watermark per dataset), keeps its clean events as a store partition, and trains on the partitions
     * within `historyDays` of the newest event.
     */
    incremental: z.strictObject({
      enabled: z.boolean(),
      historyDays: z.number().positive().max(36500),
    }),
  }),
  schema: z.strictObject({
    eventTypes: z
      .record(z.string().regex(/^[a-z_]+$/, 'event types are lowercase words'), z.number().positive())
      .refine((m) => Object.keys(m).length > 0, { message: 'at least one event type' }),
    rating: z
      .strictObject({
        min: z.number(),
        max: z.number(),
        /**
         * An explicit rating at or above this is a positive (a liked item): what rating-only models learn from when
         * tuning picks the positive signal, and what the evaluation counts as relevant. Implicit events are always
         * positive. Absent: every rating is positive.
         */
        positive: z.number().optional(),
      })
      .refine((r) => r.min < r.max, { message: 'rating.min must be below rating.max' })
      .refine((r) => r.positive === undefined || (r.positive > r.min && r.positive <= r.max), {
        message: 'rating.positive must be above rating.min and at most rating.max',
        path: ['positive'],
      }),
    timestampFloor: z.iso.datetime({ offset: true }),
    /** Longest user or item id in characters; longer ids are quarantined at ingest (bad_id). */
    maxIdLength: z.number().int().min(1).max(65536).default(256),
    /** Id formats (full-match regular expressions); rows whose id does not match are quarantined (bad_id_format). */
    idFormat: z.strictObject({ user: regexString.optional(), item: regexString.optional() }).optional(),
    /** What schema drift in an input file does (see analytics/input-contract.ts). */
    drift: z
      .strictObject({
        /** Columns outside the contract: ignored, named in the run's warnings, or refused. */
        extraColumns: z.enum(['ignore', 'warn', 'fail']),
        /** Other names a contract column may carry in a file (case-insensitive), e.g. user_id: [uid]. */
        renamedColumns: z.partialRecord(contractColumn, z.array(z.string().trim().min(1))),
        /**
         * A typed (Parquet) contract column whose type the contract cannot read, e.g. a BOOLEAN rating: fail
         * the run, or quarantine the file's rows (reason retyped_column).
         */
        retypedColumns: z.enum(['fail', 'quarantine']),
      })
      .superRefine((d, ctx) => {
        const seen = new Map<string, string>();
        for (const [col, aliases] of Object.entries(d.renamedColumns)) {
          for (const a of aliases ?? []) {
            const key = a.toLowerCase();
            if (contractColumn.safeParse(key).success) {
              ctx.addIssue({
                code: 'custom',
                path: ['renamedColumns', col],
                message: `alias '${a}' is itself a contract column`,
              });
            } else if (seen.has(key) && seen.get(key) !== col) {
              ctx.addIssue({
                code: 'custom',
                path: ['renamedColumns', col],
                message: `alias '${a}' is also listed for ${seen.get(key)}`,
              });
            }
            seen.set(key, col);
          }
        }
      }),
  }),
  duckdb: z.strictObject({
    /**
     * A byte size, or `auto`: a fraction of the memory available to the worker process (cgroup v2 memory.max, else
     * the machine's) shared among the activities it runs at once, with a floor — lib/config/memory.ts has the rule.
     * Resolved when the config is loaded: downstream code always sees a byte size.
     */
    memoryLimit: byteSize,
    threads: z.number().int().min(1).max(256),
  }),
  cleaning: z.strictObject({
    /**
     * Bot detection on each user's events per active day. `auto` (the default): only implicit events (views,
     * clicks, …) count toward the rate — explicit ratings are deliberate, and heavy raters are legitimate users,
     * so a user with only ratings is never a bot; `true`: every event counts; `false`: off. The threshold is the
     * adaptive rule below with privacy off and the public botMaxEventsPerDay with privacy on, either way.
     */
    detectBots: z.union([z.boolean(), z.literal('auto')]),
    /** Adaptive bot rule (privacy off): events per active day above max(botMinEventsPerDay, median + botMadK·MAD). */
    botMadK: z.number().positive(),
    botMinEventsPerDay: z.number().positive(),
    /**
     * Public per-user bot rule, used with privacy on: a user whose events per active day exceed this is a bot.
     * A fixed number keeps the rule per-user (the adaptive rule's median/MAD across users would let one user's
     * presence flip other users' bot status, which no sensitivity accounts for).
     */
    botMaxEventsPerDay: z.number().positive(),
    /** Quarantine events of items missing from the item metadata file (when one is given). */
    requireKnownItems: z.boolean(),
    /** Repeats of the same (user, item, event type) within this many seconds are near-duplicates (0: off). */
    nearDuplicateSeconds: z.number().min(0).max(86400),
    /**
     * k-core filter on the training data: users with fewer than `users` distinct items and items with fewer
     * than `items` distinct users are removed, repeatedly until none is left (0: off). Removed rows are
     * quarantined (k_core).
     */
    kCore: z.strictObject({
      users: z.number().int().min(0),
      items: z.number().int().min(0),
      /** Bound on the peeling passes; a filter that has not converged by then stops there (and says so). */
      maxIterations: z.number().int().min(1).max(1000),
    }),
  }),
  quality: z.strictObject({
    minRows: z.number().int().min(0),
    maxQuarantineShare: z.number().min(0).max(1),
    /** Per quarantine reason (e.g. bad_timestamp: 0.01); reasons not listed are bounded only by the total. */
    maxQuarantineShareByReason: z.record(z.string().regex(/^[a-z_]+$/), z.number().min(0).max(1)),
    /** Largest PSI against the previous successful run's profile on any key distribution. */
    maxDriftPsi: z.number().positive(),
    /** Largest relative change of the row count against the previous successful run (0.5 = ±50%). */
    maxVolumeChange: z.number().positive(),
    /** Freshness: the newest clean event may be at most this many days before the run's start (omit: no check). */
    maxStalenessDays: z.number().positive().optional(),
  }),
  evaluation: z.strictObject({
    /**
     * `time`: one global cut, the last `holdoutDays` are the test period (no leakage).
     * `user-time`: each user's most recent `holdoutFraction` of events (leave-last-out style), for logs
     * like MovieLens where users come in bursts and few are active on both sides of a global cut.
     * `auto` (the default): the time cut when it leaves enough evaluable users (training history and a positive
     * new item in the holdout: at least minTimeSplitUsers and minTimeSplitShare of the users with training
     * history), otherwise user-time. With privacy on, `auto` is the public time cut: the choice may not depend on
     * data across users (docs/privacy.md).
     */
    split: z.enum(['auto', 'time', 'user-time']),
    /** `auto` split: fewest evaluable users the time cut must leave (absent: gates.minUsers; never below it). */
    minTimeSplitUsers: z.number().int().min(1).max(10_000_000).optional(),
    /** `auto` split: smallest share of the users with training history that the time cut must leave evaluable. */
    minTimeSplitShare: z.number().min(0).max(1).default(0.02),
    holdoutFraction: z.number().gt(0).lt(1),
    holdoutDays: z.number().positive().max(3650),
    /**
     * `time` split: the instant the holdout starts. Absent: with privacy on, the run date minus holdoutDays (a
     * public instant); with privacy off, the newest clean event minus holdoutDays.
     */
    cutoff: z.iso.datetime({ offset: true }).optional(),
    k: z.number().int().min(1).max(1000),
  }),
  privacy: z.strictObject({
    /** Differential privacy for everything learned from other users' behaviour (see docs/privacy.md). */
    enabled: z.boolean(),
    /**
     * The privacy unit: names the population of users whose data this worker reads (e.g. `shop-eu-customers`).
     * The budget ledger is kept per unit, never per dataset label; required when privacy is on.
     */
    unit: identifier.optional(),
    /**
     * Public estimate of the number of users in the population (not measured from the data): the plan's
     * signal-to-noise estimate before any budget is spent.
     */
    expectedUsers: z.number().int().min(1),
    /**
     * Refuse to spend when the plan's expected signal-to-noise of the co-occurrence counts is below this (0: only
     * report it in the summary).
     */
    minSignalToNoise: z.number().min(0),
    /**
     * DP partition selection, used when no public item catalogue (items file) is given: items are released only
     * if their noisy distinct-user count clears a threshold. `share` of the count releases' zCDP budget goes to
     * it and `deltaShare` of the run's δ to the threshold.
     */
    partitionSelection: z.strictObject({
      share: z.number().gt(0).lt(1),
      deltaShare: z.number().gt(0).lt(1),
    }),
    /** Per-run target (ε, δ) over all releases, composed in zCDP. */
    epsilon: z.number().positive().max(100),
    delta: z.number().gt(0).lt(1e-2),
    caps: z.strictObject({
      maxEventsPerUser: z.number().int().min(1),
      maxEventsPerUserItem: z.number().int().min(1),
      maxItemsPerUser: z.number().int().min(1),
    }),
    /** Share of the run's zCDP budget ρ spent on item popularity; the rest goes to co-occurrence counts. */
    popularityShare: z.number().gt(0).lt(1),
    /** Items (top by noisy popularity) whose pairwise co-occurrence counts are released, zeros included. */
    cooccurrenceItems: z.number().int().min(2).max(2000),
    /**
     * DP-SGD for the learned challenger `mf` (docs/privacy.md). Under `privacy` so that a workflow input cannot
     * change it (protected override): these numbers decide the spend.
     */
    dpSgd: z.strictObject({
      /** L2 bound on one user's gradient contribution to the item tables per step. */
      clipNorm: z.number().positive(),
      /** Poisson sampling rate of users per step (expected batch: rate × users). */
      samplingRate: z.number().gt(0).max(1),
      /** Expected passes over the users: the eval variant takes epochs × ⌈1/rate⌉ steps. */
      epochs: z.number().int().min(1).max(1000),
      /** Fine-tuning passes of the published (all data) variant, accounted the same way. */
      fullEpochs: z.number().int().min(0).max(100),
      /** Share of the run's zCDP budget taken from the count releases for training; σ is calibrated to fill it. */
      trainingShare: z.number().gt(0).lt(1),
      /** Adam learning rate of the DP run (noisy gradients usually want a different one than training.mf.lr). */
      lr: z.number().positive().max(1),
    }),
    budget: z.strictObject({
      epsilon: z.number().positive(),
      delta: z.number().gt(0).lt(1),
      /** Budget window: spends compose within a calendar month or day (UTC) of the run's start. */
      window: z.enum(['month', 'day']),
      /** Lifetime bound on everything ever spent on the unit (nightly runs re-read the same users). */
      lifetime: z.strictObject({
        epsilon: z.number().positive(),
        delta: z.number().gt(0).lt(1),
      }),
    }),
  }),
  gates: z.strictObject({
    /** Absolute floors for the challenger, by metric name without @K (e.g. ndcg, recall, coverage). */
    minimums: z.partialRecord(
      z.enum(['ndcg', 'recall', 'precision', 'hitrate', 'map', 'mrr', 'coverage']),
      z.number().min(0).max(1),
    ),
    /** Largest tolerated drop vs the champion (relative); fails only when the whole 95% CI is below it. */
    maxRegression: z.number().min(0).max(1),
    /** The challenger's NDCG must exceed MostPop's by this relative margin. */
    mostPopMargin: z.number().min(-1).max(10),
    bootstrapSamples: z.number().int().min(50).max(100000),
    /** Fewer evaluated users than this and every metric check fails: a tiny holdout proves nothing. */
    minUsers: z.number().int().min(1).max(10_000_000),
    /**
     * Least mean top-K overlap between the published variant (refit on all data) and the evaluated one, scored
     * from the same history for the evaluated users: bounds how far what ships differs from what was judged.
     */
    minRefitAgreement: z.number().min(0).max(1),
  }),
  registry: z.strictObject({
    /** Relative to dataDir. */
    dir: z.string().min(1),
  }),
  training: z.strictObject({
    /** The model each run proposes as challenger (the other models are baselines beside it). */
    /**
     * `auto` (the default) resolves when the configuration is loaded: `blend` with privacy off, `itemitem` with
     * privacy on (the best model each side measured; resolveChallenger), so turning privacy on needs no other key.
     */
    challenger: z.enum(['auto', 'itemitem', 'mf', 'two-tower', 'ease', 'ials', 'blend']),
    /**
     * The linear challengers' (ease, ials, blend) tuning inside the run (models/linear-tuning.ts): a validation split
     * carved from the training period like the evaluation's holdout, searched within a wall-clock budget.
     */
    tuning: z.strictObject({
      budgetSeconds: z.number().min(1).max(86_400),
      /** Share of users whose validation period is held out of the tuning fits. */
      validationUsers: z.number().gt(0).max(1),
      /** At most this many validation users (every trial scores them). */
      maxValidationUsers: z.number().int().min(10).max(10_000_000),
      metric: z.enum(['ndcg', 'recall']),
      seed: z.number().int(),
    }),
    /** EASE (models/ease.ts): the lambda grid searched from startLambda, recency taus (0: none), item cap. */
    ease: z.strictObject({
      lambdas: z.array(z.number().positive()).min(1).max(50),
      startLambda: z.number().positive(),
      tauDays: z.array(z.number().min(0)).min(1).max(20),
      /** The most popular items EASE covers: its dense k x k inverse needs ~12 k^2 bytes at its peak. */
      maxItems: z.number().int().min(2).max(30_000),
    }),
    /** iALS (models/ials.ts): the grids successive halving searches; iterations = the full budget. */
    ials: z.strictObject({
      factors: z.array(z.number().int().min(2).max(1024)).min(1).max(10),
      regularization: z.array(z.number().min(0)).min(1).max(20),
      alpha: z.array(z.number().min(0)).min(1).max(20),
      iterations: z.number().int().min(1).max(200),
    }),
    /** blend: the weights of iALS beside EASE tried (EASE alone and iALS alone always compete). */
    blend: z.strictObject({ betas: z.array(z.number().positive()).min(1).max(50) }),
    backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']),
    /**
     * Item-item co-occurrence limits: a number, or `auto` (the default), chosen per run by cleaning from the data's
     * own distribution (privacy off) or from public values only (privacy on); see analytics/adaptive.ts. The run
     * summary's `choices.itemItem` says what was used.
     */
    itemItem: z.strictObject({
      /** Most recent distinct items per user that feed co-occurrence and item-item scoring. */
      maxHistoryPerUser: z.union([z.literal('auto'), z.number().int().min(1).max(10000)]),
      /** Neighbours kept per item. */
      neighbours: z.union([z.literal('auto'), z.number().int().min(1).max(10000)]),
    }),
    /** BPR matrix factorisation, the learned challenger. */
    mf: z.strictObject({
      /**
       * `hogwild`: SGD with hand-derived gradients in WebAssembly (models/bpr-fast.ts; `hogwild.*` set its step
       * size, weight decay and threads; popularity negatives, one per positive); `tfjs`: Adam on TensorFlow.js
       * autograd mini-batches (batchSize, lr, l2, negatives, negativeSampling).
       */
      trainer: z.enum(['hogwild', 'tfjs']),
      hogwild: z.strictObject({
        lr: z.number().positive().max(1),
        reg: z.number().min(0),
        /** Worker threads; 1 keeps a seed's result bit-identical (a retried activity reproduces it). */
        threads: z.number().int().min(0).max(64),
      }),
      dim: z.number().int().min(2).max(1024),
      epochs: z.number().int().min(1).max(1000),
      /** Epochs of fine-tuning the evaluated model on all data (the published variant). */
      fullEpochs: z.number().int().min(0).max(100),
      batchSize: z
        .number()
        .int()
        .min(16)
        .max(1 << 20),
      lr: z.number().positive().max(1),
      l2: z.number().min(0),
      negatives: z.number().int().min(1).max(100),
      /**
       * Recency weighting: an interaction's loss weight halves every this many days before the newest event
       * (tastes drift; 0 turns it off).
       */
      recencyHalfLifeDays: z.number().min(0),
      /** Weight each (user, item) by its strongest event type (schema.eventTypes); false: all interactions equal. */
      eventWeights: z.boolean(),
      /** Negatives drawn uniformly or from popularity^0.75 (harder negatives, less popularity bias). */
      negativeSampling: z.enum(['uniform', 'popularity']),
      patience: z.number().int().min(1),
      /** Early-stopping metric on the validation split (validationUsers), at evaluation.k. */
      validationMetric: z.enum(['ndcg', 'recall']),
      /**
       * Share of users whose last training period (shaped like the evaluation holdout: the last holdoutDays, or
       * the latest holdoutFraction per user) is held out of the evaluated model's training as the validation set.
       */
      validationUsers: z.number().gt(0).max(1),
      seed: z.number().int(),
      /** Checkpoint every N optimizer steps (0: only at the end); a retried activity resumes from it. */
      checkpointEvery: z.number().int().min(0),
    }),
    /** Two-tower (user id + history; item id + category + price bucket + title tokens), in-batch softmax. */
    twoTower: z.strictObject({
      embDim: z.number().int().min(2).max(1024),
      outDim: z.number().int().min(2).max(1024),
      historyLength: z.number().int().min(1).max(200),
      temperature: z.number().positive(),
      epochs: z.number().int().min(1).max(1000),
      fullEpochs: z.number().int().min(0).max(100),
      batchSize: z
        .number()
        .int()
        .min(16)
        .max(1 << 20),
      lr: z.number().positive().max(1),
      /** L2 on the id embeddings a batch uses. */
      l2: z.number().min(0),
      /** Probability of dropping the item-id embedding per example (cold-start items lean on metadata). */
      idDropout: z.number().min(0).lt(1),
      /** Probability of dropping the user-id embedding per example (the user vector leans on history). */
      userDropout: z.number().min(0).max(1),
      /** History pooling weight per step back in time (1: plain mean of the last historyLength items). */
      historyDecay: z.number().gt(0).max(1),
      /** Second, short history pool: mean of the last recentLength items beside the long one (0: off). */
      recentLength: z.number().int().min(0).max(200),
      /** Training only: a positive at time t sees the history up to t - historyGapHours (0: right before it). */
      historyGapHours: z.number().min(0),
      /** Learned per-item logit bias (a popularity prior the cosine score does not have to carry). */
      itemBias: z.boolean(),
      /** Multiplier of the in-batch softmax's log q(i) correction (1: unbiased; above 1 keeps a popularity prior). */
      logQScale: z.number().min(0).max(10),
      /** Weight each (user, item) example by its strongest event type (schema.eventTypes); false: all equal. */
      eventWeights: z.boolean(),
      /** Early stopping: evaluated epochs without improvement of validationMetric before training stops. */
      patience: z.number().int().min(1),
      validationMetric: z.enum(['ndcg', 'recall']),
      /** As training.mf.validationUsers. */
      validationUsers: z.number().gt(0).max(1),
      seed: z.number().int(),
      checkpointEvery: z.number().int().min(0),
    }),
  }),
  publish: z.strictObject({
    topN: z.number().int().min(1).max(1000),
    outputDir: z.string().min(1),
    keepVersions: z.number().int().min(1),
    /**
     * Scoring and writing the published lists fan out into this many user shards (a stable hash of the user
     * id): one activity and one part file each, on any worker of the CPU queue. 1 shard = the unsharded output.
     */
    shards: z.number().int().min(1).max(256),
    /**
     * Cold start from the item metadata, in the ranking SQL that evaluation and publishing share
     * (analytics/cold-start.sql.ts; README "Cold start"). With privacy on, new items are off.
     */
    coldStart: z.strictObject({
      /** Users with fewer events than this get their categories' popular items fused into their list (0: off). */
      lightUserEvents: z.number().int().min(0).max(1_000_000),
      /** Catalogue items without any event that enter each list from their metadata score (0: off). */
      newItemSlots: z.number().int().min(0).max(100),
      /** The rank the first of them takes (moved up so all fit in the list). */
      newItemRank: z.number().int().min(1).max(1000),
    }),
  }),
  schedule: z.strictObject({
    id: identifier,
    cron: z.string().regex(/^(\S+\s+){4}\S+$/, 'expected a 5-field cron expression'),
    timezone: z.string().min(1),
    overlap: z.enum(['SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER', 'ALLOW_ALL']),
    catchupWindow: boundedDuration('10s', '365d'),
  }),
});

export type RecforgeConfig = z.infer<typeof configSchema>;

/** The challenger `auto` stands for: the tuned linear blend, or with privacy on the DP item-item model. */
export function resolveChallenger(
  c: Pick<RecforgeConfig, 'privacy'> & { training: Pick<RecforgeConfig['training'], 'challenger'> },
): Exclude<RecforgeConfig['training']['challenger'], 'auto'> {
  const t = c.training.challenger;
  if (t !== 'auto') return t;
  return c.privacy.enabled ? 'itemitem' : 'blend';
}

/** Challengers with no differentially private training: refused with privacy on. */
const NON_PRIVATE_CHALLENGERS: readonly string[] = ['two-tower', 'ease', 'ials', 'blend'];

/** Cross-key rules, reported with the key path like any other config error. */
export const validatedConfigSchema = configSchema.superRefine((c, ctx) => {
  const t = c.temporal.activities;
  if (parseDuration(t.heartbeatTimeout) >= parseDuration(t.startToCloseTimeout)) {
    ctx.addIssue({
      code: 'custom',
      path: ['temporal', 'activities', 'heartbeatTimeout'],
      message: 'must be shorter than startToCloseTimeout (activities heartbeat every third of it)',
    });
  }
  if (c.privacy.enabled) privacyRules(c, ctx);
  if (NON_PRIVATE_CHALLENGERS.includes(c.training.challenger) && c.privacy.enabled) {
    ctx.addIssue({
      code: 'custom',
      path: ['training', 'challenger'],
      message: `'${c.training.challenger}' is not differentially private: use 'itemitem' or 'mf' (DP-SGD), or set privacy.enabled: false`,
    });
  }
  if (c.training.challenger === 'mf' && c.privacy.enabled) {
    // DP-SGD: each user's gradient may depend only on that user's own rows (docs/privacy.md).
    if (c.training.mf.negativeSampling !== 'uniform') {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'mf', 'negativeSampling'],
        message:
          "with privacy.enabled, mf needs 'uniform' negatives (popularity negatives use other users' counts)",
      });
    }
    if (c.training.mf.recencyHalfLifeDays !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'mf', 'recencyHalfLifeDays'],
        message:
          "with privacy.enabled, mf needs recencyHalfLifeDays: 0 (recency is relative to everyone's newest event)",
      });
    }
  }
});

/**
 * With privacy on, every step between reading the data and a DP release must be per-user (its output for user u
 * depends only on u's rows) or use public parameters only; steps that are neither are refused here, naming the key.
 */
function privacyRules(c: RecforgeConfig, ctx: z.RefinementCtx): void {
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (c.privacy.unit === undefined) {
    issue(
      ['privacy', 'unit'],
      'required with privacy.enabled: name the population of users this worker reads (the budget is kept per unit)',
    );
  }
  const k = c.cleaning.kCore;
  if (k.users > 1 || k.items > 1) {
    issue(
      ['cleaning', 'kCore'],
      "not allowed with privacy.enabled: the k-core keeps or removes a user's rows depending on other users' " +
        "rows, so one user could change everyone else's data by more than the calibrated sensitivity; set users and items to 0",
    );
  }
  const b = c.privacy.budget;
  if (b.lifetime.epsilon < b.epsilon || b.lifetime.delta < b.delta) {
    issue(['privacy', 'budget', 'lifetime'], 'must be at least the per-window budget');
  }
}
