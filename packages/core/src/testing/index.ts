/**
 * Test helpers for plugin authors: `import { describeStorageConformance } from '@pgharbor/core/testing'`.
 * Needs vitest (a peer dependency).
 */
export { describeStorageConformance, type ConformanceOptions } from './storage-conformance.js';
