// The integration tests start programs with the same helper as the dev cluster and benchmarks.
export { startListening, type Exit, type Running } from '../../scripts/processes.js';
