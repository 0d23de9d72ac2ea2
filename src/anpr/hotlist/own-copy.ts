/** A copy of a string that may be a slice of a large text: kept, the slice would keep all of the text alive. */
export function ownCopy(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}
