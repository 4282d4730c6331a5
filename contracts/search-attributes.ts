import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes: registered by the dev server launcher and tests, so the UI can filter runs. */
export const SA_DATASET = defineSearchAttributeKey('RecforgeDataset', SearchAttributeType.KEYWORD);
export const SA_STAGE = defineSearchAttributeKey('RecforgeStage', SearchAttributeType.KEYWORD);
export const SA_MODEL_VERSION = defineSearchAttributeKey('RecforgeModelVersion', SearchAttributeType.KEYWORD);
export const SA_GATE = defineSearchAttributeKey('RecforgeGateDecision', SearchAttributeType.KEYWORD);
export const SA_NDCG = defineSearchAttributeKey('RecforgeNdcg', SearchAttributeType.DOUBLE);
export const SA_ROWS = defineSearchAttributeKey('RecforgeRowsIngested', SearchAttributeType.INT);

export const ALL_SEARCH_ATTRIBUTES = [SA_DATASET, SA_STAGE, SA_MODEL_VERSION, SA_GATE, SA_NDCG, SA_ROWS];
