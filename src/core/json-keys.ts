/**
 * The first key that appears twice in one object of a JSON text, at any depth, or undefined.
 *
 * JSON.parse keeps the last of duplicate keys and other parsers may keep the first, so a signed
 * text with a duplicate can mean one thing to its signer and another to the device. A reviver
 * cannot tell (it sees the finished object), hence this scan of the text itself. Keys are compared
 * decoded, so "cmd" and "\u0063md" are the same key. The text must already be valid JSON (parse
 * it first); the scan is linear and keeps only one set of keys per open object.
 */
export function firstDuplicateKey(json: string): string | undefined {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let atKey = false;
  for (let i = 0; i < json.length; i++) {
    switch (json.charCodeAt(i)) {
      case 0x22: {
        // "
        const end = closingQuote(json, i);
        const keys = open[open.length - 1];
        if (atKey && keys) {
          const raw = json.slice(i + 1, end);
          const key = raw.includes('\\') ? (JSON.parse(json.slice(i, end + 1)) as string) : raw;
          if (keys.has(key)) return key;
          keys.add(key);
        }
        atKey = false;
        i = end;
        break;
      }
      case 0x7b: // {
        open.push(new Set());
        atKey = true;
        break;
      case 0x5b: // [
        open.push(null);
        atKey = false;
        break;
      case 0x7d: // }
      case 0x5d: // ]
        open.pop();
        atKey = false;
        break;
      case 0x2c: // , : in an object a key follows, in an array a value
        atKey = open[open.length - 1] instanceof Set;
        break;
      case 0x3a: // :
        atKey = false;
        break;
    }
  }
  return undefined;
}

/** Index of the quote that closes the string opening at `start`. */
function closingQuote(json: string, start: number): number {
  for (let i = start + 1; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x5c)
      i++; // \ escapes the next character
    else if (c === 0x22) return i;
  }
  return json.length;
}
