/** What bench/run.ts hands to each named suite. */
import type { Gc } from './measure.ts';

export interface SuiteOptions {
  /** Fewer rounds and shorter batches: a smoke run of about ten seconds. */
  readonly quick: boolean;
  /** Absolute path of bench/ (fixtures, package.json, node_modules). */
  readonly benchDir: string;
  /** `gc()` when it could be obtained (see getGc). */
  readonly gc: Gc | undefined;
}

export interface Suite {
  readonly name: string;
  readonly description: string;
  run(options: SuiteOptions): Promise<void>;
}
