import { CancellationScope, log } from '@temporalio/workflow';

/**
 * Compensations of a workflow, registered as each thing is acquired (Temporal's saga pattern): the dataset
 * lock, the privacy reservation, an unpublished version folder. `finish` runs them newest first — `always`
 * steps in every case, `onFailure` steps only when the run failed or was cancelled — outside cancellation, so
 * a cancelled run still gives back what it took. Deterministic: no I/O here, only activity calls.
 */
type Step = { name: string; run: () => Promise<unknown>; when: 'always' | 'onFailure' };

export class Saga {
  private steps: Step[] = [];

  always(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run, when: 'always' });
  }

  onFailure(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run, when: 'onFailure' });
  }

  /** Forgets a compensation whose reason is gone (e.g. the version went live: nothing to discard). */
  drop(name: string): void {
    this.steps = this.steps.filter((s) => s.name !== name);
  }

  async finish(failed: boolean): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const step of [...this.steps].reverse()) {
        if (step.when === 'onFailure' && !failed) continue;
        try {
          await step.run();
        } catch (err) {
          // One compensation failing must not keep the others (the lock above all) from running.
          log.error('compensation failed', { step: step.name, error: (err as Error).message });
        }
      }
      this.steps = [];
    });
  }
}
