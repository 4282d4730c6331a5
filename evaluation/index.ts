export { userMetrics, idealDcg, type UserMetrics } from './ranking-metrics';
export { perUserMetricsSql, aggregateMetricsSql, segmentMetricsSql, PER_USER_NDCG_SQL } from './metrics.sql';
export { meanInterval, pairedDifferenceInterval, type Interval } from './bootstrap';
export { decideGates, type GateInputs } from './gates';
