import { Rng, Streams } from './prng';

/** A scraper-like user: thousands of views, uniformly across the catalogue, within a day or two. */
export interface BotPlan {
  /** Index of the organic user after whose rows the bot's block is written (bots hide in the stream). */
  readonly afterUser: number;
  readonly events: number;
  readonly startSec: number;
  readonly spanSec: number;
}

/**
 * Bot volume: 1,000–3,000 views each, but never more than a few percent of the clean events per bot, so a small
 * dataset is not dominated by them.
 */
export function planBots(
  seed: number,
  bots: number,
  users: number,
  cleanEvents: number,
  startSec: number,
  endSec: number,
): BotPlan[] {
  const rng = Rng.derive(seed, Streams.bots);
  const cap = Math.max(200, Math.round(0.03 * cleanEvents));
  const plans: BotPlan[] = [];
  for (let b = 0; b < bots; b++) {
    const spanSec = Math.min(endSec - startSec, Math.round(86400 * (1 + rng.next())));
    plans.push({
      afterUser: rng.int(users),
      events: Math.min(cap, 1000 + rng.int(2001)),
      startSec: startSec + Math.floor(rng.next() * (endSec - startSec - spanSec)),
      spanSec,
    });
  }
  return plans;
}

/**
 * Emits a bot's views through `emit(itemIndex, epochSec)`, time-ordered. Its own stream keeps bot rows from
 * shifting the organic events when `--bot-users` changes.
 */
export function generateBotEvents(
  seed: number,
  bot: number,
  plan: BotPlan,
  items: number,
  emit: (item: number, epochSec: number) => void,
): void {
  const rng = Rng.derive(seed, Streams.bots, bot + 1);
  // Strictly increasing whole seconds (spacing ≥ 1 s) so bot rows are not accidental duplicates.
  const slack = Math.max(0, plan.spanSec - plan.events);
  let acc = 0;
  const gaps = new Float64Array(plan.events);
  for (let i = 0; i < plan.events; i++) {
    acc += rng.exponential();
    gaps[i] = acc;
  }
  const total = acc + rng.exponential();
  for (let i = 0; i < plan.events; i++) {
    emit(rng.int(items), plan.startSec + i + Math.floor((slack * gaps[i]) / total));
  }
}
