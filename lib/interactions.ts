/**
 * The interaction-log contract shared by the generator, ingestion and every later stage.
 *
 * Raw files (CSV / Parquet / JSON Lines) carry these columns; `rating` is empty for implicit events and
 * `event_type` is `rating` for explicit-feedback datasets such as MovieLens. Timestamps are ISO-8601 UTC
 * strings (`2026-10-01T12:34:56Z`) or integer epoch seconds.
 */
export const INTERACTION_COLUMNS = ['user_id', 'item_id', 'event_type', 'rating', 'timestamp'] as const;
export type InteractionColumn = (typeof INTERACTION_COLUMNS)[number];

export const IMPLICIT_EVENT_TYPES = ['view', 'click', 'cart', 'purchase'] as const;
export type ImplicitEventType = (typeof IMPLICIT_EVENT_TYPES)[number];

/** Item metadata columns; all but `item_id` may be empty. */
export const ITEM_COLUMNS = ['item_id', 'category', 'price', 'title', 'in_stock'] as const;
