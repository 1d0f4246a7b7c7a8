export * from './result.ts';
export * from './errors.ts';
export * from './clock.ts';
export * from './ids.ts';
export * from './logger.ts';
export * from './limits.ts';
export * from './text.ts';
export * from './hash.ts';
