// The benchmarks measure the compiled code in dist/, which is what runs on a device. dist/ holds
// JavaScript only, so a module of it is typed as its source in src/:
//
//   const { Outbox } = await importBuilt<typeof import('../../src/gateway/outbox.js')>('../../dist/gateway/outbox.js', import.meta.url);

/** Imports `specifier` (a path into dist/, relative to `parentUrl`) as a module of type T. */
export function importBuilt<T>(specifier: string, parentUrl: string): Promise<T> {
  return import(new URL(specifier, parentUrl).href) as Promise<T>;
}
