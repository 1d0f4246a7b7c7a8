export * from './dialog.ts';
