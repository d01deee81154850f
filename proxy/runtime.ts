// What a sidecar's parts are given from the process: the clock, randomness and the root logger
// (tests inject fakes). Its own module so that the parts need not import the wiring.
import type { Logger } from '../src/log.js';
import type { Clock, Random } from '../src/runtime.js';

export interface SidecarRuntime {
  clock: Clock;
  random: Random;
  log: Logger;
}
