export * from './dialog.ts';
export * from './extensions.ts';
